"""Plans over periods at scale: a gap target, the bounds that need no solve, the large-plan path (naive baseline,
Lagrangian bound), each checked against the exhaustive optimum of tiny plans and row by row."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from infecon.formulations.fleet.horizon import horizon_cost, merge_periods
from infecon.formulations.fleet.model import dominated_candidates
from infecon.instances.fleet_horizon import load_horizon_scenario
from infecon.solver.fleet import horizon
from infecon.solver.fleet.horizon import plan_horizon, solve_horizon
from infecon.solver.fleet.horizon_bounds import (
    admissible,
    floor_bound,
    horizon_floors,
    lagrangian_bound,
    lagrangian_value,
    ratio_bound,
)
from tests.fleet_oracle import horizon_broken_rules
from tests.solver.test_fleet_horizon import brute_force, small, tiny_horizons


class TestAgainstBruteForce:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(tiny_horizons())
    def test_gap_target_and_bounds_hold(self, data):
        """With a gap target (and a start, the reserve-and-rent plan, which is often within it of the bound), on the
        exact and on the large-plan path: an ``OPTIMAL`` plan costs the exhaustive
        optimum; a ``FEASIBLE`` one is within its reported gap of it, which is within the target; the reported
        bound, the floors' sum, the ratio bound and the Lagrangian bound (at the ascent's prices and at random
        admissible ones) never exceed the optimum; every plan meets every rule."""
        expected = brute_force(data)
        merged, _ = merge_periods(data)
        if expected is not None:
            dropped = dominated_candidates(merged.fleet, other_types=False)
            assert floor_bound(merged, horizon_floors(merged, dropped)) <= expected
            assert ratio_bound(merged) <= expected + 1e-6
            assert lagrangian_bound(merged, target=expected * 1.5 + 10) <= expected + 1e-6
            rng = np.random.default_rng(expected)
            for _ in range(5):  # any admissible prices give a bound, not only the ascent's
                prices = admissible(merged, rng.uniform(0, 12, size=merged.spot_available.shape))
                assert lagrangian_value(merged, prices)[0] <= expected + 1e-6
        baseline = horizon.on_demand_plan(data, "milp", None)
        start = None if baseline is None else horizon.reserve_and_rent(data, baseline)
        for work in (horizon.EXACT_WORK, 0):
            with mock.patch.object(horizon, "EXACT_WORK", work):
                for rel_gap, first in ((0.0, None), (0.0, start), (0.25, None), (0.25, start), (0.5, start)):
                    plan = solve_horizon(data, "milp", rel_gap=rel_gap, start=first)
                    if expected is None:
                        assert plan.status == "INFEASIBLE"
                        continue
                    assert plan.objective == horizon_cost(data, plan)
                    assert horizon_broken_rules(data, plan) == []
                    assert plan.method
                    if plan.status == "OPTIMAL":
                        assert plan.objective == expected
                        continue
                    assert plan.status == "FEASIBLE" and rel_gap > 0
                    assert plan.bound <= expected + 1e-6
                    assert plan.objective >= expected
                    assert plan.gap <= rel_gap + 1e-9
                    assert plan.objective - expected <= plan.gap * plan.objective + 1e-6


class TestLargePlanPath:
    def test_naive_baseline_and_ratio_bound(self, tmp_path):
        """The path taken beyond ``EXACT_WORK`` (forced here on a small plan): the naive on-demand baseline, the
        Lagrangian bound; the plan meets every rule, its bound is below the exact path's proven optimum, and the
        summary says status, gap, bound and method."""
        scenario = load_horizon_scenario(small(tmp_path, offers="reserved = true\nspot_available = [0, 8, 0]"))
        exact = plan_horizon(scenario, time_limit_s=60)
        assert exact.status == "optimal" and exact.summary["gap"] == 0.0
        assert exact.summary["on_demand_baseline_method"].startswith("on-demand baseline")
        with mock.patch.object(horizon, "EXACT_WORK", 0):
            large = plan_horizon(scenario, time_limit_s=60, rel_gap=0.5)
        s = large.summary
        assert s["on_demand_baseline_method"] == "naive on-demand baseline"
        assert "Lagrangian bound" in s["method"]
        assert horizon_broken_rules(large.data, large.solution) == []
        assert s["total_usd"] == pytest.approx(large.schedule["usd"].sum())
        assert s["bound_usd"] <= exact.summary["total_usd"] + 1e-6
        assert s["total_usd"] >= exact.summary["total_usd"] - 1e-6
        assert s["status"] in ("optimal", "feasible") and s["gap"] <= 0.5
        # the naive baseline is a plan on demand: never below the least-cost one
        assert s["on_demand_baseline_usd"] >= exact.summary["on_demand_baseline_usd"] - 1e-6


class TestBaselineMemo:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(tiny_horizons())
    def test_shared_workload_solves_change_no_period(self, data):
        """The on-demand baseline shares each workload's own optimum and Pareto patterns between periods
        (``solve_fleet``'s memo): every period's status and least cost equal a solve of that period alone."""
        from infecon.solver.fleet.solve import solve_fleet
        prices = np.where(data.on_demand_cost >= 0, data.on_demand_cost, 1)
        available = np.where(data.on_demand_cost >= 0, data.fleet.available, 0)
        memo: dict = {}
        for k in list(range(data.periods)) * 2:  # the second round is answered from the memo
            period = horizon.period_fleet(data, k, prices=prices, available=available)
            shared = solve_fleet(period, "milp", memo=memo)
            alone = solve_fleet(period, "milp")
            assert shared.status == alone.status
            assert shared.objective == alone.objective
        assert memo  # the own optima at least went through it
