"""The fleet encodings (MILP and CP-SAT) against each other and against a brute-force oracle on tiny fleets."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infecon.formulations.fleet.cpsat import solve_fleet_cpsat
from infecon.formulations.fleet.milp import solve_fleet_milp, to_pulp
from infecon.formulations.fleet.model import FleetData, _add_unbounded, dominated_candidates, fleet_cost, fleet_rows
from infecon.formulations.fleet.workload import solve_workload
from infecon.solver.fleet.plan import naive_solution
from infecon.solver.fleet.solve import workload_alone
from tests.fleet_oracle import brute_force_cost, meets_rules
from tests.strategies import small_fleets


class TestFleetEncodings:
    @settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(small_fleets())
    def test_milp_and_cpsat_agree_with_brute_force(self, data):
        """On 50 generated small fleets both backends prove the same optimal cost as exhaustive search; the naive
        plan obeys the rules and costs no less."""
        expected = brute_force_cost(data)
        for solution in (solve_fleet_milp(data), solve_fleet_cpsat(data)):
            if expected is None:
                assert solution.status == "INFEASIBLE", solution.backend
            else:
                assert solution.status == "OPTIMAL", solution.backend
                assert solution.objective == expected, solution.backend
                assert fleet_cost(data, solution.replicas) == expected  # the plan itself costs what is reported
                assert solution.gap == 0.0
        naive = naive_solution(data)
        if naive is not None:  # the naive plan obeys every rule but the budget, and never beats the optimum
            assert meets_rules(dataclasses.replace(data, budget=None), naive.replicas)
            if expected is not None:
                assert naive.objective >= expected

    @settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(small_fleets(scale_ranks=True), st.none() | st.integers(0, 2))
    def test_dominated_candidates_keep_the_optimum(self, data, max_scale_rank):
        """Leaving out dominated candidates never changes the least cost (exhaustive search over all of them),
        under any TPOT-scale cap."""
        expected = brute_force_cost(data, max_scale_rank)
        dropped = dominated_candidates(data, respect_scale=max_scale_rank is not None)
        reduced = solve_fleet_milp(data, max_scale_rank=max_scale_rank, dropped=dropped)
        assert reduced.status == ("INFEASIBLE" if expected is None else "OPTIMAL")
        assert reduced.objective == expected
        if reduced.replicas is not None:
            assert not np.any(reduced.replicas[dropped] > 0)

    def test_dominance_hand_example(self):
        """One workload, one unlimited 1-GPU type: capacity 4 per GPU (1 GPU), 7 (2 GPUs), 9 (4 GPUs)
        and 10 (4 GPUs on a second, dearer type). Two 1-GPU replicas (8) beat the 2-GPU one (7), four beat
        the 4-GPU one (16 >= 9); the dearer type's 4 GPUs at 3 cost 12, which buys 12 cheap GPUs (48 >= 10)."""
        data = FleetData(("w",), [10], ("never",), ("cheap", "dear"), [-1, 8], [8, 8], [1, 3], [0] * 4,
                         [0, 0, 0, 1], [0] * 4, [1, 2, 4, 4], [4, 7, 9, 10], [0] * 4)
        assert dominated_candidates(data).tolist() == [False, True, True, True]
        # With the cheap type limited, the swap to it is not free: the dear candidate stays.
        limited = dataclasses.replace(data, available=np.array([8, 8]))
        assert dominated_candidates(limited).tolist() == [False, True, True, False]

    def test_unbounded_knapsack_table(self):
        """Best value within each weight 0..6: items (weight 2, value 3) then (3, 5), any number of copies.
        After the first: 0,0,3,3,6,6,9. After the second: g=3 -> 5, g=5 -> 3+5 = 8, g=6 -> max(3+3+3, 5+5) = 10."""
        best = np.zeros(7, dtype=np.int64)
        _add_unbounded(best, 2, 3)
        assert best.tolist() == [0, 0, 3, 3, 6, 6, 9]
        _add_unbounded(best, 3, 5)
        assert best.tolist() == [0, 0, 3, 5, 6, 8, 10]

    def test_constraints_carry_their_rule_names(self):
        """The exported model reads like the design: demand, balance, inventory, budget rows by name."""
        data = FleetData(("chat",), [10], ("allow",), ("h100",), [8], [8], [2], [0, 0, 0], [0, 0, 0], [0, 1, 2],
                         [1, 1, 1], [4, 6, 6], [0, 0, 0], budget=100)
        problem = to_pulp(fleet_rows(data))[0]
        names = {c.name for c in problem.constraints()}
        assert {"demand_chat", "prefill_decode_balance_chat_prefill", "prefill_decode_balance_chat_decode",
                "inventory_h100", "budget"} <= names
        floored = {c.name for c in to_pulp(fleet_rows(data, floors=np.array([7])))[0].constraints()}
        assert "cost_floor_chat" in floored

    def test_hand_example(self):
        """Demand 10 with replicas of capacity 4 (1 GPU at 2) or 11 (4 GPUs at 2): 3 small ones cost 6 < 8."""
        data = FleetData(("w",), [10], ("never",), ("g",), [-1], [8], [2], [0, 0], [0, 0], [0, 0], [1, 4], [4, 11],
                         [0, 0])
        assert solve_fleet_milp(data).objective == 6  # 3 x 1 GPU x 2; one 4-GPU replica costs 8
        assert solve_fleet_cpsat(data).objective == 6
        # In whole nodes of 8 GPUs either choice rents one node: 8 x 2 = 16.
        whole = FleetData(("w",), [10], ("never",), ("g",), [-1], [8], [2], [0, 0], [0, 0], [0, 0], [1, 4], [4, 11],
                          [0, 0], whole_nodes=True)
        assert solve_fleet_milp(whole).objective == 16


