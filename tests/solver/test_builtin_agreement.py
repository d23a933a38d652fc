"""Built-in models on H100 at 8K context, on H200 at 100K, and with a Llama 3 8B drafter, within 16 GPUs and
a batch of 64 at integer resolution: the CP-SAT and MILP backends return exactly the enumeration oracle's frontier.

The larger spaces the issue targets are measured in ``scripts/bench_frontier.py``; here every model's
architecture (dense, GQA, MoE, MLA, parallel attention) goes through both encodings quickly.
"""

import pytest

from infecon.formulations.errors import InstanceError
from infecon.formulations.space import tabulate
from infecon.instances.loader import builtin_model_names
from infecon.solver import api
from infecon.solver.epsilon import trace_frontier
from tests.solver.backend_contract import assert_same_frontier

CASES = [(model, hardware, context, draft)
         for model in builtin_model_names()
         for hardware, context, draft in (("h100_sxm", 8000, None), ("h200", 100_000, None),
                                          ("h100_sxm", 0, "llama_3_8b"))]


@pytest.mark.parametrize(("model", "hardware", "context", "draft"), CASES)
def test_backends_agree_on_builtin_problem(model, hardware, context, draft):
    """CP-SAT and MILP frontiers equal the enumeration's: same layouts and batches, objectives to 1e-9."""
    try:
        # With a drafter every layout has nine draft lengths to encode: 8 GPUs keep the case quick.
        problem = api.build_problem(model, hardware, context_tokens=context, draft=draft,
                                    max_gpus=16 if draft is None else 8, max_batch=64, batch_mode="all")
        table = tabulate(problem)
    except InstanceError as exc:  # pragma: no cover - every built-in case must be well-formed
        pytest.fail(f"built-in case is malformed: {exc}")
    expected = trace_frontier(problem, "enumerate", table=table)
    if len(expected) == 0:  # some models need more than 16 GPUs: both backends must prove that too
        for backend in ("cpsat", "milp"):
            result = trace_frontier(problem, backend)
            assert len(result) == 0 and result.complete
        return
    for backend in ("cpsat", "milp"):
        assert_same_frontier(expected, trace_frontier(problem, backend))
