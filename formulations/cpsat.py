"""CP-SAT encoding of "the lexicographically best configuration under the deployment rules and a cap".

Why it is exact: every nonlinear quantity (max of memory and arithmetic time, the MoE share of
experts read, cost = GPUs x latency / batch, the speculative expectation) is a function of the
discrete configuration, so the model chooses a configuration and reads each quantity from the
performance model's table with an element constraint. CP-SAT needs integers; floats enter only
as *dense ranks* (a value's position among the distinct tabulated values), which preserve order
exactly, so no scaling can reorder or merge two distinct points
(``tests/formulations/test_encodings.py`` checks it). Bytes are whole numbers already.

The decision variable is the configuration's *position* in the objective's lexicographic order
(fastest-first: latency, cost, index; or cheapest-first), a bijection with the configurations.
Minimising it is the lexicographic objective; decoding maps it back to a configuration.

Rules: ``hbm_capacity`` is the byte inequality itself (element + bound). The rules the model
evaluates in floating point (``demand_cap``, ``budget``) and the GPU limit enter as named domain
constraints on the position: the set of configurations the tabulated model says satisfy them,
which is what an element-plus-bound constraint would reduce to, without its presolve cost.

Sections follow the OR-Tools samples: data, variables, constraints, objective.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from formulations.solution import Solution
from formulations.space import ConfigTable


@dataclass
class CpSatEncoding:
    """A built model plus the handles the epsilon loop re-bounds between solves."""

    model: cp_model.CpModel
    position: cp_model.IntVar
    config_at_position: np.ndarray
    cap: cp_model.Constraint  # cost_cap (fastest-first) or latency_cap (cheapest-first)
    after: cp_model.Constraint  # position lower bound: the loop's previous point
    cap_upper_default: int

    def decode(self, solver: cp_model.CpSolver) -> int:
        """The configuration index of a solution."""
        return int(self.config_at_position[solver.value(self.position)])


def _set_bounds(constraint: cp_model.Constraint, lower: int | None = None, upper: int | None = None) -> None:
    """Rewrite a one-interval linear constraint's bounds in place (the proto wrapper rejects negative indices)."""
    domain = constraint.proto.linear.domain
    if lower is not None:
        domain[0] = lower
    if upper is not None:
        domain[len(domain) - 1] = upper


def build_cpsat(table: ConfigTable, objective: str = "fastest") -> CpSatEncoding:
    """Build the CP-SAT model over ``table``'s configurations; the cap starts open.

    ``objective`` is ``"fastest"`` (cap on cost) or ``"cheapest"`` (cap on latency).
    """
    # Data: configurations in the objective's lexicographic order.
    rank = table.fastest_first_rank if objective == "fastest" else table.cheapest_first_rank
    order = np.argsort(rank, kind="stable")
    n = len(order)
    capped = table.cost_rank if objective == "fastest" else table.latency_rank
    hw = table.problem.hardware
    model = cp_model.CpModel()

    # Variables.
    position = model.new_int_var(0, n - 1, f"{objective}_first_position")
    hbm_used = model.new_int_var(0, int(table.metrics.hbm_used_bytes_per_gpu.max()), "hbm_used_bytes_per_gpu")
    capped_rank = model.new_int_var(0, int(capped.max()), "cost_rank" if objective == "fastest" else "latency_rank")

    # Tabulated physics.
    model.add_element(position, table.metrics.hbm_used_bytes_per_gpu[order].tolist(), hbm_used).with_name(
        "hbm_of_config")
    model.add_element(position, capped[order].tolist(), capped_rank).with_name("rank_of_config")

    # Deployment rules.
    model.add(hbm_used <= int(hw.hbm_capacity_bytes)).with_name("hbm_capacity")
    within_gpus = np.flatnonzero(table.metrics.gpus[order] <= table.problem.space.max_gpus)
    model.add_linear_expression_in_domain(position, cp_model.Domain.from_values(within_gpus.tolist())).with_name(
        "max_gpus")
    for rule, broken in table.violations.items():
        if rule == "hbm_capacity":
            continue
        allowed = np.flatnonzero(~broken[order])
        model.add_linear_expression_in_domain(position, cp_model.Domain.from_values(allowed.tolist())).with_name(rule)

    # The cap the epsilon loop tightens, and the loop's lower bound on the position.
    cap = model.add(capped_rank <= int(capped.max())).with_name("cost_cap" if objective == "fastest" else "latency_cap")
    after = model.add(position >= 0).with_name("after_previous_point")

    # Objective: the lexicographic position.
    model.minimize(position)
    return CpSatEncoding(model, position, order, cap, after, int(capped.max()))


class CpSatSession:
    """Solves the same encodings repeatedly, moving only the caps' constants."""

    def __init__(self, table: ConfigTable, *, workers: int = 1) -> None:
        self.table = table
        self.workers = workers
        self._encodings: dict[str, CpSatEncoding] = {}

    def encoding(self, objective: str) -> CpSatEncoding:
        if objective not in self._encodings:
            self._encodings[objective] = build_cpsat(self.table, objective)
        return self._encodings[objective]

    def solve(self, objective: str, *, cost_rank_cap: int | None = None, latency_rank_cap: int | None = None,
              after_index: int | None = None, time_limit_s: float | None = None) -> Solution:
        """Best configuration under the cap.

        ``after_index`` (an answer under a looser cap) lower-bounds the position.
        """
        enc = self.encoding(objective)
        cap = cost_rank_cap if objective == "fastest" else latency_rank_cap
        _set_bounds(enc.cap, upper=enc.cap_upper_default if cap is None else cap)
        rank = self.table.fastest_first_rank if objective == "fastest" else self.table.cheapest_first_rank
        _set_bounds(enc.after, lower=0 if after_index is None else int(rank[after_index]) + 1)
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = self.workers
        if time_limit_s is not None:
            solver.parameters.max_time_in_seconds = max(time_limit_s, 1e-3)
        status = solver.solve(enc.model)
        if status == cp_model.OPTIMAL:
            return Solution(enc.decode(solver), "OPTIMAL")
        if status == cp_model.INFEASIBLE:
            return Solution(None, "INFEASIBLE")
        return Solution(None, "TIME_LIMIT" if time_limit_s is not None else "UNKNOWN")
