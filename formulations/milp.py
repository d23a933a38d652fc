"""MILP encoding: the layout choice, the integer batch and the step time as variables; one named row per rule.

Built from ``relaxation.build_options`` (the physics' structure as lines in the micro-batch). For
each option ``o`` (a layout, a draft length and a segment of micro-batches):

* ``choose[o]`` (binary) picks it, ``micro_batch[o]`` (integer) is its micro-batch, zero unless
  chosen (rows ``segment_start``/``segment_end``), and ``busy_us[o]`` is ``max(compute, hbm)``
  (rows ``compute_bound``, ``hbm_bound``: minimising time makes it the max);
* ``batch = sum(pp[o] micro_batch[o])`` is the integer batch (row ``batch_definition``).

One row per rule, summed over the options (exactly one is chosen, row ``one_configuration``):
``hbm_capacity`` (GB per GPU), ``max_gpus``, ``budget``, ``demand_cap``, ``cost_cap`` (cost per
million tokens <= C, linear as ``GPUs price iteration <= C tokens_per_iteration batch``),
``latency_cap`` and the serving SLOs ``tpot_max`` (the latency per output token, which in closed
loop adds the amortised prefill ``prefill_us micro_batch``) and ``ttft_max`` (a largest share of the
step taken by carried prefills: ``share iteration >= queue micro_batch``). Times are microseconds
(``_us``). The layout's divisibility and node rules are the option set itself
(``space.searched_layouts``; a layout's attention sharding is part of it, so no row depends on it). The
model's size is the number of options, at most ``relaxation.SEGMENTS_PER_LAYOUT`` per layout, never the
number of batch sizes.

The model is a relaxation of the physics (``relaxation``): its optimum is a lower bound, and
``solver/epsilon.py`` verifies every point with the physics. ``MilpSession`` states, for each
solve, the model over the options that can still meet its caps (``relaxation.option_floors``) and
whose layouts the loop does not know yet, with the caps written in; ``to_pulp`` gives the same model
as a PuLP problem, for ``writeLP`` and PuLP's CBC.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from dataclasses import dataclass

import numpy as np

from infecon.formulations.relaxation import OptionPool, Options, option_names, usd_per_million_tokens_per_gpu_second
from infecon.formulations.solution import Answer
from infecon.formulations.space import Problem

US_PER_S = 1e6
GB_PER_BYTE = 1e-9
# Caps are relaxed outward by this share, so that a solver's tolerances can never cut off a point
# the physics allows; the exact check happens after the solve.
CAP_SLACK = 1e-7
INF = float("inf")


@dataclass
class LinearModel:
    """``row_lower <= A x <= row_upper``, column bounds and types, and names: the one description both
    HiGHS and PuLP read."""

    column_names: list[str]
    column_lower: np.ndarray
    column_upper: np.ndarray
    integer: np.ndarray
    row_names: list[str]
    row_lower: np.ndarray
    row_upper: np.ndarray
    rows: np.ndarray  # coordinates of the nonzeros
    cols: np.ndarray
    values: np.ndarray
    objective: np.ndarray

    def row(self, name: str) -> int:
        return self.row_names.index(name)


def cost_factor_usd_per_us(problem: Problem) -> float:
    """USD per GPU-microsecond times 1e6 tokens: cost per million tokens = factor * GPUs * iteration_us / tokens."""
    return usd_per_million_tokens_per_gpu_second(problem) / US_PER_S


def _iteration_us(options: Options):
    """(busy, choose, micro_batch) coefficients of one option's iteration time in microseconds."""
    return 1.0, options.serial_intercept_s * US_PER_S, options.serial_s_per_sequence * US_PER_S


def cost_cap_coefficients(problem: Problem, options: Options, usd_per_million_tokens: float):
    """Per option, the ``cost_cap`` row for cap C: ``factor GPUs iteration_us - C tokens_per_iteration pp micro_batch``.

    Cost per million tokens <= C is linear once multiplied out by the batch (issue 9). Returns the
    coefficients on (busy, choose, micro_batch), divided by C.
    """
    o = options
    # Divided by the cap, so that the row compares numbers of order one whatever the currency scale: a toy
    # model's costs of 1e-5 $/M would otherwise sit below CBC's absolute tolerances.
    scale = 1.0 / usd_per_million_tokens if usd_per_million_tokens > 0 else 1.0
    factor = cost_factor_usd_per_us(problem) * o.gpus * o.decode_weight * scale
    busy, serial0, serial1 = _iteration_us(o)
    on_batch = factor * serial1 - usd_per_million_tokens * scale * (1 + CAP_SLACK) * o.tokens_per_iteration * o.pp
    return factor * busy, factor * serial0, on_batch


