"""The fleet MILP: ``fleet.model.fleet_rows`` solved by HiGHS (PuLP's CBC if highspy is missing).

Every row keeps its rule's name (``demand_chat``, ``inventory_h100_sxm``, ``budget``), so
``to_pulp(...)[0].writeLP(path)`` reads like the design. HiGHS gets the same rows in one call
(``_highs_model``): the fleet solver runs hundreds of small models per plan, and building each
through PuLP's per-row API cost more than solving it. HiGHS runs with a relative gap of 0 and an
absolute gap below one micro-dollar, so "optimal" means proven optimal on the integer costs.
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


CBC_BACKEND = "milp-cbc (fallback: highspy is not installed)"


def cbc_status(status: int, solution_status: int) -> str:
    """PuLP's two status codes as one of ours: ``OPTIMAL`` (proven), ``FEASIBLE`` (an integer plan, not proven),
    ``INFEASIBLE`` or ``UNKNOWN`` (no plan: e.g. "Not Solved" on a time limit, whose values may be fractional)."""
    import pulp

    if status == pulp.LpStatusInfeasible or solution_status == pulp.LpSolutionInfeasible:
        return "INFEASIBLE"
    if status == pulp.LpStatusOptimal and solution_status == pulp.LpSolutionOptimal:
        return "OPTIMAL"
    if solution_status == pulp.LpSolutionIntegerFeasible:
        return "FEASIBLE"
    return "UNKNOWN"


def solve_rows_cbc(model: FleetRows, time_limit_s: float | None = None) -> tuple[str, list[float] | None, None]:
    """PuLP's bundled CBC on any ``FleetRows`` model; returns as ``solve_rows_highs`` (no dual bound: CBC's is not
    read). Values are handed on only when every row and integrality holds (``model.violated_rows``)."""
    import pulp

    problem, x = to_pulp(model)
    problem.solve(pulp.PULP_CBC_CMD(threads=1, msg=False, gapRel=0.0, gapAbs=0.5, timeLimit=time_limit_s))
    status = cbc_status(problem.status, problem.sol_status)
    values = [v.value() for v in x]
    if status in ("OPTIMAL", "FEASIBLE") and violated_rows(model, values):
        status = "UNKNOWN"  # a status that claims a plan the values do not make: no plan
    if status not in ("OPTIMAL", "FEASIBLE"):
        return status, None, None
    return status, values, None


def _solve_cbc(data: FleetData, model: FleetRows, time_limit_s: float | None) -> FleetSolution:
    """PuLP's bundled CBC: the fallback when highspy is not installed (named so in the output)."""
    status, values, _ = solve_rows_cbc(model, time_limit_s)
    if values is None:
        return FleetSolution(status, backend=CBC_BACKEND)
    return solution_from_values(data, model, values, status, None, CBC_BACKEND)


# The fleet solver runs hundreds of one-workload models of a few dozen variables; on those HiGHS's
# primal heuristics cost more than the branch and bound they would save (measured: about half the
# time on the 50 x 8 bench fleet's workloads), so small models go without them. Exactness is untouched.
SMALL_MODEL_VARIABLES = 200
_PRIMAL_HEURISTICS = ("mip_heuristic_run_feasibility_jump", "mip_heuristic_run_rins", "mip_heuristic_run_rens",
                      "mip_heuristic_run_root_reduced_cost", "mip_heuristic_run_zi_round",
                      "mip_heuristic_run_shifting")


def _highs_model(model: FleetRows):
    """``model`` as a HiGHS LP with integer columns, rows stored row-wise (one call, no per-row Python API)."""
    import highspy

    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_ = len(model.variables)
    lp.num_row_ = len(model.rows)
    cost = np.zeros(lp.num_col_)
    for i, c in model.objective:
        cost[i] += c
    lp.col_cost_ = cost
    lp.col_lower_ = np.zeros(lp.num_col_)
    lp.col_upper_ = np.array([v.upper for v in model.variables], dtype=float)
    lp.row_lower_ = np.array([-inf if r.lower is None else r.lower for r in model.rows], dtype=float)
    lp.row_upper_ = np.array([inf if r.upper is None else r.upper for r in model.rows], dtype=float)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_ = lp.num_col_
    lp.a_matrix_.num_row_ = lp.num_row_
    lp.a_matrix_.start_ = np.cumsum([0] + [len(r.terms) for r in model.rows]).astype(np.int32)
    lp.a_matrix_.index_ = np.array([i for r in model.rows for i, _ in r.terms], dtype=np.int32)
    lp.a_matrix_.value_ = np.array([c for r in model.rows for _, c in r.terms], dtype=float)
    lp.integrality_ = [highspy.HighsVarType.kInteger] * lp.num_col_
    return lp


