"""CP-SAT encoding of "fastest (or cheapest) configuration under the deployment rules and a cap".

Why it is exact: every nonlinear quantity (max of memory and arithmetic time, the MoE share of
experts read, cost = GPUs x latency / batch, the speculative expectation) is a function of the
discrete configuration, so the model picks a configuration index and reads each quantity from
the performance model's table with an element constraint. CP-SAT needs integers; floats enter
only as *dense ranks* (the position of a value among the distinct tabulated values), which are
order-preserving by construction, so no scaling can reorder or merge two distinct points
(``tests/formulations/test_encodings.py`` checks it). Bytes are whole numbers already.

The model reads top-down as in the OR-Tools samples: data, variables, constraints, objective.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from formulations.solution import Solution
from formulations.space import ConfigTable


def _max_gpus_within_budget(table: ConfigTable) -> int | None:
    """Budget rule as an integer GPU bound, taken from the table's own mask so both agree exactly."""
    broken = table.violations.get("budget")
    if broken is None:
        return None
    allowed = table.metrics.gpus[~broken]
    return int(allowed.max()) if len(allowed) else 0


def _throughput_rank_limit(table: ConfigTable) -> tuple[np.ndarray, int] | None:
    """Demand cap as a rank bound on instance throughput, derived from the table's mask."""
    broken = table.violations.get("demand_cap")
    if broken is None:
        return None
    ranks = np.unique(table.metrics.total_tokens_per_second, return_inverse=True)[1].astype(np.int64)
    allowed = ranks[~broken]
    return ranks, int(allowed.max()) if len(allowed) else -1


@dataclass
class CpSatEncoding:
    """The built model and handles to the variables the epsilon loop re-bounds."""

    model: cp_model.CpModel
    config: cp_model.IntVar
    cost_rank: cp_model.IntVar
    latency_rank: cp_model.IntVar
    cost_cap: cp_model.Constraint
    latency_cap: cp_model.Constraint
    objective_fastest: cp_model.IntVar
    objective_cheapest: cp_model.IntVar


def build_cpsat(table: ConfigTable) -> CpSatEncoding:
    """Build the CP-SAT model over ``table``'s configurations (caps start open)."""
    n = len(table)
    hw = table.problem.hardware
    model = cp_model.CpModel()

    # Variables: which configuration, and the quantities it implies.
    config = model.new_int_var(0, n - 1, "config")
    gpus = model.new_int_var(0, int(table.metrics.gpus.max()), "gpus")
    hbm_used = model.new_int_var(0, int(table.metrics.hbm_used_bytes_per_gpu.max()), "hbm_used_bytes_per_gpu")
    latency_rank = model.new_int_var(0, int(table.latency_rank.max()), "latency_rank")
    cost_rank = model.new_int_var(0, int(table.cost_rank.max()), "cost_rank")
    fastest = model.new_int_var(0, n - 1, "fastest_first_position")
    cheapest = model.new_int_var(0, n - 1, "cheapest_first_position")

    # Tabulated physics: element constraints read the performance model's values.
    model.add_element(config, table.metrics.gpus.tolist(), gpus).with_name("gpus_of_config")
    model.add_element(config, table.metrics.hbm_used_bytes_per_gpu.tolist(), hbm_used).with_name("hbm_of_config")
    model.add_element(config, table.latency_rank.tolist(), latency_rank).with_name("latency_of_config")
    model.add_element(config, table.cost_rank.tolist(), cost_rank).with_name("cost_of_config")
    model.add_element(config, table.fastest_first_rank.tolist(), fastest).with_name("fastest_order")
    model.add_element(config, table.cheapest_first_rank.tolist(), cheapest).with_name("cheapest_order")

    # Deployment rules.
    model.add(hbm_used <= int(hw.hbm_capacity_bytes)).with_name("hbm_capacity")
    model.add(gpus <= table.problem.space.max_gpus).with_name("max_gpus")
    budget_gpus = _max_gpus_within_budget(table)
    if budget_gpus is not None:
        model.add(gpus <= budget_gpus).with_name("budget")
    demand = _throughput_rank_limit(table)
    if demand is not None:
        ranks, limit = demand
        throughput_rank = model.new_int_var(0, int(ranks.max()), "total_throughput_rank")
        model.add_element(config, ranks.tolist(), throughput_rank).with_name("throughput_of_config")
        model.add(throughput_rank <= limit).with_name("demand_cap")

    # Caps the epsilon loop moves: kept as handles, their bounds rewritten between solves.
    cost_cap = model.add(cost_rank <= int(table.cost_rank.max())).with_name("cost_cap")
    latency_cap = model.add(latency_rank <= int(table.latency_rank.max())).with_name("latency_cap")
    return CpSatEncoding(model, config, cost_rank, latency_rank, cost_cap, latency_cap, fastest, cheapest)


def _set_upper_bound(constraint: cp_model.Constraint, upper: int) -> None:
    """Rewrite ``expr <= upper`` in place (the constraint's domain is [-inf, upper])."""
    domain = constraint.proto.linear.domain
    domain[len(domain) - 1] = upper  # this proto wrapper rejects negative indices


class CpSatSession:
    """Solves the same encoding repeatedly, moving only the caps' constants."""

    def __init__(self, table: ConfigTable, *, workers: int = 1) -> None:
        self.table = table
        self.encoding = build_cpsat(table)
        self.workers = workers

    def solve(self, objective: str, *, cost_rank_cap: int | None = None, latency_rank_cap: int | None = None,
              time_limit_s: float | None = None):
        enc = self.encoding
        _set_upper_bound(enc.cost_cap, int(self.table.cost_rank.max()) if cost_rank_cap is None else cost_rank_cap)
        _set_upper_bound(enc.latency_cap,
                         int(self.table.latency_rank.max()) if latency_rank_cap is None else latency_rank_cap)
        enc.model.minimize(enc.objective_fastest if objective == "fastest" else enc.objective_cheapest)
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = self.workers
        if time_limit_s is not None:
            solver.parameters.max_time_in_seconds = max(time_limit_s, 1e-3)
        status = solver.solve(enc.model)
        if status == cp_model.OPTIMAL:
            return Solution(int(solver.value(enc.config)), "OPTIMAL")
        if status == cp_model.INFEASIBLE:
            return Solution(None, "INFEASIBLE")
        return Solution(None, "TIME_LIMIT" if status == cp_model.FEASIBLE or status == cp_model.UNKNOWN else "UNKNOWN")
