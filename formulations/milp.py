"""MILP encoding: one binary per configuration, one named row per rule, solved by HiGHS or CBC.

Why it is exact: ``z[k] = 1`` selects configuration ``k`` (row ``one_configuration``), and every
nonlinear quantity (max of memory and arithmetic, MoE expert share, cost = GPUs x latency /
batch, the speculative expectation) is a coefficient read from the performance model's table:
a one-hot tabulation, not an approximation. Rules the model evaluates in floating point
(HBM capacity, demand cap, budget) enter as 0/1 coefficients taken from the same masks the
enumeration uses, so no solver tolerance can move a boundary; the caps and the objective use
integer ranks (see ``formulations.cpsat``), which a 1e-6 integrality tolerance cannot blur.

``build_milp_rows`` is the single builder; ``to_pulp`` turns it into a PuLP problem (readable
LP export, CBC fallback) and ``MilpSession`` passes it to HiGHS once and re-solves by
changing only the cap rows' bounds. In HiGHS every row is also applied in its ideal
single-column form (``_column_upper_bounds``), which makes the LP relaxation integral.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass

import numpy as np

from formulations.solution import Solution
from formulations.space import ConfigTable


@dataclass(frozen=True)
class Row:
    """``lower <= sum(coefficients * z) <= upper``, named after its rule."""

    name: str
    coefficients: np.ndarray
    lower: float
    upper: float


@dataclass(frozen=True)
class MilpRows:
    rows: list[Row]
    objective_fastest: np.ndarray
    objective_cheapest: np.ndarray

    def row_index(self, name: str) -> int:
        return next(i for i, row in enumerate(self.rows) if row.name == name)


def build_milp_rows(table: ConfigTable) -> MilpRows:
    """Rows of the MILP over ``table``'s configurations; caps start open."""
    n = len(table)
    rows = [Row("one_configuration", np.ones(n), 1.0, 1.0),
            Row("max_gpus", table.metrics.gpus.astype(float), -np.inf, float(table.problem.space.max_gpus))]
    for rule, broken in table.violations.items():  # hbm_capacity, demand_cap, budget
        rows.append(Row(rule, broken.astype(float), -np.inf, 0.0))
    rows.append(Row("cost_cap", table.cost_rank.astype(float), -np.inf, float(table.cost_rank.max())))
    rows.append(Row("latency_cap", table.latency_rank.astype(float), -np.inf, float(table.latency_rank.max())))
    # Lower bounds on each objective's position: the epsilon loop's previous point (caps only tighten,
    # so the next answer lies strictly after it in the objective's order).
    rows.append(Row("after_previous_fastest", table.fastest_first_rank.astype(float), 0.0, np.inf))
    rows.append(Row("after_previous_cheapest", table.cheapest_first_rank.astype(float), 0.0, np.inf))
    return MilpRows(rows, table.fastest_first_rank.astype(float), table.cheapest_first_rank.astype(float))


def to_pulp(milp: MilpRows, objective: str = "fastest"):
    """The same rows as a PuLP problem: for ``writeLP`` and for solving with PuLP's CBC."""
    import pulp

    n = len(milp.objective_fastest)
    problem = pulp.LpProblem("infecon_configuration", pulp.LpMinimize)
    z = [problem.add_variable(f"z_{k}", 0, 1, cat=pulp.LpBinary) for k in range(n)]
    weights = milp.objective_fastest if objective == "fastest" else milp.objective_cheapest
    problem += pulp.LpAffineExpression(zip(z, weights.tolist(), strict=True)), f"{objective}_first_position"
    for row in milp.rows:
        nonzero = np.flatnonzero(row.coefficients)
        expr = pulp.LpAffineExpression([(z[k], float(row.coefficients[k])) for k in nonzero])
        if row.lower == row.upper:
            problem += expr == row.upper, row.name
        elif np.isinf(row.upper):
            problem += expr >= row.lower, row.name
        else:
            problem += expr <= row.upper, row.name
    return problem, z


