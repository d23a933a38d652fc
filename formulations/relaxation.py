"""What the CP-SAT and MILP encodings are built from: per layout, lines in the micro-batch that bound the physics.

Why a bound and not a table: an encoding must keep the layout degrees and the batch as decision
variables, with a model whose size does not grow with the number of batch sizes. The step time
is ``max(compute, hbm) + serial`` (``perf.StepStructure``): compute is linear in the micro-batch
``m``, while HBM time (the MoE share of experts, eq. 22) and the serial collectives (the cheapest
NCCL protocol per call) are concave. So each (layout, draft length) gets a few *segments*
``[m_lo, m_hi]`` of the micro-batch, and on each segment:

* ``compute_s = compute_s_per_sequence * m`` exactly;
* ``hbm_s >= hbm_intercept_s + hbm_s_per_sequence * m``: the chord of a concave function, below it;
* ``serial_s >= serial_intercept_s + serial_s_per_sequence * m``: the same, for collectives and kernels;
* under a serving engine the pass is the engine's (``serving.serving_structure``): efficiencies scale
  compute and HBM, and the engine's overhead (a constant plus a coefficient per sequence) joins the
  serial line, still concave; a closed loop's latency adds its amortised prefill, linear in ``m``
  (``prefill_s_per_sequence``), which the cost does not carry; a static batch's latency weighs the
  iteration (osl - 1) / osl (``decode_weight``, also in its cost) and adds a line below its batch
  prefill over osl; a TTFT cap becomes a row linear in the iteration and ``m`` (``ttft_iteration_share``,
  ``ttft_s_per_sequence``, ``ttft_intercept_s``: a closed loop's largest prefill share, a static
  batch's prefill line, or an unreachable layout); at a percentile SLO (``Constraints.slo_percentile``)
  the TTFT row takes the largest share at that percentile (``ServingStructure.ttft_limits``), and the TPOT
  row only the bare iteration, a lower bound on every percentile of TPOT (``latency.LatencySpread``);
* a speculative iteration adds ``gamma`` drafter passes, bounded below by the fastest drafter layout's
  pass at ``m_lo`` (every layout's pass grows with the batch; divisibility of the drafter's PP is
  ignored, which only lowers the bound).

Every line is a *lower bound* of the physics at every integer micro-batch of its segment
(``tests/formulations/test_relaxation.py``), and the memory, GPU and budget rules are exact or
relaxed outward. An encoding over these lines is therefore a relaxation: its optimum under a cap
is never worse than the true optimum, and its proven bound is a valid bound on every
configuration it covers. ``solver/epsilon.py`` turns that into exact answers by evaluating the
layouts the solver points at with the physics itself. The segment breakpoints are geometric, a
fixed number per layout (``SEGMENTS_PER_LAYOUT``), so the model's size does not grow with the largest
batch: at most 8 segments per layout, the same model from max batch 8,192 to 10^6; at small maxima
a layout with fewer than 9 micro-batches has one segment per micro-batch (Llama 3 70B: 1,403 options
at max batch 64, 1,976 at 8,192).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np

from infecon.formulations.perf import expected_tokens_per_iteration, hbm_bytes_per_gpu_affine, largest_batch_in_hbm
from infecon.formulations.serving import PassStructure, PassTime, pass_structure, serving_structure
from infecon.formulations.space import (
    Problem,
    batch_domain,
    drafter_layouts,
    largest_batch,
    layout_attention,
    searched_layouts,
    sequence_caps,
)

SEGMENTS_PER_LAYOUT = 8  # segments of each layout's micro-batch range, geometric
# Service-level caps are relaxed outward by this share (and a TTFT's prefill share by this much), so that
# rounding can never cut off a configuration the physics allows; the exact check is the epsilon loop's.
SLO_SLACK = 1e-7
# An option is left out of a solve only when its floor exceeds a cap by more than this share: far above
# the floating-point error of the floors, far below any difference the frontier resolves.
FLOOR_SLACK = 1e-6


@dataclass(frozen=True)
class Options:
    """One row per (layout, draft length, segment): the encodings' columns come from these arrays.

    Times are seconds. ``layout`` indexes ``layouts``: ``space.searched_layouts``, the layouts that
    pass the divisibility and node rules (``tp_divides_heads``, ``ep_divides_experts``, ...), in
    canonical order, each in the attention shardings the problem searches. Those rules are the layout
    variable's domain, read from the data; the attention sharding is part of the layout, so its lines
    are the physics' own for that sharding and the encodings need not know it exists.
    """

    layouts: np.ndarray  # (n_layouts, 5): space.LAYOUT_COLUMNS (tp_rows, tp_cols, pp, ep, attention_dp)
    layout: np.ndarray
    draft_tokens: np.ndarray
    m_lo: np.ndarray
    m_hi: np.ndarray
    pp: np.ndarray
    gpus: np.ndarray
    compute_s_per_sequence: np.ndarray
    hbm_intercept_s: np.ndarray
    hbm_s_per_sequence: np.ndarray
    serial_intercept_s: np.ndarray
    serial_s_per_sequence: np.ndarray
    tokens_per_iteration: np.ndarray
    # Latency per output token = decode_weight x iteration / tokens + prefill_intercept_s + prefill_s_per_sequence x m
    # (closed loop: the amortised prefill; static batch: the batch prefill's line over osl); TPOT = iteration /
    # tokens + tpot_s_per_sequence x m; cost per output token charges decode_weight x iteration / tokens.
    decode_weight: np.ndarray
    prefill_intercept_s: np.ndarray
    prefill_s_per_sequence: np.ndarray
    tpot_s_per_sequence: np.ndarray
    iteration_upper_s: np.ndarray  # the iteration's true time at the segment's end: an upper bound on it
    # TTFT cap: ttft_iteration_share x iteration >= ttft_s_per_sequence x m + ttft_intercept_s (a positive
    # intercept with share 0 where no batch meets it).
    ttft_iteration_share: np.ndarray
    ttft_s_per_sequence: np.ndarray
    ttft_intercept_s: np.ndarray
    hbm_fixed_bytes: np.ndarray
    hbm_bytes_per_micro_sequence: np.ndarray
    demand_batch_bound: np.ndarray  # largest batch the demand cap allows on the segment (inf: no cap)
    batch_min: int
    batch_max: int

    def __len__(self) -> int:
        return len(self.layout)

    def subset(self, keep: np.ndarray) -> Options:
        """The options where ``keep`` is True (per-option arrays filtered; layouts and batch range kept)."""
        n = len(self)
        return dataclasses.replace(self, **{
            field.name: getattr(self, field.name)[keep] for field in dataclasses.fields(self)
            if field.name != "layouts" and isinstance(getattr(self, field.name), np.ndarray)
            and len(getattr(self, field.name)) == n})


def option_names(o: Options) -> list[str]:
    """Each option as its layout, draft length and segment, e.g. ``tp8_pp1_ep1_s3`` or ``tp4x8_pp2_ep1_adp_d3_s0``.

    Why: an exported model (``--export-model``) should read like the design; ``choose_7`` says nothing of the
    layout it chooses. ``tpRxC`` is a 2-D grid, ``adp`` attention data-parallel, ``dG`` a draft length G (shown
    only with a drafter), ``sJ`` the J-th segment of micro-batches of that layout and draft length.
    """
    names, seen = [], {}
    speculative = bool((o.draft_tokens > 0).any())
    for k in range(len(o)):
        rows, cols, pp, ep, data = (int(v) for v in o.layouts[o.layout[k]])
        draft = int(o.draft_tokens[k])
        key = (int(o.layout[k]), draft)
        segment = seen.get(key, 0)
        seen[key] = segment + 1
        tp = f"tp{cols}" if rows == 1 else f"tp{rows}x{cols}"
        names.append(f"{tp}_pp{pp}_ep{ep}{'_adp' if data else ''}{f'_d{draft}' if speculative else ''}_s{segment}")
    return names


def usd_per_million_tokens_per_gpu_second(problem: Problem) -> float:
    """Cost per million tokens of one GPU-second spent per token: price per GPU-second times 1e6."""
    return problem.hardware.price_usd_per_hour / 3600.0 * 1e6


@dataclass(frozen=True)
class Floors:
    """Per option, lower bounds on what any of its configurations can reach: the loop prunes with them.

    ``latency_s``: latency per output token; ``usd_per_million_tokens``: cost. Each term of the
    option's lines is minimised over its segment on its own (the lines are nondecreasing in the
    micro-batch in practice, but the bound does not rely on it), so each floor is at most the
    lines' value at every micro-batch of the segment, and the lines never exceed the physics.
    An option whose floor breaks a cap has no configuration that meets it: leaving it out of a
    solve changes no answer (``formulations.milp``, ``formulations.cpsat``).
    """

    latency_s: np.ndarray
    usd_per_million_tokens: np.ndarray

    def within(self, max_usd_per_million_tokens: float | None, max_latency_s: float | None) -> np.ndarray:
        """True for options that may meet the caps (relaxed outward by ``FLOOR_SLACK``)."""
        keep = np.ones(len(self.latency_s), dtype=bool)
        if max_usd_per_million_tokens is not None:
            keep &= self.usd_per_million_tokens <= max_usd_per_million_tokens * (1 + FLOOR_SLACK)
        if max_latency_s is not None:
            keep &= self.latency_s <= max_latency_s * (1 + FLOOR_SLACK)
        return keep


class OptionPool:
    """The options a session may still choose: not of a layout the loop knows, and not above a cap's floor.

    Shared by the MILP and CP-SAT sessions, which state each solve's model over ``active(...)``;
    the epsilon loop reads the lowest floors to aim its horizon (``solver.epsilon.Horizon``).
    """

    def __init__(self, problem: Problem, options: Options) -> None:
        self.options = options
        self.floors = option_floors(problem, options)
        self.excluded = np.zeros(len(options), dtype=bool)

    def exclude_layouts(self, layouts) -> None:
        self.excluded |= np.isin(self.options.layout, [int(x) for x in layouts])

    def active(self, max_usd_per_million_tokens: float | None, max_latency_s: float | None) -> np.ndarray:
        return ~self.excluded & self.floors.within(max_usd_per_million_tokens, max_latency_s)

    def lowest_latency_s(self, max_usd_per_million_tokens: float | None = None) -> float:
        """The smallest latency floor among the active options under a cost cap (inf if none)."""
        active = self.active(max_usd_per_million_tokens, None)
        return float(self.floors.latency_s[active].min()) if active.any() else np.inf

    def lowest_usd_per_million_tokens(self, max_latency_s: float | None = None) -> float:
        """The smallest cost floor among the active options under a latency cap (inf if none)."""
        active = self.active(None, max_latency_s)
        return float(self.floors.usd_per_million_tokens[active].min()) if active.any() else np.inf


def option_floors(problem: Problem, options: Options) -> Floors:
    """``Floors`` of every option, from the same lines the encodings state (``Options``)."""
    o = options

    def lowest(intercept, slope, m):
        """min over the segment of intercept + slope m, or of intercept / m + slope when ``m`` is 'per'."""
        return np.minimum(intercept + slope * o.m_lo, intercept + slope * o.m_hi) if m == "at" else \
            np.minimum(intercept / o.m_lo, intercept / o.m_hi) + slope

    m_lo = o.m_lo.astype(float)
    busy = np.maximum(o.compute_s_per_sequence * m_lo, lowest(o.hbm_intercept_s, o.hbm_s_per_sequence, "at"))
    iteration = busy + lowest(o.serial_intercept_s, o.serial_s_per_sequence, "at")
    latency = (o.decode_weight * iteration / o.tokens_per_iteration
               + lowest(o.prefill_intercept_s, o.prefill_s_per_sequence, "at"))
    # Cost charges w GPUs iteration / (tokens pp m): per micro-sequence, busy / m >= max(compute, hbm0 / m + hbm1).
    busy_per_sequence = np.maximum(o.compute_s_per_sequence, lowest(o.hbm_intercept_s, o.hbm_s_per_sequence, "per"))
    iteration_per_sequence = busy_per_sequence + lowest(o.serial_intercept_s, o.serial_s_per_sequence, "per")
    cost = (usd_per_million_tokens_per_gpu_second(problem) * o.gpus * o.decode_weight * iteration_per_sequence
            / (o.tokens_per_iteration * o.pp))
    return Floors(latency_s=latency, usd_per_million_tokens=cost)


def _segments(m_max: int) -> list[tuple[int, int]]:
    """At most ``SEGMENTS_PER_LAYOUT`` geometric segments covering 1..m_max (shared endpoints are harmless).

    A fixed count, so the model's size does not grow with the largest batch (below 9 micro-batches
    each has its own segment, exact); the segments get wider as it grows, and their chords looser,
    which costs solves, never correctness.
    """
    if m_max <= 1:
        return [(1, 1)]
    points = sorted({round(m_max ** (k / SEGMENTS_PER_LAYOUT)) for k in range(SEGMENTS_PER_LAYOUT + 1)})
    return list(itertools.pairwise(points))


def _chord(values_lo, values_hi, m_lo, m_hi):
    """Intercept and slope of the line through (m_lo, values_lo) and (m_hi, values_hi)."""
    width = np.maximum(m_hi - m_lo, 1)
    slope = np.where(m_hi > m_lo, (values_hi - values_lo) / width, 0.0)
    return values_lo - slope * m_lo, slope


def _serial_s(step: PassTime) -> np.ndarray:
    """What a pass adds after max(compute, HBM): collectives, kernels and the engine's affine overhead."""
    return step.physics.network_s + step.physics.collective_latency_s + step.overhead_s


