"""The fleet MILP: ``fleet_model.fleet_rows`` as a PuLP problem, solved by HiGHS (PuLP's CBC if highspy is missing).

Every row keeps its rule's name (``demand_chat``, ``inventory_h100_sxm``, ``budget``), so
``to_pulp(...).writeLP(path)`` reads like the design. HiGHS runs with a relative gap of 0 and an
absolute gap below one micro-dollar, so "optimal" means proven optimal on the integer costs.
"""

from __future__ import annotations

from infecon.formulations.fleet_model import FleetData, FleetRows, FleetSolution, fleet_rows, solution_from_values
from infecon.formulations.milp import _quiet_stdout


def to_pulp(model: FleetRows):
    """The PuLP problem of ``model``: integer variables, named rows, least USD/hour."""
    import pulp

    problem = pulp.LpProblem("infecon_fleet", pulp.LpMinimize)
    x = [problem.add_variable(v.name, 0, v.upper, cat=pulp.LpInteger) for v in model.variables]
    problem += pulp.LpAffineExpression([(x[i], c) for i, c in model.objective]), "usd_per_hour"
    for row in model.rows:
        expr = pulp.LpAffineExpression([(x[i], c) for i, c in row.terms])
        if row.lower is not None:
            problem += expr >= row.lower, row.name if row.upper is None else f"{row.name}_lower"
        if row.upper is not None:
            problem += expr <= row.upper, row.name if row.lower is None else f"{row.name}_upper"
    return problem, x


def _solver(time_limit_s: float | None):
    import pulp

    options = dict(msg=False, gapRel=0.0, gapAbs=0.5, timeLimit=time_limit_s)
    # One thread, as formulations.milp: HiGHS's thread scheduler is global to the process and the
    # first solve fixes its size; a later Highs asking for another count fails with an error status.
    highs = pulp.HiGHS(threads=1, **options)
    if highs.available():
        return highs, "milp-highs"
    return pulp.PULP_CBC_CMD(threads=1, **options), "milp-cbc"


def solve_fleet_milp(data: FleetData, *, max_scale_rank: int | None = None, cost_cap: int | None = None,
                     time_limit_s: float | None = None) -> FleetSolution:
    """Least-cost fleet by MILP.

    Returns:
        ``FleetSolution`` with status ``OPTIMAL`` (proven), ``FEASIBLE`` (stopped by the time limit
        with a plan; ``gap`` says how far from proven), ``INFEASIBLE`` or ``UNKNOWN``.
    """
    import pulp

    model = fleet_rows(data, max_scale_rank=max_scale_rank, cost_cap=cost_cap)
    problem, x = to_pulp(model)
    solver, name = _solver(time_limit_s)
    with _quiet_stdout():  # highspy prints a banner on creation, before PuLP can silence it
        problem.solve(solver)
    status = pulp.LpStatus[problem.status]
    bound = None
    if name == "milp-highs":
        info = problem.solverModel.getInfo()
        bound = float(info.mip_dual_bound)
        if status == "Optimal" and float(info.mip_gap) > 1e-9 and \
                float(info.objective_function_value) - bound >= 0.5:  # stopped on a limit, not proven
            status = "Not Solved"
    if status == "Infeasible":
        return FleetSolution("INFEASIBLE", backend=name)
    values = [v.value() for v in x]
    if any(v is None for v in values):
        return FleetSolution("UNKNOWN", backend=name)
    return solution_from_values(data, model, values, "OPTIMAL" if status == "Optimal" else "FEASIBLE", bound, name)
