"""The MILP backend meets the backend contract, with HiGHS and with PuLP's bundled CBC."""

import pytest
from hypothesis import given, settings

from infecon.formulations.space import tabulate
from infecon.solver import api
from infecon.solver.backends import MilpBackend
from infecon.solver.epsilon import trace_frontier
from tests.solver.backend_contract import SLOW_AND_SHARED, BackendContract, assert_same_frontier
from tests.strategies import problems


class TestMilpBackend(BackendContract):
    backend_name = "milp"


def _cbc_available() -> bool:
    import pulp

    return pulp.PULP_CBC_CMD(msg=False).available()


@pytest.mark.skipif(not _cbc_available(), reason="PuLP's bundled CBC binary is not available on this platform")
class TestCbcFallback:
    """The fallback solver PuLP ships gives the same frontier as HiGHS and the enumeration."""

    @settings(max_examples=10, deadline=None, suppress_health_check=SLOW_AND_SHARED)
    @given(problem=problems())
    def test_cbc_matches_enumeration(self, problem):
        """CBC's frontier equals the oracle's on generated problems."""
        table = tabulate(problem)
        assert_same_frontier(trace_frontier(problem, "enumerate", table=table),
                             trace_frontier(problem, MilpBackend(solver="cbc"), table=table))

    def test_cbc_on_a_real_model(self):
        """CBC traces Llama 3 8B on H100 (16 GPUs at most) exactly."""
        problem = api.build_problem("llama-3-8b", "h100", max_gpus=16, context_tokens=8000, max_batch=128,
                                    batch_mode="all")
        table = tabulate(problem)
        assert_same_frontier(trace_frontier(problem, "enumerate", table=table),
                             trace_frontier(problem, MilpBackend(solver="cbc"), table=table))