def build_options(problem: Problem) -> Options:
    """The segments of every (valid layout, draft length), with their bounding lines (module docstring).

    The lines bound the problem's own pass: the paper's decode step without an engine, else the
    engine's (``serving.serving_structure``: efficiencies, kernels, affine overheads), plus the
    closed loop's amortised prefill, which is linear in the micro-batch, or a static batch's prefill pass
    over the micro-batch (a line below it: the busier of compute and HBM at the segment's end).

    """
    model, hw, workload, space = problem.model, problem.hardware, problem.workload, problem.space
    layouts = searched_layouts(problem)
    spec = problem.speculative
    if spec is None:
        gammas = [0]
    elif space.draft_tokens is not None:
        gammas = [space.draft_tokens]
    else:
        gammas = list(range(spec.max_draft_tokens + 1))
    if space.batch_sizes is not None:
        domain = batch_domain(problem, layouts)  # the user's sizes within the engine's cap on sequences
        batch_min, batch_max = int(domain.min()), int(domain.max())
    else:
        batch_min, batch_max = 1, largest_batch(problem, layouts)
    rows = []
    tp = layouts[:, 0] * layouts[:, 1]
    pp_all = layouts[:, 2]
    # Each layout's own attention sharding, as serving_metrics splits it.
    fits = largest_batch_in_hbm(model, hw, workload, tp=tp, pp=pp_all, attention=layout_attention(problem, layouts))
    caps = sequence_caps(problem, layouts)  # the engine's cap on sequences, per layout (x DP ranks with attention DP)
    if caps is not None:
        fits = np.minimum(fits, caps)
    for li, pp in enumerate(pp_all):
        m_max = min(batch_max, int(fits[li])) // int(pp)
        m_min = -(-batch_min // int(pp))
        if m_max < max(m_min, 1):
            continue
        for lo, hi in _segments(m_max):
            if hi < m_min:
                continue
            rows.append((li, max(lo, m_min), hi))
    base = np.array(rows, dtype=np.int64).reshape(-1, 3)  # empty when no layout holds a batch: infeasible
    n = len(base)
    layout_idx = np.repeat(base[:, 0], len(gammas))
    m_lo = np.repeat(base[:, 1], len(gammas))
    m_hi = np.repeat(base[:, 2], len(gammas))
    gamma = np.tile(np.array(gammas, dtype=np.int64), n)
    tp_rows, tp_cols, pp, ep, data = (layouts[layout_idx, k] for k in range(layouts.shape[1]))
    attention = layout_attention(problem, layouts[layout_idx])
    utilization = {} if problem.prefill_utilization is None else {"prefill_utilization": problem.prefill_utilization}
    serving = serving_structure(model, hw, workload, problem.requests, problem.engine, problem.mode,
                                tp_rows=tp_rows, tp_cols=tp_cols, pp=pp, ep=ep, tokens_per_sequence=gamma + 1,
                                attention_dp=data.astype(bool), **utilization)
    at_lo, at_hi = serving.decode.at(m_lo), serving.decode.at(m_hi)
    hbm_intercept, hbm_slope = _chord(at_lo.physics.hbm_read_s, at_hi.physics.hbm_read_s, m_lo, m_hi)
    serial_intercept, serial_slope = _chord(_serial_s(at_lo), _serial_s(at_hi), m_lo, m_hi)
    # Compute is affine in the micro-batch (a measured GEMM curve adds a constant, perf.StepStructure): its slope
    # times m is a line below it (busy >= compute_s_per_sequence m), exact for a flat curve.
    compute_per_sequence = (serving.decode.at(np.ones(len(gamma))).physics.compute_s
                            - serving.decode.at(np.zeros(len(gamma))).physics.compute_s)
    gpus = tp_rows * tp_cols * pp
    keep = np.ones(len(gamma), dtype=bool)
    if spec is not None and (gamma > 0).any() and len(gamma):
        drafter_floor = _drafter_floor_s(problem, gpus, pp * m_lo)
        keep &= (gamma == 0) | np.isfinite(drafter_floor)
        serial_intercept = serial_intercept + gamma * np.where(gamma > 0, np.nan_to_num(drafter_floor, posinf=0.0), 0)
    tokens = expected_tokens_per_iteration(spec.acceptance, gamma) if spec is not None else np.ones(len(gamma))
    tokens = np.asarray(tokens, dtype=float)
    fixed, per_sequence = hbm_bytes_per_gpu_affine(
        model, workload, tp=tp_rows * tp_cols, pp=pp, tokens_per_sequence=gamma + 1, attention=attention)
    if spec is not None:
        fixed_d, per_d = hbm_bytes_per_gpu_affine(model, workload, tp=tp_rows * tp_cols, pp=pp, drafter=spec.drafter,
                                                  tokens_per_sequence=gamma + 1, attention=attention)
        fixed, per_sequence = np.where(gamma > 0, fixed_d, fixed), np.where(gamma > 0, per_d, per_sequence)
    iteration_upper = _iteration_upper_s(at_hi, gamma, spec, problem, gpus, pp * m_hi)
    weight = np.full(len(gamma), serving.decode_weight)
    amortised = np.asarray(serving.prefill_s_per_sequence, dtype=float)  # closed loop's carried prefill
    prefill0, prefill1 = np.zeros(len(gamma)), amortised.copy()
    latency_upper = weight * iteration_upper / tokens + amortised * m_hi
    if serving.prefill_batch is not None:  # static batch: TTFT is the prefill pass over the micro-batch
        # ... as the prompt waits for it (a constant factor per layout, < 1 where chunks pipeline over stages).
        factor = np.broadcast_to(serving.prefill_latency_factor, m_lo.shape)
        batch_line = tuple(factor * x for x in _pass_lower_line(serving.prefill_batch, m_lo, m_hi))
        prefill0, prefill1 = (serving.prefill_batch_weight * x for x in batch_line)
        latency_upper = latency_upper + serving.prefill_batch_weight * factor * serving.prefill_batch.at(m_hi).total_s
    demand = np.full(len(gamma), np.inf)
    if problem.constraints.demand_tokens_per_s is not None:
        # batch / latency <= demand and latency <= latency(m_hi) on the segment imply
        # batch <= demand * latency(m_hi): a weaker row than the rule, so still a relaxation.
        demand = problem.constraints.demand_tokens_per_s * latency_upper
    share, queue, intercept = np.ones(len(gamma)), np.zeros(len(gamma)), np.zeros(len(gamma))
    if problem.constraints.ttft_max_s is not None:
        cap = problem.constraints.ttft_max_s * (1 + SLO_SLACK)
        reachable, share = serving.ttft_limits(cap, problem.constraints.slo_percentile)
        if problem.mode == "static_batch":  # the batch prefill's lower line <= the cap
            share = np.zeros(len(gamma))
            if serving.prefill_batch is not None:
                queue, intercept = batch_line[1], batch_line[0] - cap
        else:  # closed loop: share (iteration / tokens + a m) >= a m, times tokens
            share = np.minimum(1.0, share + SLO_SLACK)
            queue = (1.0 - share) * amortised * tokens
        share, queue = np.where(reachable, share, 0.0), np.where(reachable, queue, 0.0)
        intercept = np.where(reachable, intercept, 1.0)
    # TPOT at a percentile is s0 + carried N_q / (osl - 1) with N_q >= 0 (``latency.LatencySpread``), so the
    # bare iteration alone bounds it from below: the TPOT row keeps no prefill slope (at the mean it is exact).
    tpot_slope = amortised if problem.constraints.slo_percentile is None else np.zeros(len(gamma))
    select = np.flatnonzero(keep)
    return Options(
        layouts=layouts, layout=layout_idx[select], draft_tokens=gamma[select], m_lo=m_lo[select],
        m_hi=m_hi[select], pp=pp[select], gpus=gpus[select],
        compute_s_per_sequence=compute_per_sequence[select],
        hbm_intercept_s=hbm_intercept[select], hbm_s_per_sequence=hbm_slope[select],
        serial_intercept_s=serial_intercept[select], serial_s_per_sequence=serial_slope[select],
        tokens_per_iteration=tokens[select],
        decode_weight=weight[select], prefill_intercept_s=prefill0[select], prefill_s_per_sequence=prefill1[select],
        tpot_s_per_sequence=tpot_slope[select],
        iteration_upper_s=iteration_upper[select], ttft_iteration_share=share[select],
        ttft_s_per_sequence=queue[select], ttft_intercept_s=intercept[select],
        hbm_fixed_bytes=np.asarray(fixed, dtype=float)[select],
        hbm_bytes_per_micro_sequence=np.asarray(per_sequence * pp, dtype=float)[select],
        demand_batch_bound=demand[select], batch_min=batch_min, batch_max=batch_max)


def _pass_lower_line(structure: PassStructure, m_lo, m_hi) -> tuple[np.ndarray, np.ndarray]:
    """(intercept, slope) of a line below a pass on each segment: the busier of compute and the HBM chord at the
    segment's end, plus the serial chord. max(compute, HBM) is at least either, so any choice is a lower bound."""
    at_lo, at_hi = structure.at(m_lo), structure.at(m_hi)
    compute0 = structure.at(np.zeros(np.shape(m_lo))).physics.compute_s  # affine: its value at 0 and its slope
    compute = structure.at(np.ones(np.shape(m_lo))).physics.compute_s - compute0
    hbm0, hbm1 = _chord(at_lo.physics.hbm_read_s, at_hi.physics.hbm_read_s, m_lo, m_hi)
    serial0, serial1 = _chord(_serial_s(at_lo), _serial_s(at_hi), m_lo, m_hi)
    compute_binds = compute0 + compute * m_hi >= hbm0 + hbm1 * m_hi
    return (serial0 + np.where(compute_binds, compute0, hbm0),
            serial1 + np.where(compute_binds, compute, hbm1))


def _drafter_candidates(problem: Problem, gpus: int) -> np.ndarray:
    return drafter_layouts(problem.speculative.drafter, problem.hardware, gpus, problem.space.uneven_stages)


def _drafter_pass_s(problem: Problem, candidates: np.ndarray, batch: np.ndarray) -> np.ndarray:
    """One drafter pass over ``batch`` sequences in each candidate layout (rows), under the problem's engine."""
    structure = pass_structure(problem.speculative.drafter, problem.hardware, problem.workload, problem.engine,
                               tp_rows=candidates[:, 0, None], tp_cols=candidates[:, 1, None],
                               pp=candidates[:, 2, None], ep=1)
    return structure.at(batch / candidates[:, 2, None]).total_s


def _drafter_floor_s(problem: Problem, gpus: np.ndarray, batch: np.ndarray) -> np.ndarray:
    """A lower bound on one drafter pass at ``batch`` or more: the fastest drafter layout's pass at ``batch``.

    Every layout's pass grows with the batch, so its value at the segment's first batch bounds the
    segment; taking all drafter layouts (ignoring that a drafter PP degree must divide the batch)
    can only lower the bound. Infinite where the drafter has no layout on ``gpus`` GPUs.
    """
    out = np.full(len(gpus), np.inf)
    for g in np.unique(gpus):
        candidates = _drafter_candidates(problem, int(g))
        if len(candidates) == 0:
            continue
        cols = np.flatnonzero(gpus == g)
        step = _drafter_pass_s(problem, candidates, np.maximum(batch[cols][None, :], candidates[:, 2, None]))
        out[cols] = step.min(axis=0)
    return out


def _iteration_upper_s(at_hi, gamma, spec, problem, gpus, batch_hi) -> np.ndarray:
    """An upper bound on an iteration's seconds on a segment: the target at its last micro-batch, plus the
    drafter passes at the slowest drafter layout there (any chosen layout is at most that slow)."""
    target = at_hi.total_s
    if spec is None or not (gamma > 0).any():
        return target
    slowest = np.zeros(len(gpus))
    for g in np.unique(gpus):
        candidates = _drafter_candidates(problem, int(g))
        if len(candidates) == 0:
            continue
        cols = np.flatnonzero(gpus == g)
        step = _drafter_pass_s(problem, candidates, batch_hi[cols][None, :])
        slowest[cols] = step.max(axis=0)
    return target + gamma * slowest

