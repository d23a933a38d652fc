"""One physics: every backend takes its numbers from formulations/perf.py through the tabulated ConfigTable.

If this test failed: an encoding or a backend started computing a physical quantity itself. Read the
value from ``ConfigTable`` (``tabulate``) instead, so the three backends cannot drift apart.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENCODINGS = [ROOT / "formulations" / "cpsat.py", ROOT / "formulations" / "milp.py",
             ROOT / "solver" / "enumeration.py", ROOT / "solver" / "epsilon.py", ROOT / "solver" / "backends.py"]
PHYSICS_MODULES = {"formulations.perf", "formulations.params", "formulations.toy"}
# Hardware and model constants an encoding would need only if it re-derived the physics.
PHYSICS_ATTRIBUTES = {"hbm_bandwidth_bytes_per_s", "flop_per_s_by_bits", "peak_flop_per_s", "protocols",
                      "intra_node_bandwidth_bytes_per_s", "inter_node_bandwidth_bytes_per_s",
                      "kernel_launch_latency_s", "n_layers", "d_model", "d_ff", "n_heads", "acceptance"}


def _tree(path: Path) -> ast.AST:
    return ast.parse(path.read_text())


def test_encodings_do_not_import_the_physics():
    """Encodings and backends import the table, never the formulas."""
    for path in ENCODINGS:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ImportFrom):
                assert node.module not in PHYSICS_MODULES, f"{path.name} imports {node.module}"


def test_encodings_read_no_physical_constants():
    """Encodings never touch the constants the physics is made of."""
    for path in ENCODINGS:
        used = {node.attr for node in ast.walk(_tree(path)) if isinstance(node, ast.Attribute)}
        assert used & PHYSICS_ATTRIBUTES == set(), f"{path.name} reads {sorted(used & PHYSICS_ATTRIBUTES)}"


def test_the_table_is_built_by_the_model():
    """tabulate() calls perf.evaluate: the one place where configurations meet the physics."""
    calls = {node.func.id for node in ast.walk(_tree(ROOT / "formulations" / "space.py"))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert "evaluate" in calls