def latency_cap_coefficients(options: Options, max_latency_s: float):
    """Per option, ``w iteration_us / tokens + prefill_us(micro_batch) - L choose <= 0`` (``relaxation.Options``).

    Coefficients on (busy, choose, micro_batch); ``w`` is the decode steps' weight (a static batch's
    (osl - 1) / osl) and ``prefill_us`` the prefill's line (closed loop: amortised; static batch: over osl).
    """
    busy, serial0, serial1 = _iteration_us(options)
    per_token = options.decode_weight / options.tokens_per_iteration
    return (busy * per_token,
            serial0 * per_token + (options.prefill_intercept_s - max_latency_s * (1 + CAP_SLACK)) * US_PER_S,
            serial1 * per_token + options.prefill_s_per_sequence * US_PER_S)


def tpot_coefficients(options: Options, max_tpot_s: float):
    """Per option, ``iteration_us / tokens + tpot_us micro_batch - T choose <= 0``: the ``tpot_max`` row."""
    busy, serial0, serial1 = _iteration_us(options)
    per_token = 1.0 / options.tokens_per_iteration
    return (busy * per_token, serial0 * per_token - max_tpot_s * US_PER_S * (1 + CAP_SLACK),
            serial1 * per_token + options.tpot_s_per_sequence * US_PER_S)


def ttft_coefficients(options: Options):
    """Per option, the ``ttft_max`` row ``share iteration_us - queue_us micro_batch - intercept_us choose >= 0``.

    ``relaxation`` turns the TTFT cap into a largest share of the step taken by carried prefills
    (closed loop), a line of the batch prefill (static batch) or unreachable layouts (share 0 and a
    positive intercept): linear in the option's variables.
    """
    busy, serial0, serial1 = _iteration_us(options)
    share = options.ttft_iteration_share
    return (share * busy, share * serial0 - options.ttft_intercept_s * US_PER_S,
            share * serial1 - options.ttft_s_per_sequence * US_PER_S)


