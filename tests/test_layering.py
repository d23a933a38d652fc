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
    offenders = {str(path.relative_to(ROOT)):
                 sorted(m for m in _imported_modules(path) if m.startswith("infecon.solver"))
                 for path in (ROOT / "formulations").rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_instances_never_import_solver():
    """If this test failed: data loading must not depend on the search; move the code into solver/."""
    offenders = [path.name for path in (ROOT / "instances").rglob("*.py")
                 if any(m.startswith("infecon.solver") for m in _imported_modules(path))]
    assert offenders == []


def test_fleet_planner_is_one_room():
    """The fleet code lives in its subpackages (issue 19, item 6), not as loose ``fleet_*`` modules beside others."""
    loose = sorted(str(p.relative_to(ROOT)) for folder in ("solver", "formulations")
                   for p in (ROOT / folder).glob("fleet*.py"))
    assert loose == []
    assert (ROOT / "solver" / "fleet" / "__init__.py").is_file()
    assert (ROOT / "formulations" / "fleet" / "__init__.py").is_file()