def solve_rows_highs(model: FleetRows, time_limit_s: float | None = None, start: list[int] | None = None, *,
                     rel_gap: float = 0.0) -> tuple[str, list[float] | None, float | None]:
    """HiGHS on any integer model in ``FleetRows`` form, with a gap of 0 (absolute gap below one unit).

    ``rel_gap``: stop once within this relative gap (then ``FEASIBLE`` with its bound, unless proven).

    Returns:
        (status, variable values or None, dual bound): ``OPTIMAL`` only when proven, ``FEASIBLE``
        (stopped by a limit with a solution), ``INFEASIBLE`` or ``UNKNOWN``.
    """
    import highspy

    if not model.variables:  # nothing to choose: feasible only if every row holds at zero
        ok = all((r.lower is None or r.lower <= 0) and (r.upper is None or r.upper >= 0) for r in model.rows)
        return ("OPTIMAL", [], 0.0) if ok else ("INFEASIBLE", None, None)
    with _quiet_stdout():  # highspy prints a banner on creation
        highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    # One thread, as formulations.milp: HiGHS's thread scheduler is global to the process and the
    # first solve fixes its size; a later Highs asking for another count fails with an error status.
    highs.setOptionValue("threads", 1)
    highs.setOptionValue("mip_rel_gap", float(rel_gap))
    highs.setOptionValue("mip_abs_gap", 0.5)
    if time_limit_s is not None:
        highs.setOptionValue("time_limit", float(time_limit_s))
    if len(model.variables) <= SMALL_MODEL_VARIABLES:
        for heuristic in _PRIMAL_HEURISTICS:
            highs.setOptionValue(heuristic, False)
    highs.passModel(_highs_model(model))
    if start is not None:
        solution = highspy.HighsSolution()
        solution.col_value = [float(v) for v in start]
        solution.value_valid = True
        highs.setSolution(solution)
    highs.run()
    status = highs.getModelStatus()
    info = highs.getInfo()
    if status in (highspy.HighsModelStatus.kInfeasible, highspy.HighsModelStatus.kUnboundedOrInfeasible):
        return "INFEASIBLE", None, None
    if info.primal_solution_status != highspy.kSolutionStatusFeasible:
        return "UNKNOWN", None, None
    values = list(highs.getSolution().col_value)
    if violated_rows(model, values):  # never hand on a non-solution, whatever the status says
        return "UNKNOWN", None, None
    bound = float(info.mip_dual_bound)
    proven = status == highspy.HighsModelStatus.kOptimal and \
        (float(info.mip_gap) <= 1e-9 or float(info.objective_function_value) - bound < 0.5)
    return ("OPTIMAL" if proven else "FEASIBLE"), values, bound


def highs_available() -> bool:
    try:
        import highspy  # noqa: F401 (only whether it imports)
    except ImportError:
        return False
    return True


def solve_rows_milp(model: FleetRows, time_limit_s: float | None = None, start: list[int] | None = None, *,
                    rel_gap: float = 0.0) -> tuple[str, list[float] | None, float | None]:
    """HiGHS on a ``FleetRows`` model, or PuLP's CBC when highspy is missing (``start``, ``rel_gap``: HiGHS's only)."""
    if highs_available():
        return solve_rows_highs(model, time_limit_s, start, rel_gap=rel_gap)
    return solve_rows_cbc(model, time_limit_s)


def solve_fleet_milp(data: FleetData, *, max_scale_rank: int | None = None, cost_cap: int | None = None,
                     time_limit_s: float | None = None, dropped: np.ndarray | None = None,
                     floors: np.ndarray | None = None, start: FleetSolution | None = None) -> FleetSolution:
    """Least-cost fleet by MILP: HiGHS (called directly: one model per call, fast), else PuLP's CBC.

    Args:
        dropped, floors: as ``fleet.model.fleet_rows`` (dominated candidates out; per-workload cost floors).
        start: a plan meeting every rule, handed to HiGHS as its first incumbent.

    Returns:
        ``FleetSolution`` with status ``OPTIMAL`` (proven), ``FEASIBLE`` (stopped by the time limit
        with a plan; ``gap`` says how far from proven), ``INFEASIBLE`` or ``UNKNOWN``.
    """
    model = fleet_rows(data, max_scale_rank=max_scale_rank, cost_cap=cost_cap, dropped=dropped, floors=floors)
    if not highs_available():
        return _solve_cbc(data, model, time_limit_s)
    status, values, bound = solve_rows_highs(model, time_limit_s, None if start is None else start_values(model, start))
    if values is None:
        return FleetSolution(status, backend="milp-highs")
    return solution_from_values(data, model, values, status, bound, "milp-highs")
