"""Built-in models on H100 at 8K context, on H200 at 100K, and with a Llama 3 8B drafter, within 16 GPUs and
a batch of 64 at integer resolution: the CP-SAT and MILP backends return exactly the enumeration oracle's frontier.

The larger spaces the issue targets are measured in ``scripts/bench_frontier.py``; here every model's
architecture (dense, GQA, MoE, MLA, parallel attention) goes through both encodings quickly.
"""

import dataclasses

import numpy as np
import pytest

from infecon.formulations.errors import InstanceError
from infecon.formulations.params import parameter_counts
from infecon.formulations.space import tabulate
from infecon.instances.engines import builtin_engine_names
from infecon.instances.loader import builtin_model_names
from infecon.solver import api
from infecon.solver.epsilon import trace_frontier
from tests.solver.backend_contract import assert_same_frontier


def _drafter_for(model: str, draft: str):
    """A ``draft``-shaped drafter with ``model``'s tokenizer (build_problem refuses another vocabulary)."""
    return dataclasses.replace(api.resolve_model(draft), vocab_size=api.resolve_model(model).vocab_size)


def _drafter_fits(model: str, draft: str | None) -> bool:
    """False where the drafter is larger than the target (Llama 2 7B under an 8B drafter): a refused question."""
    return draft is None or (parameter_counts(_drafter_for(model, draft)).active
                             <= parameter_counts(api.resolve_model(model)).active)


CASES = [(model, hardware, context, draft)
         for model in builtin_model_names()
         for hardware, context, draft in (("h100_sxm", 8000, None), ("h200", 100_000, None),
                                          ("h100_sxm", 0, "llama_3_8b"))
         if _drafter_fits(model, draft)]


@pytest.mark.parametrize(("model", "hardware", "context", "draft"), CASES)
def test_backends_agree_on_builtin_problem(model, hardware, context, draft):
    """CP-SAT and MILP frontiers equal the enumeration's: same layouts and batches, objectives to 1e-9."""
    if draft is not None:
        draft = _drafter_for(model, draft)
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


SERVING_CASES = [(engine, "closed_loop") for engine in builtin_engine_names()] + [
    ("generic", "decode_only"), ("generic", "disaggregated"), ("generic", "static_batch")]


@pytest.mark.parametrize(("engine", "mode"), SERVING_CASES)
def test_backends_agree_under_each_shipped_engine(engine, mode):
    """Mixtral 8x7B (MoE: the concave expert term) at isl 2000 / osl 500 on up to 8 H100s under each shipped
    engine, with TTFT and TPOT caps at the medians the uncapped problem reaches: CP-SAT and MILP equal the oracle."""
    problem = api.build_problem("mixtral-8x7b", "h100_sxm", engine=engine, mode=mode, isl=2000, osl=500, max_gpus=8,
                                max_batch=64, batch_mode="all")
    metrics = tabulate(problem).metrics
    caps = dataclasses.replace(problem.constraints, ttft_max_s=float(np.median(metrics.ttft_s)),
                               tpot_max_s=float(np.median(metrics.tpot_s)))
    problem = dataclasses.replace(problem, constraints=caps)
    table = tabulate(problem)
    assert set(table.violations) >= {"ttft_max", "tpot_max"} and table.violations["tpot_max"].any()
    expected = trace_frontier(problem, "enumerate", table=table)
    assert len(expected) > 0
    for backend in ("cpsat", "milp"):
        assert_same_frontier(expected, trace_frontier(problem, backend, table=table))
