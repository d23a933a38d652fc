"""The fleet model in CP-SAT: ``fleet.model.fleet_rows`` with every row named; the MILP's second opinion.

Same integers as the MILP (``fleet.model`` scales once), so both must report the same optimal
cost exactly; ``tests/formulations/test_fleet_encodings.py`` checks it on generated fleets.
"""

from __future__ import annotations

import numpy as np

from infecon.formulations.fleet.model import (
    FleetData,
    FleetRows,
    FleetSolution,
    fleet_rows,
    solution_from_values,
    start_values,
    violated_rows,
)


def to_cpsat(model: FleetRows):
    """The CP-SAT model of ``model`` and its variables (sections in OR-Tools sample order)."""
    from ortools.sat.python import cp_model

    cp = cp_model.CpModel()
    x = [cp.new_int_var(0, v.upper, v.name) for v in model.variables]
    for row in model.rows:
        expr = sum(c * x[i] for i, c in row.terms)
        if row.lower is not None:
            cp.add(expr >= row.lower).with_name(row.name if row.upper is None else f"{row.name}_lower")
        if row.upper is not None:
            cp.add(expr <= row.upper).with_name(row.name if row.lower is None else f"{row.name}_upper")
    cp.minimize(sum(c * x[i] for i, c in model.objective))
    return cp, x


def solve_rows_cpsat(model: FleetRows, time_limit_s: float | None = None, threads: int | None = None,
                     start: list[int] | None = None) -> tuple[str, list[int] | None, float | None]:
    """CP-SAT on any integer model in ``FleetRows`` form; returns as ``fleet.milp.solve_rows_highs``."""
    from ortools.sat.python import cp_model

    from infecon.formulations.cpsat_solver import configured_solver

    cp, x = to_cpsat(model)
    if start is not None:
        for variable, value in zip(x, start, strict=True):
            cp.add_hint(variable, value)
    solver = configured_solver(workers=threads or 1, time_limit_s=time_limit_s)
    code = solver.solve(cp)
    if code == cp_model.INFEASIBLE:
        return "INFEASIBLE", None, None
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return "UNKNOWN", None, None
    status = "OPTIMAL" if code == cp_model.OPTIMAL else "FEASIBLE"
    values = [solver.value(v) for v in x]
    if violated_rows(model, values):  # never hand on a non-solution, whatever the status says
        return "UNKNOWN", None, None
    return status, values, float(solver.best_objective_bound)


def solve_fleet_cpsat(data: FleetData, *, max_scale_rank: int | None = None, cost_cap: int | None = None,
                      time_limit_s: float | None = None, threads: int | None = None,
                      dropped: np.ndarray | None = None, floors: np.ndarray | None = None,
                      start: FleetSolution | None = None) -> FleetSolution:
    """Least-cost fleet by CP-SAT; arguments and statuses as ``fleet.milp.solve_fleet_milp`` (``start`` a hint)."""
    model = fleet_rows(data, max_scale_rank=max_scale_rank, cost_cap=cost_cap, dropped=dropped, floors=floors)
    status, values, bound = solve_rows_cpsat(model, time_limit_s, threads,
                                             None if start is None else start_values(model, start))
    if values is None:
        return FleetSolution(status, backend="cpsat")
    return solution_from_values(data, model, values, status, bound, "cpsat")