@contextlib.contextmanager
def _quiet_stdout():
    """Silence writes to file descriptor 1 (C libraries bypass ``sys.stdout``)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _is_one_hot(values: np.ndarray, tolerance: float = 1e-9) -> bool:
    """True when exactly one entry is 1 and the rest are 0, to ``tolerance``."""
    top = int(np.argmax(values))
    return values[top] >= 1 - tolerance and float(np.abs(np.delete(values, top)).sum()) <= tolerance


def _highs_available() -> bool:
    try:
        import highspy  # noqa: F401
    except ImportError:
        return False
    return True


class MilpSession:
    """Build once, re-solve with new cap constants: HiGHS through highspy, or PuLP's CBC."""

    def __init__(self, table: ConfigTable, *, solver: str | None = None) -> None:
        self.table = table
        self.milp = build_milp_rows(table)
        self.solver = solver or ("highs" if _highs_available() else "cbc")
        if self.solver == "highs":
            self._highs = self._pass_to_highs()

    def _pass_to_highs(self):
        import highspy

        with _quiet_stdout():  # Highs() prints a banner to the C-level stdout before options apply
            highs = highspy.Highs()
        highs.setOptionValue("output_flag", False)
        highs.setOptionValue("mip_rel_gap", 0.0)
        highs.setOptionValue("mip_abs_gap", 0.0)
        highs.setOptionValue("threads", 1)
        # HiGHS 1.16's presolve looped forever (ignoring its time limit) on one built-in case
        # (PaLM 8B with a Llama 3 8B drafter). With the single-column fixing in _solve_highs the LP
        # relaxation is integral, so presolve has nothing to add: off is both safe and faster.
        highs.setOptionValue("presolve", "off")
        highs.setOptionValue("mip_detect_symmetry", False)
        n = len(self.table)
        matrix = np.vstack([row.coefficients for row in self.milp.rows])  # rows x n, small row count
        self._matrix = matrix
        lp = highspy.HighsLp()
        lp.num_col_ = n
        lp.num_row_ = len(self.milp.rows)
        lp.col_cost_ = self.milp.objective_fastest
        lp.col_lower_ = np.zeros(n)
        lp.col_upper_ = np.ones(n)
        inf = highspy.kHighsInf
        lp.row_lower_ = np.array([-inf if np.isinf(r.lower) else r.lower for r in self.milp.rows])
        lp.row_upper_ = np.array([inf if np.isinf(r.upper) else r.upper for r in self.milp.rows])
        nz_rows, nz_cols = np.nonzero(matrix)
        order = np.lexsort((nz_rows, nz_cols))
        nz_rows, nz_cols = nz_rows[order], nz_cols[order]
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.concatenate(([0], np.cumsum(np.bincount(nz_cols, minlength=n)))).astype(np.int32)
        lp.a_matrix_.index_ = nz_rows.astype(np.int32)
        lp.a_matrix_.value_ = matrix[nz_rows, nz_cols]
        # Columns start continuous: see _solve_highs for why the LP relaxation is solved first.
        lp.integrality_ = [highspy.HighsVarType.kContinuous] * n
        highs.passModel(lp)
        return highs

    def solve(self, objective: str, *, cost_rank_cap: int | None = None, latency_rank_cap: int | None = None,
              after_index: int | None = None, time_limit_s: float | None = None) -> Solution:
        """Best configuration under the caps.

        ``after_index`` (an answer under looser caps) lower-bounds the position.
        """
        bounds = {
            "cost_cap": (-np.inf, float(self.table.cost_rank.max() if cost_rank_cap is None else cost_rank_cap)),
            "latency_cap": (-np.inf,
                            float(self.table.latency_rank.max() if latency_rank_cap is None else latency_rank_cap)),
            "after_previous_fastest": (0.0, np.inf),
            "after_previous_cheapest": (0.0, np.inf),
        }
        if after_index is not None:
            rank = self.table.fastest_first_rank if objective == "fastest" else self.table.cheapest_first_rank
            bounds[f"after_previous_{objective}"] = (float(rank[after_index]) + 1, np.inf)
        weights = self.milp.objective_fastest if objective == "fastest" else self.milp.objective_cheapest
        if self.solver == "highs":
            return self._solve_highs(weights, bounds, time_limit_s)
        return self._solve_cbc(objective, bounds, time_limit_s)

    def _solve_highs(self, weights, bounds, time_limit_s) -> Solution:
        import highspy

        highs = self._highs
        inf = highspy.kHighsInf
        for name, (lower, upper) in bounds.items():
            highs.changeRowBounds(self.milp.row_index(name), -inf if np.isinf(lower) else lower,
                                  inf if np.isinf(upper) else upper)
        n = len(weights)
        columns = np.arange(n, dtype=np.int32)
        highs.changeColsBounds(n, columns, np.zeros(n), self._column_upper_bounds(bounds))
        highs.changeColsCost(n, columns, weights)
        highs.setOptionValue("time_limit", float(time_limit_s) if time_limit_s is not None else inf)
        # With every rule in its ideal single-column form the LP relaxation is integral, and an
        # integral LP optimum is the MILP optimum (the LP bound is attained). So solve the LP,
        # warm-started from the previous basis, and branch only if the answer were fractional.
        highs.run()
        status = highs.getModelStatus()
        if status == highspy.HighsModelStatus.kOptimal:
            values = np.asarray(highs.getSolution().col_value)
            if not _is_one_hot(values):
                integer = np.full(n, highspy.HighsVarType.kInteger)
                highs.changeColsIntegrality(n, columns, integer)
                highs.run()
                highs.changeColsIntegrality(n, columns, np.full(n, highspy.HighsVarType.kContinuous))
                status = highs.getModelStatus()
                values = np.asarray(highs.getSolution().col_value)
        if status == highspy.HighsModelStatus.kOptimal:
            return Solution(int(np.argmax(values)), "OPTIMAL")
        if status == highspy.HighsModelStatus.kInfeasible:
            return Solution(None, "INFEASIBLE")
        if status == highspy.HighsModelStatus.kTimeLimit:
            return Solution(None, "TIME_LIMIT")
        return Solution(None, "UNKNOWN")

    def _column_upper_bounds(self, bounds) -> np.ndarray:
        """The ideal form of every row: 0 for a column whose own coefficient breaks it, else 1.

        Exactly one z is 1, so a row's activity is the chosen column's coefficient; a column that
        breaks a row on its own can never be chosen. Fixing it to 0 states the same rule with an
        integral LP relaxation (the rows stay, for the LP file and for CBC).
        """
        allowed = np.ones(self._matrix.shape[1], dtype=bool)
        for index, row in enumerate(self.milp.rows):
            lower, upper = bounds.get(row.name, (row.lower, row.upper))
            if row.name == "one_configuration":
                continue
            allowed &= (self._matrix[index] >= lower) & (self._matrix[index] <= upper)
        return allowed.astype(float)

    def _solve_cbc(self, objective, bounds, time_limit_s) -> Solution:
        import pulp

        problem, z = to_pulp(self.milp, objective)
        for name, (lower, upper) in bounds.items():  # PuLP stores "expr <= b" as constant -b
            problem.get_constraint_by_name(name).constant = -(lower if np.isinf(upper) else upper)
        # PULP_CBC_CMD is the CBC binary PuLP ships (deprecated for PuLP 4, hence pulp<4 in pyproject).
        status = problem.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s, gapRel=0.0))
        if problem.sol_status == pulp.LpSolutionOptimal:
            values = np.array([v.value() or 0.0 for v in z])
            return Solution(int(np.argmax(values)), "OPTIMAL")
        if pulp.LpStatus[status] == "Infeasible":
            return Solution(None, "INFEASIBLE")
        return Solution(None, "TIME_LIMIT" if time_limit_s is not None else "UNKNOWN")
