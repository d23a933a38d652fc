"""One physics: the encodings build from the step structure of formulations/perf.py and never tabulate configurations.

If this test failed: an encoding or a backend started computing a physical quantity itself, or
started enumerating whole configurations (a table in disguise). Build constraints from
``perf.step_structure`` and the other structure functions through ``formulations/relaxation.py``,
with the layout and the integer batch as decision variables, and leave exact evaluation of
configurations to ``space.tabulate``, which only the enumeration and the epsilon loop's check call.
"""

import ast
from pathlib import Path

from infecon.solver import api

ROOT = Path(__file__).resolve().parents[1]
ENCODINGS = [ROOT / "formulations" / "cpsat.py", ROOT / "formulations" / "milp.py"]
SEARCH = [ROOT / "solver" / "enumeration.py", ROOT / "solver" / "epsilon.py", ROOT / "solver" / "backends.py"]
PHYSICS_MODULES = {"infecon.formulations.perf", "infecon.formulations.params", "infecon.formulations.toy",
                   "infecon.formulations.serving"}
# Hardware and model constants an encoding would need only if it re-derived the physics.
PHYSICS_ATTRIBUTES = {"hbm_bandwidth_bytes_per_s", "flop_per_s_by_bits", "peak_flop_per_s", "protocols",
                      "intra_node_bandwidth_bytes_per_s", "inter_node_bandwidth_bytes_per_s",
                      "kernel_launch_latency_s", "n_layers", "d_model", "d_ff", "n_heads", "acceptance"}
# Rule data, not physics: CP-SAT states tp_divides_heads with the head count; relaxation.py passes the
# drafter's acceptance to perf.expected_tokens_per_iteration.
ALLOWED = {"cpsat.py": {"n_heads"}, "relaxation.py": {"acceptance"}}
# What evaluates whole configurations: only the enumeration and the epsilon loop's exact check may call these.
TABLE_BUILDERS = {"tabulate", "evaluate", "evaluate_configurations", "ConfigTable", "decode_step"}


def _tree(path: Path) -> ast.AST:
    return ast.parse(path.read_text())


def _names(path: Path) -> set[str]:
    tree = _tree(path)
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    names |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
    return names


def test_encodings_do_not_import_the_physics():
    """The CP-SAT and MILP encodings and the backends import the physics only through relaxation.py."""
    for path in ENCODINGS + SEARCH:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ImportFrom):
                assert node.module not in PHYSICS_MODULES, f"{path.name} imports {node.module}"


def test_encodings_read_no_physical_constants():
    """Encodings and backends never touch the constants the physics is made of."""
    for path in ENCODINGS + SEARCH + [ROOT / "formulations" / "relaxation.py"]:
        used = {node.attr for node in ast.walk(_tree(path)) if isinstance(node, ast.Attribute)}
        used -= ALLOWED.get(path.name, set())
        assert used & PHYSICS_ATTRIBUTES == set(), f"{path.name} reads {sorted(used & PHYSICS_ATTRIBUTES)}"


def test_encodings_build_from_the_structure_functions():
    """relaxation.py builds every line from the serving structure (itself perf.step_structure plus the engine)
    and perf's HBM structure, and the encodings read it."""
    relaxation = _names(ROOT / "formulations" / "relaxation.py")
    assert {"serving_structure", "pass_structure", "hbm_bytes_per_gpu_affine",
            "expected_tokens_per_iteration"} <= relaxation
    assert "step_structure" in _names(ROOT / "formulations" / "serving.py")
    for path in ENCODINGS:
        assert "Options" in _names(path), f"{path.name} does not build from relaxation.Options"


def test_forward_passes_are_the_pass_structure():
    """serving.forward_pass evaluates serving.pass_structure, the object the relaxation's lines come from."""
    tree = _tree(ROOT / "formulations" / "serving.py")
    function = next(node for node in ast.walk(tree)
                    if isinstance(node, ast.FunctionDef) and node.name == "forward_pass")
    calls = {node.func.id for node in ast.walk(function)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert "pass_structure" in calls and "decode_step" not in calls


def test_no_encoding_builds_a_table_of_configurations():
    """Neither the encodings nor relaxation.py evaluates whole configurations (tabulate, evaluate, decode_step)."""
    for path in [*ENCODINGS, ROOT / "formulations" / "relaxation.py"]:
        assert _names(path) & TABLE_BUILDERS == set(), f"{path.name} uses {sorted(_names(path) & TABLE_BUILDERS)}"


def test_model_size_does_not_follow_the_number_of_batch_sizes():
    """From max batch 64 to 8,192 and 10^6 the MILP keeps at most 8 segments per layout: the same model past
    8,192, and at 64 only the layouts whose micro-batches are too few for 8 segments have fewer (< 10 % here)."""
    from infecon.formulations.milp import build_milp
    from infecon.formulations.relaxation import SEGMENTS_PER_LAYOUT, build_options

    sizes = {}
    for max_batch in (64, 8192, 1_000_000):
        problem = api.build_problem("llama-3-8b", "h100", max_gpus=8, max_batch=max_batch, batch_mode="all")
        options = build_options(problem)
        assert len(options) <= SEGMENTS_PER_LAYOUT * len(options.layouts)
        model = build_milp(problem, options)
        sizes[max_batch] = (len(model.column_names), len(model.row_names))
    assert sizes[8192] == sizes[1_000_000]
    assert sizes[8192][0] <= 1.1 * sizes[64][0] and sizes[8192][1] <= 1.1 * sizes[64][1]


def test_the_table_is_built_by_the_model():
    """tabulate() evaluates configurations through the one entry point of the physics."""
    calls = {node.func.id for node in ast.walk(_tree(ROOT / "formulations" / "space.py"))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert "evaluate_configurations" in calls
