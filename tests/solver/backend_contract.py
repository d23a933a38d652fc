"""One contract every solver backend must meet; ``test_cpsat.py`` and ``test_milp.py`` subclass it.

The enumeration is the oracle: a backend passes when, on every problem, it returns the same
non-dominated configurations (layouts, batches, draft lengths) with the same objective values.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings

from infecon.formulations.space import tabulate
from infecon.solver import api
from infecon.solver.backends import get_backend
from infecon.solver.enumeration import best_index
from infecon.solver.epsilon import solve_point, trace_frontier
from tests.strategies import problems, serving_problems

# Subclasses share these test methods (one per backend), which Hypothesis sees as different executors.
SLOW_AND_SHARED = [HealthCheck.too_slow, HealthCheck.differing_executors]


def assert_same_frontier(expected, actual) -> None:
    """Same configurations in the same order, objective values equal to 1e-9 relative."""
    assert actual.complete
    assert actual.layouts() == expected.layouts()
    for column in ("tokens_per_second", "usd_per_million_tokens"):
        np.testing.assert_allclose(actual.points[column], expected.points[column], rtol=1e-9)
    assert set(actual.statuses) <= {"OPTIMAL"}


class BackendContract:
    """Subclasses set ``backend_name``; every test here then runs against that backend."""

    backend_name: str

    def backend(self):
        return get_backend(self.backend_name)

    @settings(max_examples=200, deadline=None, suppress_health_check=SLOW_AND_SHARED)
    @given(problem=problems())
    def test_frontier_matches_enumeration_on_random_instances(self, problem):
        """On 200 generated problems at integer batch resolution the frontier equals the oracle's, point for point."""
        self.check_frontier(problem)

    @settings(max_examples=200, deadline=None, suppress_health_check=SLOW_AND_SHARED)
    @given(problem=serving_problems())
    def test_serving_frontier_matches_enumeration_on_random_instances(self, problem):
        """On 200 generated serving problems (random engines, modes, TTFT and TPOT caps): the oracle's frontier."""
        self.check_frontier(problem)

    def check_frontier(self, problem) -> None:
        table = tabulate(problem)
        assert_same_frontier(trace_frontier(problem, "enumerate", table=table),
                             trace_frontier(problem, self.backend(), table=table))

    @settings(max_examples=40, deadline=None, suppress_health_check=SLOW_AND_SHARED)
    @given(problem=problems())
    def test_single_point_queries_match_enumeration(self, problem):
        """Cheapest-at-speed and fastest-within-cost answers equal the oracle's lexicographic optimum."""
        self.check_single_point_queries(problem)

    @settings(max_examples=60, deadline=None, suppress_health_check=SLOW_AND_SHARED)
    @given(problem=serving_problems())
    def test_serving_single_point_queries_match_enumeration(self, problem):
        """The same on generated serving problems (random engines, modes, TTFT and TPOT caps)."""
        self.check_single_point_queries(problem)

    def check_single_point_queries(self, problem) -> None:
        table = tabulate(problem)
        if not table.feasible.any():
            return
        speeds = table.metrics.tokens_per_second[table.feasible]
        costs = table.usd_per_million_tokens[table.feasible]
        for speed in np.quantile(speeds, [0.0, 0.5, 1.0]):
            got = solve_point(problem, self.backend(), min_tokens_per_s=float(speed), table=table)
            cap = table.latency_rank_at_most(1.0 / float(speed))
            want = best_index(table, "cheapest", latency_rank_cap=cap) if cap >= 0 else None
            assert (got.points["config_index"].tolist() or [None])[0] == want
        for cost in np.quantile(costs, [0.0, 0.5, 1.0]):
            got = solve_point(problem, self.backend(), max_usd_per_million_tokens=float(cost), table=table)
            want = best_index(table, "fastest", cost_rank_cap=table.cost_rank_at_most(float(cost)))
            assert got.points["config_index"].tolist() == [want]

    def test_real_model_frontier(self):
        """Mixtral 8x7B on up to 16 H100s at 8K context, every batch up to 256: same frontier as the enumeration."""
        problem = api.build_problem("mixtral-8x7b", "h100", context_tokens=8000, max_gpus=16, max_batch=256,
                                    batch_mode="all")
        table = tabulate(problem)
        assert_same_frontier(trace_frontier(problem, "enumerate", table=table),
                             trace_frontier(problem, self.backend(), table=table))

    def test_mla_serving_frontier_with_attention_dp(self):
        """DeepSeek-V3 on up to 16 H200s under an engine at 8.5K context, both attention shardings searched: same
        frontier as the enumeration, data-parallel points included."""
        problem = api.build_problem("deepseek-v3", "h200", engine="generic", isl=8000, osl=1000, weight_bits=8,
                                    kv_bits=8, max_gpus=16, max_batch=512)
        table = tabulate(problem)
        expected = trace_frontier(problem, "enumerate", table=table)
        assert expected.points["attention_dp"].any()
        assert_same_frontier(expected, trace_frontier(problem, self.backend(), table=table))

    def test_time_limit_is_reported_not_hidden(self):
        """A budget too small to prove anything yields an incomplete frontier, never a silent partial one."""
        problem = api.build_problem("mixtral-8x22b", "h100", max_batch=64)
        result = trace_frontier(problem, self.backend(), time_limit_s=1e-9)
        assert not result.complete

    def test_infeasible_problem_gives_empty_frontier(self):
        """A model that fits nowhere returns no points, complete (infeasibility is proven)."""
        problem = api.build_problem("llama-3-1-405b", "h100", max_gpus=2)
        result = trace_frontier(problem, self.backend())
        assert len(result) == 0 and result.complete