def build_milp(problem: Problem, options: Options) -> LinearModel:
    """The MILP over ``options``; caps start open (module docstring).

    Every rule that concerns one option is stated once per option and is homogeneous in its
    variables (a multiple of ``choose[o]``): Balas' disjunctive form, whose LP relaxation is the
    convex hull of the options' union. Its LP optimum therefore picks one option (an integral
    ``choose``), so HiGHS branches only on the chosen option's integer micro-batch.
    """
    # Data.
    o = options
    n = len(o)
    z, m, u = np.arange(n), n + np.arange(n), 2 * n + np.arange(n)
    batch = 3 * n
    label = option_names(o)  # tp8_pp1_ep1_s3: rows and columns name their option's layout and segment
    names = ([f"choose_{x}" for x in label] + [f"micro_batch_{x}" for x in label]
             + [f"busy_us_{x}" for x in label] + ["batch"])
    lower = np.zeros(3 * n + 1)
    upper = np.concatenate([np.ones(n), o.m_hi.astype(float), np.full(n, INF), [float(o.batch_max)]])
    lower[batch] = float(o.batch_min)
    integer = np.concatenate([np.ones(2 * n, dtype=bool), np.zeros(n, dtype=bool), [True]])
    rows, cols, vals, row_names, row_lo, row_hi = [], [], [], [], [], []

    def family(name, on_busy, on_choose, on_batch, lo, hi):
        """One row per option: lo <= on_busy busy + on_choose choose + on_batch micro_batch <= hi."""
        first = len(row_names)
        row_names.extend(f"{name}_{x}" for x in label)
        row_lo.extend(np.broadcast_to(lo, n).tolist())
        row_hi.extend(np.broadcast_to(hi, n).tolist())
        index = first + np.arange(n)
        for col, val in ((u, on_busy), (z, on_choose), (m, on_batch)):
            val = np.broadcast_to(np.asarray(val, dtype=float), n)
            keep = val != 0
            rows.append(index[keep])
            cols.append(col[keep])
            vals.append(val[keep])

    def single(name, entries, lo, hi):
        index = len(row_names)
        row_names.append(name)
        row_lo.append(lo)
        row_hi.append(hi)
        for col, val in entries:
            rows.append(np.full(len(col), index))
            cols.append(np.asarray(col))
            vals.append(np.broadcast_to(np.asarray(val, dtype=float), len(col)))

    # Constraints: one option, its segment of micro-batches, the step time's lines.
    single("one_configuration", [(z, 1.0)], 1.0, 1.0)
    family("segment_start", 0.0, -o.m_lo, 1.0, 0.0, INF)
    family("segment_end", 0.0, -o.m_hi, 1.0, -INF, 0.0)
    family("compute_bound", 1.0, 0.0, -o.compute_s_per_sequence * US_PER_S, 0.0, INF)
    family("hbm_bound", 1.0, -o.hbm_intercept_s * US_PER_S, -o.hbm_s_per_sequence * US_PER_S, 0.0, INF)
    single("batch_definition", [(np.array([batch]), 1.0), (m, -o.pp.astype(float))], 0.0, 0.0)

    # Rules, per option.
    capacity_gb = problem.hardware.hbm_capacity_bytes * GB_PER_BYTE * (1 + CAP_SLACK)
    family("hbm_capacity", 0.0, o.hbm_fixed_bytes * GB_PER_BYTE - capacity_gb,
           o.hbm_bytes_per_micro_sequence * GB_PER_BYTE, -INF, 0.0)
    single("max_gpus", [(z, o.gpus.astype(float))], -INF, float(problem.space.max_gpus))
    budget = problem.constraints.budget_usd_per_hour
    if budget is not None:
        family("budget", 0.0, o.gpus * problem.hardware.price_usd_per_hour - budget * (1 + CAP_SLACK), 0.0, -INF, 0.0)
    if problem.constraints.demand_tokens_per_s is not None:
        allowed = np.minimum(o.demand_batch_bound * (1 + CAP_SLACK), o.m_hi * o.pp)
        family("demand_cap", 0.0, -allowed, o.pp.astype(float), -INF, 0.0)
    if problem.constraints.ttft_max_s is not None:
        family("ttft_max", *ttft_coefficients(o), 0.0, INF)
    if problem.constraints.tpot_max_s is not None:
        family("tpot_max", *tpot_coefficients(o, problem.constraints.tpot_max_s), -INF, 0.0)
    family("latency_cap", *latency_cap_coefficients(o, 0.0), -INF, INF)
    family("cost_cap", *cost_cap_coefficients(problem, o, 0.0), -INF, INF)

    # Objective: latency per token (microseconds).
    objective = np.zeros(3 * n + 1)
    on_busy, on_choose, on_batch = latency_cap_coefficients(o, 0.0)
    objective[u], objective[z], objective[m] = on_busy, on_choose, on_batch
    return LinearModel(names, lower, upper, integer, row_names, np.array(row_lo), np.array(row_hi),
                       np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), objective)


def to_pulp(model: LinearModel):
    """The same model as a PuLP problem (named rows and columns), for ``writeLP`` and CBC."""
    import pulp

    problem = pulp.LpProblem("infecon_layout_and_batch", pulp.LpMinimize)
    variables = [problem.add_variable(name, None if np.isinf(lo) else float(lo), None if np.isinf(hi) else float(hi),
                                      cat=pulp.LpInteger if integral else pulp.LpContinuous)
                 for name, lo, hi, integral in zip(model.column_names, model.column_lower, model.column_upper,
                                                   model.integer, strict=True)]
    nonzero = np.flatnonzero(model.objective)
    problem += pulp.LpAffineExpression([(variables[k], float(model.objective[k])) for k in nonzero]), "latency_us"
    order = np.argsort(model.rows, kind="stable")
    starts = np.searchsorted(model.rows[order], np.arange(len(model.row_names) + 1))
    for index, name in enumerate(model.row_names):
        span = order[starts[index]:starts[index + 1]]
        expr = pulp.LpAffineExpression([(variables[int(model.cols[k])], float(model.values[k])) for k in span])
        lo, hi = model.row_lower[index], model.row_upper[index]
        if lo == hi:
            problem += expr == float(hi), name
        elif np.isinf(hi) and np.isinf(lo):
            continue  # an open cap (latency_cap, cost_cap before the loop sets them) states nothing: no vacuous row
        elif np.isinf(hi):
            problem += expr >= float(lo), name
        else:
            problem += expr <= float(hi), name
    return problem, variables


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


