"""Every built-in model x {H100, H200} x context {0, 8K, 100K} x speculative decoding on/off:
the CP-SAT and MILP backends return exactly the enumeration oracle's frontier."""

import pytest

from formulations.errors import InstanceError
from formulations.space import tabulate
from instances.loader import builtin_model_names
from solver import api
from solver.epsilon import trace_frontier
from tests.solver.backend_contract import assert_same_frontier

CASES = [(model, hardware, context, draft)
         for model in builtin_model_names()
         for hardware in ("h100_sxm", "h200")
         for context in (0, 8000, 100_000)
         for draft in (None, "llama_3_8b")]


@pytest.mark.parametrize(("model", "hardware", "context", "draft"), CASES)
def test_backends_agree_on_builtin_problem(model, hardware, context, draft):
    """CP-SAT and MILP frontiers equal the enumeration's: same layouts and batches, objectives to 1e-9."""
    try:
        problem = api.build_problem(model, hardware, context_tokens=context, draft=draft)
        table = tabulate(problem)
    except InstanceError as exc:  # pragma: no cover - every built-in case must be well-formed
        pytest.fail(f"built-in case is malformed: {exc}")
    expected = trace_frontier(problem, "enumerate", table=table)
    assert len(expected) > 0, "every built-in model fits somewhere within the default 1024 GPUs"
    for backend in ("cpsat", "milp"):
        assert_same_frontier(expected, trace_frontier(problem, backend, table=table))
