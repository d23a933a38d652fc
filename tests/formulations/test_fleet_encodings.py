"""The fleet encodings (MILP and CP-SAT) against each other and against a brute-force oracle on tiny fleets."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infecon.formulations.fleet_cpsat import solve_fleet_cpsat
from infecon.formulations.fleet_milp import solve_fleet_milp, to_pulp
from infecon.formulations.fleet_model import FleetData, fleet_cost, fleet_rows
from infecon.solver.fleet import naive_solution


@st.composite
def small_fleets(draw) -> FleetData:
    """1-3 workloads, 1-3 GPU pools, up to 5 candidates (one per workload at least) with small integer
    capacities (units), any rules; about half of them feasible."""
    n_w = draw(st.integers(1, 3))
    n_p = draw(st.integers(1, 3))
    n_c = draw(st.integers(n_w, 5))
    modes = tuple(draw(st.sampled_from(["allow", "never", "never", "only"])) for _ in range(n_w))
    workload = list(range(n_w)) + [draw(st.integers(0, n_w - 1)) for _ in range(n_c - n_w)]
    kind = [draw(st.sampled_from([0] if modes[w] == "never" else [1, 2] if modes[w] == "only" else [0, 1, 2]))
            for w in workload]
    return FleetData(
        workload_names=tuple(f"w{i}" for i in range(n_w)),
        demand=[draw(st.integers(1, 12)) for _ in range(n_w)],
        disaggregated=modes,
        pool_names=tuple(f"g{i}" for i in range(n_p)),
        available=[draw(st.sampled_from([-1, -1, 0, 2, 4, 8, 16])) for _ in range(n_p)],
        node_size=[draw(st.sampled_from([1, 2, 4])) for _ in range(n_p)],
        gpu_cost=[draw(st.integers(1, 9)) for _ in range(n_p)],
        workload=workload,
        pool=[draw(st.integers(0, n_p - 1)) for _ in range(n_c)],
        kind=kind,
        gpus=[draw(st.sampled_from([1, 2, 4])) for _ in range(n_c)],
        capacity=[draw(st.integers(0, 12) | st.integers(3, 12)) for _ in range(n_c)],
        scale_rank=[0] * n_c,
        budget=draw(st.none() | st.none() | st.integers(1, 200)),
        whole_nodes=draw(st.booleans()))


def meets_rules(data: FleetData, n: np.ndarray) -> bool:
    """Every rule checked directly: demand (with balanced pools), inventory (in whole nodes if asked), budget."""
    served = True
    for w in range(len(data.workload_names)):
        def cap(kind: int, w: int = w) -> int:
            return int((n * data.capacity)[(data.workload == w) & (data.kind == kind)].sum())
        routed = min(cap(1), cap(2)) if data.routes_disaggregated(w) else 0
        aggregated = cap(0) if data.disaggregated[w] != "only" else 0
        served &= aggregated + routed >= data.demand[w]
    used = np.bincount(data.pool, weights=n * data.gpus, minlength=len(data.pool_names)).astype(np.int64)
    if data.whole_nodes:
        used = -(-used // data.node_size) * data.node_size
    within = bool(np.all((data.available < 0) | (used <= data.available)))
    return bool(served) and within and (data.budget is None or fleet_cost(data, n) <= data.budget)


def brute_force_cost(data: FleetData) -> int | None:
    """Least cost over every replica vector within the encodings' bounds, checking every rule directly."""
    upper = data.replica_upper_bounds()
    best = None
    for replicas in itertools.product(*(range(int(u) + 1) for u in upper)):
        n = np.array(replicas, dtype=np.int64)
        if meets_rules(data, n):
            cost = fleet_cost(data, n)
            best = cost if best is None else min(best, cost)
    return best


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

    def test_constraints_carry_their_rule_names(self):
        """The exported model reads like the design: demand, balance, inventory, budget rows by name."""
        data = FleetData(("chat",), [10], ("allow",), ("h100",), [8], [8], [2], [0, 0, 0], [0, 0, 0], [0, 1, 2],
                         [1, 1, 1], [4, 6, 6], [0, 0, 0], budget=100)
        problem = to_pulp(fleet_rows(data))[0]
        names = {c.name for c in problem.constraints()}
        assert {"demand_chat", "prefill_decode_balance_chat_prefill", "prefill_decode_balance_chat_decode",
                "inventory_h100", "budget"} <= names

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
    for name in ("fleet_model.py", "fleet_milp.py", "fleet_cpsat.py"):
        modules = {node.module for node in ast.walk(ast.parse((root / name).read_text()))
                   if isinstance(node, ast.ImportFrom)}
        assert not modules & {"infecon.formulations.perf", "infecon.formulations.params",
                                 "infecon.formulations.serving"}, name
