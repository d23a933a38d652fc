"""Imports go one way: formulations/ never imports solver/, so the physics and encodings stand alone."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_formulations_never_import_solver():
    """If this test failed: move the shared piece into formulations/ (as formulations/solution.py) and import it."""
    offenders = {path.name: sorted(m for m in _imported_modules(path) if m.startswith("infecon.solver"))
                 for path in (ROOT / "formulations").glob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_instances_never_import_solver():
    """If this test failed: data loading must not depend on the search; move the code into solver/."""
    offenders = [path.name for path in (ROOT / "instances").glob("*.py")
                 if any(m.startswith("infecon.solver") for m in _imported_modules(path))]
    assert offenders == []