def test_fleet_encodings_import_no_physics():
    """The fleet encodings read candidate numbers only: no physics module is imported (one physics)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "formulations"
    for name in ("fleet/model.py", "fleet/milp.py", "fleet/cpsat.py"):
        modules = {node.module for node in ast.walk(ast.parse((root / name).read_text()))
                   if isinstance(node, ast.ImportFrom)}
        assert not modules & {"infecon.formulations.perf", "infecon.formulations.params",
                                 "infecon.formulations.serving"}, name


class TestWorkloadSearch:
    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(small_fleets(), st.integers(0, 2))
    def test_matches_exhaustive_search(self, data, w):
        """One workload alone, GPU caps as drawn (no budget, GPUs billed singly): the search proves the exhaustive
        optimum, its plan meets every rule and costs what it says; or it gives up (UNKNOWN), never wrongly."""
        w = min(w, len(data.workload_names) - 1)
        alone = dataclasses.replace(workload_alone(data, w)[0], available=data.available)  # caps kept
        expected = brute_force_cost(alone)
        found = solve_workload(alone)
        assert found.status in ("OPTIMAL", "INFEASIBLE")  # tiny: the node limit is never reached
        if expected is None:
            assert found.status == "INFEASIBLE"
            return
        assert found.objective == expected == fleet_cost(alone, found.replicas)
        assert meets_rules(alone, found.replicas)
        assert solve_fleet_milp(alone, start=found).objective == expected  # the plan is a valid MIP start too

    def test_hand_example(self):
        """Demand 10: 1-GPU replicas of capacity 4 at cost 2, or 4-GPU replicas of capacity 11 at cost 8 on a type
        capped at 4 GPUs. Three small ones cost 6 (capacity 12). Capping the small type at 2 GPUs (capacity 8 < 10)
        leaves one big replica (11 >= 10) at 8; capping the big type at 0 as well leaves nothing feasible."""
        data = FleetData(("w",), [10], ("never",), ("a", "b"), [-1, 4], [8, 8], [2, 2], [0, 0], [0, 1], [0, 0],
                         [1, 4], [4, 11], [0, 0])
        assert solve_workload(data).objective == 6
        capped = dataclasses.replace(data, available=np.array([2, 4]))
        assert solve_workload(capped).objective == 8
        assert solve_workload(dataclasses.replace(capped, available=np.array([2, 0]))).status == "INFEASIBLE"


class TestCbcFallback:
    """Issue 21: the CBC fallback maps PuLP's statuses to ours and never hands on a non-solution."""

    def test_status_mapping(self):
        """PuLP (status, sol_status): Optimal/optimal -> OPTIMAL; "Not Solved" with an integer solution ->
        FEASIBLE; "Not Solved" with none (a time limit's fractional values) -> UNKNOWN; infeasible -> INFEASIBLE."""
        from infecon.formulations.fleet.milp import cbc_status

        assert cbc_status(1, 1) == "OPTIMAL"
        assert cbc_status(0, 2) == "FEASIBLE"
        assert cbc_status(0, 0) == "UNKNOWN"
        assert cbc_status(-3, 0) == "UNKNOWN"
        assert cbc_status(-1, -1) == "INFEASIBLE"
        assert cbc_status(1, 2) == "FEASIBLE"  # "Optimal" of a run stopped with an integer solution: not proven

    def test_fractional_values_are_no_plan(self):
        """Demand 10, capacity 4 per replica: 2.5 replicas meet the row only as a fraction; 2 do not; 3 do."""
        from infecon.formulations.fleet.model import violated_rows

        data = FleetData(("w",), [10], ("never",), ("g",), [-1], [8], [2], [0], [0], [0], [1], [4], [0])
        model = fleet_rows(data)
        assert violated_rows(model, [2.5]) == [model.variables[0].name]
        assert violated_rows(model, [2.0]) == ["demand_w"]
        assert violated_rows(model, [3.0]) == []

    def test_cbc_solves_when_highspy_is_missing(self, monkeypatch):
        """Without highspy the fleet MILP is CBC's, named as the fallback; same optimum as the hand example."""
        from infecon.formulations.fleet import milp

        monkeypatch.setattr(milp, "highs_available", lambda: False)
        data = FleetData(("w",), [10], ("never",), ("g",), [-1], [8], [2], [0, 0], [0, 0], [0, 0], [1, 4], [4, 11],
                         [0, 0])
        solution = milp.solve_fleet_milp(data)
        assert (solution.status, solution.objective, solution.backend) == ("OPTIMAL", 6, milp.CBC_BACKEND)
        assert "fallback" in solution.backend
