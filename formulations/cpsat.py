"""CP-SAT encoding: the layout degrees, the integer batch and the step time in integer nanoseconds.

The same design as the MILP (``formulations.milp``), from the same lines in the micro-batch
(``formulations.relaxation``). CP-SAT needs integers, so every time goes through ``to_ns`` with
a rounding *direction*: a lower bound of the physics is rounded down and a cap is rounded up,
so the integer model stays a relaxation of the physics, and ``solver/epsilon.py`` checks every
point with the physics itself. Each option ``o`` (layout, draft length, segment of micro-batches)
has a Boolean ``choose[o]``, an integer ``micro_batch[o]`` (zero unless chosen) and
``busy_ns[o] >= max(compute, hbm)``. The degrees ``tp_rows``, ``tp_cols``, ``pp``, ``ep``, the
attention sharding ``attention_dp`` (0 by heads, 1 data-parallel) and ``gpus`` are integer variables
equal to the chosen option's, so the divisibility rules read as constraints (``tp_divides_heads``,
``ep_divides_experts``); their domains come from the data. A
serving mode adds its amortised prefill to ``latency_ns`` and the SLO rows ``tpot_max`` and
``ttft_max`` (``_add_slo_rows``), as in the MILP.

Sections follow the OR-Tools samples: data, variables, constraints, objective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from infecon.formulations.cpsat_solver import configured_solver
from infecon.formulations.relaxation import OptionPool, Options, option_names, usd_per_million_tokens_per_gpu_second
from infecon.formulations.solution import Answer
from infecon.formulations.space import LAYOUT_COLUMNS, Problem

NS_PER_S = 1e9
LATENCY_WEIGHT_SCALE = 1 << 16  # latency_ns * 2^16 >= sum(floor(2^16 / tokens_per_iteration) * iteration_ns)
CAP_SLACK = 1e-7  # caps relaxed outward by this share, as in the MILP
SHARE_SCALE = 1 << 20  # a TTFT cap's largest prefill share, as an integer numerator over 2^20


def to_ns(seconds, *, rounding: str) -> np.ndarray:
    """Seconds as integer nanoseconds, rounded ``"down"`` (a lower bound) or ``"up"`` (a cap).

    The one place where floats become CP-SAT integers: the direction keeps the model a relaxation.
    """
    scaled = np.asarray(seconds, dtype=float) * NS_PER_S
    rounded = np.floor(scaled) if rounding == "down" else np.ceil(scaled)
    return rounded.astype(np.int64)


@dataclass
class CpSatEncoding:
    """A built model and the handles the epsilon loop changes between solves."""

    model: cp_model.CpModel
    choose: list
    micro_batch: list
    iteration_ns: list  # linear expressions
    latency_ns: cp_model.IntVar
    cost_lhs: cp_model.LinearExpr  # GPUs x iteration_ns, summed over options
    latency_max_ns: int


def build_cpsat(problem: Problem, options: Options, *, max_usd_per_million_tokens: float | None = None
                ) -> CpSatEncoding:
    """The CP-SAT model over ``options`` (module docstring); with ``max_usd_per_million_tokens`` its ``cost_cap``
    rows, one per option, else none (an open cap is no row: nothing vacuous in an exported model)."""
    # Data.
    o = options
    n = len(o)
    compute = to_ns(o.compute_s_per_sequence, rounding="down")
    hbm0, hbm1 = to_ns(o.hbm_intercept_s, rounding="down"), to_ns(o.hbm_s_per_sequence, rounding="down")
    serial0, serial1 = to_ns(o.serial_intercept_s, rounding="down"), to_ns(o.serial_s_per_sequence, rounding="down")
    prefill0, prefill1 = to_ns(o.prefill_intercept_s, rounding="down"), to_ns(o.prefill_s_per_sequence, rounding="down")
    busy_max = np.maximum(compute * o.m_hi, hbm0 + np.maximum(hbm1, 0) * o.m_hi)
    if problem.constraints.ttft_max_s is not None:
        # Up to the iteration's true time at the segment's end, so that busy_ns can take any true step's value: the
        # ttft_max row may need the true, longer step (a longer step makes the carried prefills a smaller share).
        busy_max = np.maximum(busy_max, to_ns(o.iteration_upper_s, rounding="up"))
    layouts = o.layouts[o.layout]
    label = option_names(o)  # tp8_pp1_ep1_s3: each option's layout, draft length and segment
    model = cp_model.CpModel()

    # Variables.
    choose = [model.new_bool_var(f"choose_{label[k]}") for k in range(n)]
    micro_batch = [model.new_int_var(0, int(o.m_hi[k]), f"micro_batch_{label[k]}") for k in range(n)]
    busy = [model.new_int_var(0, int(busy_max[k]), f"busy_ns_{label[k]}") for k in range(n)]
    batch = model.new_int_var(o.batch_min, o.batch_max, "batch")
    degree_names = LAYOUT_COLUMNS
    degrees = {name: model.new_int_var_from_domain(cp_model.Domain.from_values(sorted(set(layouts[:, j].tolist()))),
                                                   name) for j, name in enumerate(degree_names)}
    gpus = model.new_int_var_from_domain(cp_model.Domain.from_values(sorted(set(o.gpus.tolist()))), "gpus")
    iteration = [busy[k] + int(serial0[k]) * choose[k] + int(serial1[k]) * micro_batch[k] for k in range(n)]
    latency_max = int((busy_max + serial0 + np.maximum(serial1, 0) * o.m_hi + prefill0 + prefill1 * o.m_hi).max())
    latency = model.new_int_var(0, latency_max, "latency_ns")

    # Constraints: one option, its segment, the step time's lines.
    model.add_exactly_one(choose).with_name("one_configuration")
    for k in range(n):
        model.add(micro_batch[k] >= int(o.m_lo[k]) * choose[k]).with_name(f"segment_start_{label[k]}")
        model.add(micro_batch[k] <= int(o.m_hi[k]) * choose[k]).with_name(f"segment_end_{label[k]}")
        model.add(busy[k] >= int(compute[k]) * micro_batch[k]).with_name(f"compute_bound_{label[k]}")
        model.add(busy[k] >= int(hbm1[k]) * micro_batch[k] + int(hbm0[k]) * choose[k]).with_name(
            f"hbm_bound_{label[k]}")
    model.add(batch == sum(int(o.pp[k]) * micro_batch[k] for k in range(n))).with_name("batch_definition")
    for j, name in enumerate(degree_names):
        model.add(degrees[name] == sum(int(layouts[k, j]) * choose[k] for k in range(n))).with_name(f"{name}_of_layout")
    model.add(gpus == sum(int(o.gpus[k]) * choose[k] for k in range(n))).with_name("gpus_of_layout")
    weights = np.floor(LATENCY_WEIGHT_SCALE * o.decode_weight / o.tokens_per_iteration).astype(np.int64)
    prefill = [LATENCY_WEIGHT_SCALE * (int(prefill0[k]) * choose[k] + int(prefill1[k]) * micro_batch[k])
               for k in range(n)]
    model.add(LATENCY_WEIGHT_SCALE * latency >= sum(int(weights[k]) * iteration[k] + prefill[k]
                                                    for k in range(n))).with_name("latency_definition")

    # Rules. Divisibility and node rules are already the layouts' domain; two are restated for the reader.
    model.add_modulo_equality(0, problem.model.n_heads, degrees["tp_cols"]).with_name("tp_divides_heads")
    if problem.model.is_moe:
        model.add_modulo_equality(0, problem.model.n_routed_experts, degrees["ep"]).with_name("ep_divides_experts")
    model.add(gpus <= problem.space.max_gpus).with_name("max_gpus")
    # Per option, homogeneous in the option's variables (as in the MILP): hbm_capacity in whole bytes,
    # rounded so that the integer rule is never stricter than the physics.
    capacity = math.ceil(problem.hardware.hbm_capacity_bytes * (1 + CAP_SLACK))
    fixed = np.floor(o.hbm_fixed_bytes).astype(np.int64)
    per_micro = np.floor(o.hbm_bytes_per_micro_sequence).astype(np.int64)
    for k in range(n):
        model.add(int(fixed[k] - capacity) * choose[k] + int(per_micro[k]) * micro_batch[k] <= 0).with_name(
            f"hbm_capacity_{label[k]}")
    budget = problem.constraints.budget_usd_per_hour
    if budget is not None:
        model.add(gpus <= math.floor(budget * (1 + CAP_SLACK) / problem.hardware.price_usd_per_hour)).with_name(
            "budget")
    if problem.constraints.demand_tokens_per_s is not None:
        allowed = np.ceil(np.minimum(o.demand_batch_bound * (1 + CAP_SLACK), o.m_hi * o.pp)).astype(np.int64)
        for k in range(n):
            model.add(int(o.pp[k]) * micro_batch[k] <= int(allowed[k]) * choose[k]).with_name(f"demand_cap_{label[k]}")
    _add_slo_rows(model, problem, o, choose, micro_batch, iteration, label)
    if max_usd_per_million_tokens is not None:
        ks = _batch_coefficients(problem, o, latency_max, max_usd_per_million_tokens)
        for k in range(n):  # cost <= cap as GPUs x iteration_ns <= K x micro_batch (``_batch_coefficients``)
            model.add(int(o.gpus[k]) * iteration[k] <= int(ks[k]) * micro_batch[k]).with_name(f"cost_cap_{label[k]}")
    cost_lhs = sum(int(o.gpus[k]) * iteration[k] for k in range(n))

    # Objective: latency per token.
    model.minimize(latency)
    return CpSatEncoding(model, choose, micro_batch, iteration, latency, cost_lhs, latency_max)


def _add_slo_rows(model: cp_model.CpModel, problem: Problem, o: Options, choose, micro_batch, iteration,
                  label: list[str]) -> None:
    """``ttft_max`` per option and ``tpot_max`` (the decode latency per output token, plus a closed loop's prefill).

    ttft_max: share x iteration >= queue x micro_batch + intercept (``relaxation``), in integers as
    ``S x (iteration_ns + 1) >= Q x micro_batch + C`` with ``S = ceil(share 2^20)`` and ``Q``, ``C``
    (nanoseconds x 2^20) rounded down, a coarser power of two where 2^20 could overflow; the ``+ 1`` ns
    covers the iteration's own rounding down, so the row only ever relaxes the rule.
    tpot_max: sum of floor(2^16 / tokens) x iteration_ns + 2^16 x tpot_ns x micro_batch <= 2^16 x cap.
    """
    n = len(o)
    if problem.constraints.ttft_max_s is not None:
        # Each row's scale keeps its terms below 2^61 (CP-SAT's integers are 64-bit); a coarser scale only
        # rounds the share further up, which relaxes the row.
        magnitude = np.maximum.reduce([to_ns(o.iteration_upper_s, rounding="up") + 1.0,
                                       np.abs(o.ttft_s_per_sequence) * NS_PER_S * o.m_hi,
                                       np.abs(o.ttft_intercept_s) * NS_PER_S]) + 1
        scale = np.minimum(float(SHARE_SCALE), 2.0 ** np.floor(np.log2(2.0 ** 61 / magnitude)))
        shares = np.ceil(o.ttft_iteration_share * scale)
        queue = np.floor(o.ttft_s_per_sequence * NS_PER_S * scale)
        intercept = np.floor(o.ttft_intercept_s * NS_PER_S * scale)
        for k in range(n):
            if shares[k] < scale[k] and scale[k] >= 1:
                model.add(int(shares[k]) * (iteration[k] + choose[k])
                          >= int(queue[k]) * micro_batch[k] + int(intercept[k]) * choose[k]).with_name(
                    f"ttft_max_{label[k]}")
    if problem.constraints.tpot_max_s is not None:
        cap = int(to_ns(problem.constraints.tpot_max_s * (1 + CAP_SLACK), rounding="up"))
        weights = np.floor(LATENCY_WEIGHT_SCALE / o.tokens_per_iteration).astype(np.int64)
        per_sequence = to_ns(o.tpot_s_per_sequence, rounding="down")
        model.add(sum(int(weights[k]) * iteration[k] + LATENCY_WEIGHT_SCALE * int(per_sequence[k]) * micro_batch[k]
                      for k in range(n)) <= LATENCY_WEIGHT_SCALE * cap).with_name("tpot_max")


class CpSatSession:
    """Solve after solve with new caps, objective and exclusions, each over the options that can meet its caps.

    As in ``MilpSession``: an option whose ``relaxation.option_floors`` break a cap, or whose layout
    the loop already knows, is left out of the solve's model (``build_cpsat`` gives the whole one).
    """

    def __init__(self, problem: Problem, options: Options, *, workers: int = 1) -> None:
        self.problem = problem
        self.options = options
        self.workers = workers
        self.pool = OptionPool(problem, options)
        self.description = "cpsat"

    def exclude_layouts(self, layouts) -> None:
        """Leave the options of these layouts out of every later solve."""
        self.pool.exclude_layouts(layouts)

    def solve(self, *, max_usd_per_million_tokens: float | None = None, max_latency_s: float | None = None,
              objective: str = "latency", time_limit_s: float | None = None) -> Answer:
        """The best option under the caps (see ``MilpSession.solve``); the latency bound is in seconds."""
        active = self.pool.active(max_usd_per_million_tokens, max_latency_s)
        if not active.any():
            return Answer("INFEASIBLE")
        options = self.options.subset(active)
        enc = build_cpsat(self.problem, options, max_usd_per_million_tokens=max_usd_per_million_tokens)
        if max_latency_s is not None:
            enc.model.add(enc.latency_ns <= int(to_ns(max_latency_s * (1 + CAP_SLACK), rounding="up"))
                          ).with_name("latency_cap")
        if objective == "latency":
            enc.model.minimize(enc.latency_ns)
        else:
            ks = _batch_coefficients(self.problem, options, enc.latency_max_ns, max_usd_per_million_tokens or 0.0)
            enc.model.minimize(enc.cost_lhs - sum(int(ks[k]) * enc.micro_batch[k] for k in range(len(ks))))
        solver = configured_solver(workers=self.workers, time_limit_s=time_limit_s)
        status = solver.solve(enc.model)
        if status == cp_model.OPTIMAL:
            chosen = next(k for k, var in enumerate(enc.choose) if solver.boolean_value(var))
            bound = solver.best_objective_bound
            return Answer("OPTIMAL", int(options.layout[chosen]),
                          bound / NS_PER_S if objective == "latency" else bound)
        if status == cp_model.INFEASIBLE:
            return Answer("INFEASIBLE")
        return Answer("TIME_LIMIT" if time_limit_s is not None else "UNKNOWN")


def _batch_coefficients(problem: Problem, o: Options, latency_max_ns: int, usd_per_million_tokens: float
                        ) -> np.ndarray:
    """``cost_cap`` as GPUs x iteration_ns <= K x micro_batch: K per option, rounded up (a relaxation).

    cost = w GPUs f iteration_ns / (tokens_per_iteration pp micro_batch), with f the cost per million
    tokens of one GPU-nanosecond (``relaxation.usd_per_million_tokens_per_gpu_second`` / 1e9) and w the
    decode weight (1 but in a static batch), so cost <= C is GPUs iteration_ns <= C tokens_per_iteration
    pp / (f w) x micro_batch. K is clipped where it could not bind anyway, to keep CP-SAT's integers in range.
    """
    charged = usd_per_million_tokens_per_gpu_second(problem) / NS_PER_S * o.decode_weight
    # A static batch with osl 1 charges nothing to decode steps: its cap never binds.
    k = np.where(charged > 0, usd_per_million_tokens * (1 + CAP_SLACK) * o.tokens_per_iteration * o.pp
                 / np.where(charged > 0, charged, 1.0), np.inf)
    lhs_max = o.gpus.astype(float) * latency_max_ns * o.tokens_per_iteration
    never_binding = lhs_max / np.maximum(o.m_lo, 1) + 1
    return np.ceil(np.minimum(k, never_binding)).astype(np.int64)