def highs_available() -> bool:
    try:
        import highspy  # noqa: F401
    except ImportError:
        return False
    return True


class MilpSession:
    """Solve after solve with new caps and exclusions: HiGHS through highspy (or PuLP's CBC).

    Each solve states the MILP over the options that can still meet its caps: an option whose
    ``relaxation.option_floors`` break a cap, or whose layout the loop already knows, cannot be the
    answer, and leaving it out keeps a solve near the frontier down to a few dozen options (the
    whole model is what ``build_milp`` gives and ``--export-model`` writes).
    """

    def __init__(self, problem: Problem, options: Options, *, solver: str | None = None) -> None:
        self.problem = problem
        self.options = options
        self.pool = OptionPool(problem, options)
        self.solver = solver or ("highs" if highs_available() else "cbc")
        fallback = solver is None and self.solver == "cbc"
        self.description = ("milp (CBC through PuLP: highspy is not installed)" if fallback
                            else f"milp ({'HiGHS' if self.solver == 'highs' else 'CBC'})")

    def exclude_layouts(self, layouts) -> None:
        """Forbid the options of these layout indices (the epsilon loop already knows them exactly)."""
        self.pool.exclude_layouts(layouts)

    def solve(self, *, max_usd_per_million_tokens: float | None = None, max_latency_s: float | None = None,
              objective: str = "latency", time_limit_s: float | None = None) -> Answer:
        """The best option under the caps: its layout index and a proven lower bound on the objective.

        ``objective`` is ``"latency"`` (seconds per token; the bound is in seconds) or ``"cost"``:
        the ``cost_cap`` row's activity at the given cost cap, which is negative exactly for options
        cheaper than the cap (Dinkelbach's parametric form of a ratio), so minimising it steers
        towards the cheapest layout.
        """
        active = self.pool.active(max_usd_per_million_tokens, max_latency_s)
        if not active.any():
            return Answer("INFEASIBLE")
        options = self.options.subset(active)
        model = with_caps(self.problem, options, build_milp(self.problem, options), max_usd_per_million_tokens,
                          max_latency_s, objective)
        if self.solver == "highs":
            chosen, status, bound = _solve_highs(model, len(options), time_limit_s)
        else:
            chosen, status, bound = _solve_cbc(model, len(options), time_limit_s)
        if status != "OPTIMAL":
            return Answer(status)
        scale = 1 / US_PER_S if objective == "latency" else 1.0
        return Answer("OPTIMAL", int(options.layout[chosen]), bound * scale)


def with_caps(problem: Problem, options: Options, model: LinearModel, cost: float | None, latency: float | None,
              objective: str) -> LinearModel:
    """A copy of ``build_milp``'s model with one solve's caps and objective written in."""
    n = len(options)
    keep = np.ones(len(model.values), dtype=bool)
    rows, cols, values = [], [], []
    row_upper = model.row_upper.copy()
    first_label = option_names(options)[0]  # a family's rows are contiguous, one per option in option order
    for name, cap, coefficients in (
            ("cost_cap", cost, lambda: cost_cap_coefficients(problem, options, cost)),
            ("latency_cap", latency, lambda: latency_cap_coefficients(options, latency))):
        first = model.row(f"{name}_{first_label}")
        row_upper[first:first + n] = INF if cap is None else 0.0
        if cap is None:
            continue
        keep &= (model.rows < first) | (model.rows >= first + n)
        for offset, new in zip((2 * n, 0, n), coefficients(), strict=True):
            rows.append(first + np.arange(n))
            cols.append(offset + np.arange(n))
            values.append(np.broadcast_to(np.asarray(new, dtype=float), n))
    if objective == "latency":
        weights = model.objective
    else:
        weights = _spread(n, cost_cap_coefficients(problem, options, 0.0 if cost is None else cost))
    return dataclasses.replace(
        model, rows=np.concatenate([model.rows[keep], *rows]), cols=np.concatenate([model.cols[keep], *cols]),
        values=np.concatenate([model.values[keep], *values]), row_upper=row_upper, objective=weights)


