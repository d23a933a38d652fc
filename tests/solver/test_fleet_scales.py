"""The TPOT-scale walk against the exhaustive oracle: every cost level with its least rank, nothing else."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from infecon.formulations.fleet.model import FleetData, FleetSolution
from infecon.solver.fleet import scales as fleet_scales
from infecon.solver.fleet.scales import highest_rank_used, scale_frontier
from tests.fleet_oracle import brute_force_cost, meets_rules
from tests.strategies import small_fleets


def oracle_frontier(data: FleetData) -> list[tuple[int, int]]:
    """(rank, least cost) where the least cost over ranks 0..rank strictly drops, tightest rank first."""
    front, best = [], None
    for rank in range(int(data.scale_rank.max()) + 1):
        cost = brute_force_cost(data, rank)
        if cost is not None and (best is None or cost < best):
            best = cost
            front.append((rank, cost))
    return front


@pytest.mark.parametrize("backend", ["milp", "cpsat", "auto"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=small_fleets(scale_ranks=True, max_rank=5))
def test_walk_finds_the_oracle_frontier(backend, data):
    walk = scale_frontier(data, backend)
    assert walk.complete
    assert [(rank, int(plan.objective)) for rank, plan in walk.points] == oracle_frontier(data)
    for rank, plan in walk.points:  # each point's plan meets every rule at its own rank
        assert highest_rank_used(data, plan) <= rank and meets_rules(data, plan.replicas, rank)


def test_ties_walk_down_to_the_least_rank():
    """One workload of demand 4 on one unlimited type: candidates of capacity 4 at ranks 3, 2 and 0, all one GPU
    at price 5, and one of capacity 4 at rank 1 on two GPUs (10). Every rank from 0 serves it at 5: a single
    point at rank 0, whichever of the tied plans a solve finds first."""
    data = FleetData(("w",), [4], ("never",), ("g",), [-1], [1], [5], [0] * 4, [0] * 4, [0] * 4, [1, 1, 1, 2],
                     [4, 4, 4, 4], [3, 2, 0, 1])
    walk = scale_frontier(data, "milp")
    assert [(rank, int(plan.objective)) for rank, plan in walk.points] == [(0, 5)]
    assert np.array_equal(walk.points[0][1].replicas, [0, 0, 1, 0])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=small_fleets(scale_ranks=True, max_rank=5))
def test_auto_falls_back_to_highs_when_cpsat_runs_out(data):
    """``auto`` with no time for CP-SAT: every solve that CP-SAT cannot finish goes to HiGHS, same frontier."""
    with mock.patch.object(fleet_scales, "AUTO_CPSAT_S", 1e-9):
        walk = scale_frontier(data, "auto")
    assert walk.complete
    assert [(rank, int(plan.objective)) for rank, plan in walk.points] == oracle_frontier(data)


def test_auto_hands_an_unfinished_cpsat_solve_to_the_decomposition():
    """Two workloads of demand 4 with one candidate each on g0 (1 GPU available, $1) and on g1 (unlimited, $3);
    the g1 candidates need rank 1. At rank 1 the own optima both want the one g0 GPU, so the fleet is solved:
    CP-SAT (made to stop unproven, as at its time limit) hands over to ``solve_fleet``, which finds $1 + $3 = $4;
    at rank 0 only g0 is left, which cannot serve both: one point, (1, $4)."""
    data = FleetData(("a", "b"), [4, 4], ("never", "never"), ("g0", "g1"), [1, -1], [1, 1], [1, 3], [0, 0, 1, 1],
                     [0, 1, 0, 1], [0] * 4, [1] * 4, [4] * 4, [0, 1, 0, 1])
    calls = []
    real_backend, real_solve_fleet = fleet_scales.fleet_backend, fleet_scales.solve_fleet

    def backend(name):
        def solve(*args, **kwargs):
            solution = FleetSolution("UNKNOWN") if name == "cpsat" else real_backend(name)(*args, **kwargs)
            calls.append((name, kwargs["time_limit_s"], solution.status))
            return solution
        return solve

    def decomposition(*args, **kwargs):
        solution = real_solve_fleet(*args, **kwargs)
        calls.append(("solve_fleet", kwargs["time_limit_s"], solution.status))
        return solution

    with mock.patch.object(fleet_scales, "fleet_backend", backend), \
            mock.patch.object(fleet_scales, "solve_fleet", decomposition):
        walk = scale_frontier(data, "auto")
    assert calls[:2] == [("cpsat", fleet_scales.AUTO_CPSAT_S, "UNKNOWN"), ("solve_fleet", None, "OPTIMAL")]
    assert [(rank, int(plan.objective)) for rank, plan in walk.points] == [(1, 4)]


def test_auto_stops_trying_cpsat_after_repeated_misses():
    """Workloads a and b (demand 4) each have a candidate on g0 (1 GPU available, $1 per GPU); b also has g1
    candidates (unlimited, $3 per GPU) at ranks 0-5 needing 6 - rank GPUs. Every rank needs a fleet solve (both
    own optima want the one g0 GPU), six in all, one point each. CP-SAT, made never to finish, is tried
    ``AUTO_CPSAT_MISSES`` times and then left out; the frontier is the oracle's."""
    g1 = range(6)
    data = FleetData(("a", "b"), [4, 4], ("never", "never"), ("g0", "g1"), [1, -1], [1, 1], [1, 3],
                     [0, 1, *[1] * 6], [0, 0, *[1] * 6], [0] * 8, [1, 1, *[6 - r for r in g1]], [4] * 8,
                     [0, 0, *g1])
    tried = []
    real_backend = fleet_scales.fleet_backend

    def backend(name):
        def solve(*args, **kwargs):
            tried.append(name)
            return FleetSolution("UNKNOWN") if name == "cpsat" else real_backend(name)(*args, **kwargs)
        return solve

    with mock.patch.object(fleet_scales, "fleet_backend", backend):
        walk = scale_frontier(data, "auto")
    assert tried == ["cpsat"] * fleet_scales.AUTO_CPSAT_MISSES
    assert walk.fleet_solves == 6
    assert [(rank, int(plan.objective)) for rank, plan in walk.points] == oracle_frontier(data)
    assert [int(plan.objective) for _, plan in walk.points] == [1 + 3 * (6 - r) for r in g1]  # $19 at rank 0 .. $4