def _spread(n: int, coefficients) -> np.ndarray:
    """(busy, choose, micro_batch) per-option coefficients as one vector over all columns."""
    vector = np.zeros(3 * n + 1)
    on_busy, on_choose, on_batch = (np.broadcast_to(c, n) for c in coefficients)
    vector[2 * n:3 * n], vector[:n], vector[n:2 * n] = on_busy, on_choose, on_batch
    return vector


def _solve_highs(model: LinearModel, n_options: int, time_limit_s: float | None) -> tuple[int, str, float]:
    """(chosen option, status, dual bound) of one HiGHS run."""
    import highspy

    with _quiet_stdout():  # Highs() prints a banner to the C-level stdout before options apply
        highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("threads", 1)
    highs.setOptionValue("mip_rel_gap", 1e-6)
    # The disjunctive form makes the LP relaxation pick one option already (build_milp), so presolve
    # and primal heuristics only cost time here (measured: 2-5x slower per solve with them on).
    highs.setOptionValue("presolve", "off")
    highs.setOptionValue("mip_heuristic_effort", 0.0)
    highs.setOptionValue("time_limit", float(time_limit_s) if time_limit_s is not None else highspy.kHighsInf)
    lp = highspy.HighsLp()
    n_cols, n_rows = len(model.column_names), len(model.row_names)
    lp.num_col_, lp.num_row_ = n_cols, n_rows
    lp.col_cost_ = model.objective
    inf = highspy.kHighsInf
    lp.col_lower_ = np.where(np.isinf(model.column_lower), -inf, model.column_lower)
    lp.col_upper_ = np.where(np.isinf(model.column_upper), inf, model.column_upper)
    lp.row_lower_ = np.where(np.isinf(model.row_lower), -inf, model.row_lower)
    lp.row_upper_ = np.where(np.isinf(model.row_upper), inf, model.row_upper)
    order = np.lexsort((model.rows, model.cols))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.concatenate(([0], np.cumsum(np.bincount(model.cols, minlength=n_cols)))).astype(np.int32)
    lp.a_matrix_.index_ = model.rows[order].astype(np.int32)
    lp.a_matrix_.value_ = model.values[order]
    lp.integrality_ = [highspy.HighsVarType.kInteger if k else highspy.HighsVarType.kContinuous
                       for k in model.integer]
    highs.passModel(lp)
    highs.run()
    status = highs.getModelStatus()
    if status == highspy.HighsModelStatus.kOptimal:
        values = np.asarray(highs.getSolution().col_value)
        return int(np.argmax(values[:n_options])), "OPTIMAL", highs.getInfo().mip_dual_bound
    if status == highspy.HighsModelStatus.kInfeasible:
        return -1, "INFEASIBLE", INF
    if status == highspy.HighsModelStatus.kTimeLimit:
        return -1, "TIME_LIMIT", -INF
    return -1, "UNKNOWN", -INF


def _solve_cbc(model: LinearModel, n_options: int, time_limit_s: float | None) -> tuple[int, str, float]:
    """(chosen option, status, bound) of one CBC run through PuLP."""
    import pulp

    problem, variables = to_pulp(model)
    status = problem.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s, gapRel=0.0))
    if problem.sol_status == pulp.LpSolutionOptimal:  # sol_status, not status: a time limit's "Not Solved" is none
        values = np.array([variables[k].value() or 0.0 for k in range(n_options)])
        # PuLP reports no separate dual bound from CBC; with the gap closed (gapRel 0) the optimum is the bound,
        # not an approximation of it (issue 21: it was the objective shrunk by a 1e-6 gap).
        return int(np.argmax(values)), "OPTIMAL", float(pulp.value(problem.objective))
    if pulp.LpStatus[status] == "Infeasible":
        return -1, "INFEASIBLE", INF
    return -1, ("TIME_LIMIT" if time_limit_s is not None else "UNKNOWN"), -INF
