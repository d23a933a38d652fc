"""The exhaustive numpy oracle: every configuration accounted for, the exact Pareto frontier extracted.

Because it accounts for every point, it cannot miss one; the CP-SAT and MILP backends are tested
against it. It is also the fastest backend for the spaces we ship, and the default.

``pareto_indices`` and ``best_index`` filter one ``ConfigTable``. At integer batch resolution the
space is too big for one table (Llama 3 70B on H100: 248 layouts x 101,340 batches), so
``enumerate_frontier`` walks it piece by piece (``space.tabulate_rows``; batches by position on a
``space.BatchAxis``), vectorised over batches, keeping a running Pareto set; ``enumerate_point``
answers the single-point queries the same way. Both return exactly what ``pareto_indices`` (and
``best_index``) return on the whole table: the same points, the same canonical ``config_index``,
the same columns and the same tie-breaks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from infecon.formulations.errors import InstanceError
from infecon.formulations.space import (
    MAX_TABULATED_CONFIGURATIONS,
    BatchAxis,
    ConfigTable,
    Problem,
    batch_ladder,
    batches_within_hbm,
    latency_floor,
    searched_layouts,
    sequence_caps,
    tabulate_rows,
)
from infecon.solver.frontier import configuration_frame

# Configurations evaluated per call of the physics: about a kilobyte each while evaluated, so a
# piece stays near 250 MB however large the space is.
CHUNK_CONFIGURATIONS = 250_000
# A batch interval whose bounds are not dominated is cut at this many interior points, evenly spaced...
SPLIT_POINTS = 8
# ...until it has at most this many interior batches: then they are all evaluated.
WHOLE_INTERVAL_BATCHES = 64
# Bounds are widened by this relative margin before they rule anything out, far beyond the few ulps
# by which two evaluations of a monotone formula can disagree in floating point.
BOUND_MARGIN = 1e-9
# Past the budget, when at least this share of the configurations evaluated is on the frontier, the frontier itself
# is what is too large (``_Space.check_budget``): in the spaces the skip works on, a few per cent are.
DENSE_FRONTIER_SHARE = 0.5


def pareto_indices(table: ConfigTable, mask: np.ndarray | None = None) -> np.ndarray:
    """Indices of the non-dominated feasible configurations, fastest first.

    Sort by (latency, cost, canonical index) and keep a point only if it is strictly cheaper
    than every faster-or-equal point before it. A point equal in both objectives to an earlier
    one is dropped, so nothing weakly dominated survives and ties resolve to the lowest index.
    """
    feasible = table.feasible if mask is None else (table.feasible & mask)
    candidates = np.flatnonzero(feasible)
    if len(candidates) == 0:
        return candidates
    cost = table.usd_per_million_tokens[candidates]
    return candidates[strict_frontier(table.latency_s[candidates], cost, candidates)]


def strict_frontier(latency_s: np.ndarray, cost: np.ndarray, canonical: np.ndarray) -> np.ndarray:
    """Positions of the points strictly cheaper than every point before them in (latency, cost, index) order."""
    order = np.lexsort((canonical, cost, latency_s))
    ordered_cost = cost[order]
    cheapest_before = np.minimum.accumulate(np.concatenate(([np.inf], ordered_cost[:-1])))
    return order[ordered_cost < cheapest_before]


def best_index(table: ConfigTable, objective: str, *, cost_rank_cap: int | None = None,
               latency_rank_cap: int | None = None) -> int | None:
    """The lexicographically best feasible configuration under optional rank caps, or None.

    ``objective`` is ``"fastest"`` (latency, then cost, then index) or ``"cheapest"``.
    """
    feasible = table.feasible.copy()
    if cost_rank_cap is not None:
        feasible &= table.cost_rank <= cost_rank_cap
    if latency_rank_cap is not None:
        feasible &= table.latency_rank <= latency_rank_cap
    if not feasible.any():
        return None
    rank = table.fastest_first_rank if objective == "fastest" else table.cheapest_first_rank
    return int(np.flatnonzero(feasible)[np.argmin(rank[feasible])])


class _Space:
    """The problem's layouts (``space.searched_layouts``) and batch domain, addressed as (layout, position on
    ``BatchAxis``)."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.layouts = searched_layouts(problem)
        self.axis = BatchAxis.of(problem, self.layouts)
        self.sizes = np.array([self.axis.size(int(pp)) for pp in self.layouts[:, 2]], dtype=np.int64)
        if self.sizes.sum() == 0:
            raise InstanceError("the batch domain holds no size divisible by any valid pipeline degree")
        self.offsets = np.concatenate(([0], np.cumsum(self.sizes)))[:-1]  # canonical index of each layout's first
        self.fitting = batches_within_hbm(problem, self.layouts, self.axis)
        caps = sequence_caps(problem, self.layouts)
        if caps is not None:  # past its engine's cap on sequences a layout's batches break max_seqs
            pps = self.layouts[:, 2]
            within = np.array([np.count_nonzero(self.axis.at(int(p), np.arange(self.axis.size(int(p)))) <= c)
                               if self.axis.values is not None else min(int(c) // int(p), self.axis.size(int(p)))
                               for p, c in zip(pps, caps, strict=True)], dtype=np.int64)
            self.fitting = np.minimum(self.fitting, within)
        self.evaluated = 0

    def batch(self, layout: np.ndarray, position: np.ndarray) -> np.ndarray:
        out = np.empty(len(layout), dtype=np.int64)
        pps = self.layouts[layout, 2]
        for pp in np.unique(pps):
            mine = pps == pp
            out[mine] = self.axis.at(int(pp), position[mine])
        return out

    def tables(self, layout: np.ndarray, position: np.ndarray):
        """``(table, canonical index, slice)`` per piece of at most ``CHUNK_CONFIGURATIONS`` of these configurations."""
        for start in range(0, len(layout), CHUNK_CONFIGURATIONS):
            part = slice(start, start + CHUNK_CONFIGURATIONS)
            rows, positions = layout[part], position[part]
            tp_rows, tp_cols, pp, ep, data = (self.layouts[rows, k] for k in range(self.layouts.shape[1]))
            table = tabulate_rows(self.problem, tp_rows=tp_rows, tp_cols=tp_cols, pp=pp, ep=ep,
                                  batch=self.batch(rows, positions), attention_dp=data.astype(bool))
            self.evaluated += len(rows)
            yield table, self.offsets[rows] + positions, part

    def check_budget(self, more: int, front: _RunningFrontier | None = None) -> None:
        """Refuse to evaluate past ``MAX_TABULATED_CONFIGURATIONS`` in all (about a minute of work), saying why.

        Skipping needs feasible points to dominate the rest; where none are found (a cap nothing
        meets), it would evaluate every batch that fits, which at context 0 can be ~10^8 configurations.
        Where most points evaluated are on the frontier, the frontier itself is that large: a small model
        at context ~0 makes each larger batch of a layout a little cheaper per token (a step's fixed time,
        the weights read and the kernels launched, spreads over more sequences) up to tens of millions of
        sequences, and an exact frontier lists every one; no bound on the batch keeps it exact.
        ``front``: the points found so far, to tell the caller whether any was feasible.
        """
        if self.evaluated + more <= MAX_TABULATED_CONFIGURATIONS:
            return
        head = f"'max_batch': the enumeration would evaluate more than {MAX_TABULATED_CONFIGURATIONS:,} configurations"
        if front is not None and len(front.canonical) >= DENSE_FRONTIER_SHARE * max(self.evaluated, 1):
            raise EvaluationBudgetError(f"{head}: the frontier itself is that dense ({self._dense(front)}); "
                                        "set a max_batch (--max-batch), a speed floor (--min-speed, --tpot-max) or a "
                                        "demand (--demand), or use the batch ladder (--batch-ladder)",
                                        nothing_feasible=False)
        raise EvaluationBudgetError(
            f"{head} (every integer batch up to {self.axis.largest:,}): too few feasible ones rule out the rest; "
            "set a max_batch (--max-batch), use the batch ladder (--batch-ladder), or relax the caps",
            nothing_feasible=front is not None and not front.found_any())

    def _dense(self, front: _RunningFrontier) -> str:
        """A dense frontier in numbers: its points so far, and its cheapest point's layout and batch."""
        cheapest = int(np.argmin(front.cost))
        layout = int(np.searchsorted(self.offsets, front.canonical[cheapest], side="right") - 1)
        rows, cols, pp, ep, data = (int(v) for v in self.layouts[layout])
        batch = int(self.axis.at(pp, [front.canonical[cheapest] - self.offsets[layout]])[0])
        largest = int(self.axis.at(pp, [self.fitting[layout] - 1])[0])
        return (f"{len(front.canonical):,} of the {self.evaluated:,} evaluated are on it: each larger batch is a "
                f"little cheaper per token as a step's fixed time spreads over more sequences; the cheapest so far, "
                f"${float(front.cost[cheapest]):.4g}/M tokens, is TP {rows * cols} PP {pp} EP {ep}"
                f"{' attention-DP' if data else ''} at batch {batch:,} of up to {largest:,} that fit")

    def every_fitting_configuration(self, *, at_least_one: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(layout, position) of every configuration that may fit in HBM (and each layout's first, if asked)."""
        counts = self.fitting.copy()
        if at_least_one:
            counts = np.maximum(counts, np.minimum(self.sizes, 1))
        layout = np.repeat(np.arange(len(self.layouts)), counts)
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        return layout, np.arange(len(layout)) - starts


class EvaluationBudgetError(InstanceError):
    """The enumeration would evaluate more than ``MAX_TABULATED_CONFIGURATIONS``; ``nothing_feasible``: no point
    evaluated by then met every rule (then the binding rule is the better message: ``api``)."""

    def __init__(self, message: str, *, nothing_feasible: bool) -> None:
        super().__init__(message)
        self.nothing_feasible = nothing_feasible


class _RunningFrontier:
    """The Pareto set of the configurations evaluated so far, fastest first, with their frontier rows.

    Merging pieces gives the whole table's frontier: a point dropped within its piece has a point
    before it (in latency, cost, index order) no dearer, which precedes it in any larger set too;
    and a dropped point's dominator is itself kept or dropped for a point before it, so the
    cheapest cost before any kept point is the same in the merged set as in the whole table.
    """

    def __init__(self, max_latency_s: float | None, max_usd_per_million_tokens: float | None,
                 outside: tuple[np.ndarray, np.ndarray] | None = None, only: str | None = None) -> None:
        # ``only``: "fastest" or "cheapest" when the caller keeps only the frontier's first or last point
        # (``enumerate_point``); then whatever is strictly slower (or dearer) than a point found is skipped too.
        self.only = only
        self.max_latency_s = np.inf if max_latency_s is None else max_latency_s
        self.max_cost = np.inf if max_usd_per_million_tokens is None else max_usd_per_million_tokens
        self.latency_s = np.zeros(0)
        self.cost = np.zeros(0)
        self.canonical = np.zeros(0, dtype=np.int64)
        self.frame: pd.DataFrame | None = None
        # (latency, cost) of feasible points evaluated elsewhere, fastest first, strictly cheaper down the list:
        # they only rule batches out (``LayoutFronts.front``), they are not part of this frontier.
        self.outside = outside

    def merge(self, table: ConfigTable, canonical: np.ndarray) -> None:
        keep = (table.feasible & (table.latency_s <= self.max_latency_s)
                & (table.usd_per_million_tokens <= self.max_cost))
        local = np.flatnonzero(keep)
        if len(local) == 0:
            return
        local = local[strict_frontier(table.latency_s[local], table.usd_per_million_tokens[local], canonical[local])]
        rows = configuration_frame(table, local)
        rows["config_index"] = canonical[local]
        latency = np.concatenate((self.latency_s, table.latency_s[local]))
        cost = np.concatenate((self.cost, table.usd_per_million_tokens[local]))
        index = np.concatenate((self.canonical, canonical[local]))
        frame = rows if self.frame is None else pd.concat([self.frame, rows], ignore_index=True)
        kept = strict_frontier(latency, cost, index)
        self.latency_s, self.cost, self.canonical = latency[kept], cost[kept], index[kept]
        self.frame = frame.iloc[kept].reset_index(drop=True)

    def beaten(self, latency_bound: np.ndarray, cost_bound: np.ndarray) -> np.ndarray:
        """Where a point query (``only``) has a point found strictly faster (or cheaper) than these bounds."""
        if self.only is None or len(self.canonical) == 0:
            return np.zeros(np.shape(latency_bound), dtype=bool)
        if self.only == "fastest":
            return latency_bound > self.latency_s[0]
        return cost_bound > self.cost[-1]

    def found_any(self) -> bool:
        """Whether any feasible point is known, here or outside."""
        return len(self.canonical) > 0 or (self.outside is not None and len(self.outside[0]) > 0)

    def dominates(self, latency_s: np.ndarray, cost: np.ndarray) -> np.ndarray:
        """Where a known point (or a point of ``outside``) is at least as fast as ``latency_s`` and strictly
        cheaper than ``cost``."""
        found = _staircase_dominates(self.latency_s, self.cost, latency_s, cost)
        if self.outside is not None:
            found |= _staircase_dominates(self.outside[0], self.outside[1], latency_s, cost)
        return found


def _staircase_dominates(front_latency_s, front_cost, latency_s, cost) -> np.ndarray:
    """The cheapest frontier point at most that slow is the last one at most that slow (fastest-first order)."""
    if len(front_latency_s) == 0:
        return np.zeros(np.shape(latency_s), dtype=bool)
    last = np.searchsorted(front_latency_s, latency_s, side="right") - 1
    return (last >= 0) & (front_cost[np.maximum(last, 0)] < cost)


@dataclass
class _Intervals:
    """Open batch intervals (``low``, ``high``) of positions per layout, both ends evaluated, interior not.

    ``floor_*`` bound every batch from ``low`` on from below (``_Space.points``); ``high_*`` are the high
    end's own values. ``low_breaks_cap``: every batch from ``low`` on breaks a TTFT, TPOT, demand or budget cap
    (``caps_broken_onwards``); ``high_breaks_cap`` the same of the high end (the check that it does).
    """

    layout: np.ndarray
    low: np.ndarray
    high: np.ndarray
    floor_latency_s: np.ndarray
    floor_cost_times_batch: np.ndarray
    high_latency_s: np.ndarray
    high_cost_times_batch: np.ndarray
    high_batch: np.ndarray
    low_breaks_cap: np.ndarray
    high_breaks_cap: np.ndarray

    def __len__(self) -> int:
        return len(self.layout)

    def take(self, which: np.ndarray) -> _Intervals:
        return _Intervals(*(getattr(self, name)[which] for name in self.__dataclass_fields__))

    @staticmethod
    def join(parts: list[_Intervals]) -> _Intervals:
        names = _Intervals.__dataclass_fields__
        return _Intervals(*(np.concatenate([getattr(part, name) for part in parts]) for name in names))

    @staticmethod
    def between(layout, position, points: _Points) -> _Intervals:
        """The intervals between consecutive evaluated positions of each layout (those with an interior)."""
        order = np.lexsort((position, layout))
        layout, position = layout[order], position[order]
        p = points.take(order)
        pair = np.flatnonzero((layout[1:] == layout[:-1]) & (position[1:] - position[:-1] >= 2))
        return _Intervals(layout[pair], position[pair], position[pair + 1], p.floor_latency_s[pair],
                          p.floor_cost_times_batch[pair], p.latency_s[pair + 1], p.cost_times_batch[pair + 1],
                          p.batch[pair + 1], p.breaks_cap_onwards[pair], p.breaks_cap_onwards[pair + 1])

    def ruled_out(self, front: _RunningFrontier) -> np.ndarray:
        """Intervals no configuration of which can be on the frontier (module docstring of ``enumerate_frontier``).

        Inside an interval, latency is at least the floor and cost times batch at least its floor, so
        cost is above ``floor / high batch``. Only where the high end itself obeys the floors (a check,
        not the proof) are the bounds used. An interval whose low end and every batch past it break a
        TTFT, TPOT, demand or budget cap (``caps_broken_onwards``; the high end breaks it too, the check) holds no
        feasible point. For a point query (``_RunningFrontier.only``) an interval strictly slower (or dearer)
        than a point found within the caps cannot hold the frontier's first (or last) point either.
        """
        sane = ((self.high_latency_s >= self.floor_latency_s * (1 - BOUND_MARGIN))
                & (self.high_cost_times_batch >= self.floor_cost_times_batch * (1 - BOUND_MARGIN)))
        latency_bound = self.floor_latency_s * (1 - BOUND_MARGIN)
        cost_bound = self.floor_cost_times_batch / self.high_batch * (1 - BOUND_MARGIN)
        beyond_caps = (latency_bound > front.max_latency_s) | (cost_bound > front.max_cost)
        return (sane & (beyond_caps | front.dominates(latency_bound, cost_bound)
                        | front.beaten(latency_bound, cost_bound))) | (self.low_breaks_cap & self.high_breaks_cap)


@dataclass
class _Points:
    """Evaluated configurations' batch, latency and cost, and the floors they give every larger batch."""

    batch: np.ndarray
    latency_s: np.ndarray
    cost_times_batch: np.ndarray
    floor_latency_s: np.ndarray
    floor_cost_times_batch: np.ndarray
    breaks_cap_onwards: np.ndarray  # this batch and every larger one of its layout break a cap (caps_broken_onwards)

    def take(self, which) -> _Points:
        return _Points(*(getattr(self, name)[which] for name in self.__dataclass_fields__))


def may_skip_dominated_batches(problem: Problem) -> bool:
    """Whether the batch bounds of ``enumerate_frontier`` hold for this problem's physics.

    Without a drafter they need each layout's latency and its cost times batch to be nondecreasing in
    the batch. Every term of a pass grows with the micro-batch or is constant (``perf.step_structure``:
    arithmetic linear, HBM reads affine plus the increasing share of experts touched, collectives the
    cheapest of increasing protocol lines, kernels constant; an engine adds a constant and a nonnegative
    coefficient per sequence); the serving modes add a prefill that grows with the batch (closed loop,
    static batch) or none; cost per output token is the charged decode time over the batch times a
    per-layout price. With a drafter the latency itself can fall as the batch grows (a pipelined
    drafter layout exists only at batches it splits: found by ``tests/solver/test_enumeration.py``), so
    the paper's decode-only model bounds it with ``perf.speculative_latency_floor`` instead (cost times
    batch is the layout's price times latency there). Under an engine's serving model the draft length
    is chosen on the paper's physics and timed with the engine's passes, which has no such floor here:
    those problems are evaluated at every batch that fits in HBM.
    """
    if problem.speculative is None:
        return True
    return problem.engine is None or (problem.engine.paper and problem.mode == "decode_only")


def slo_broken_onwards(table: ConfigTable) -> np.ndarray:
    """Per configuration: whether it and every larger batch of its layout break the TTFT or TPOT cap.

    What a configuration gives every larger batch of its layout (without a drafter; ``may_skip_dominated_batches``):

    * TTFT, at the mean or a percentile, is nondecreasing in the batch, so its own value bounds them. Closed
      loop: ``request_s`` plus the queue's service time (P1, or with chunks at least carried + chunks x decode
      step: nondecreasing) times 1 + the wait's mean or percentile at utilisation ``rho``, which grows with
      ``rho`` (``latency.md1_waiting_quantile`` interpolates a nondecreasing table). Prompts arrive at
      ``1 / (osl decode_s / micro_batch + carried)`` (``serving.mode_times``), nondecreasing because the decode
      step over the micro-batch never grows: each term of a step is linear, affine with a nonnegative constant
      or concave from 0 (the experts touched), and sums, maxima and minima of such terms keep ``f(x) / x``
      nonincreasing; so ``rho`` (and with it the chunked queue's utilisation) grows with the batch.
      Disaggregated and decode-only TTFT do not depend on the batch; static batch's is the batch's prefill.
    * TPOT: at the mean it is the latency (nondecreasing); at a percentile the approximated quantile of the
      prompts in a window is not monotone in its utilisation where it expects fewer than one prompt
      (``tests/solver/test_slo_skip.py`` shows where), so its bound is the bare decode step ``s0``
      (``LatencySpread.tpot_bounds_s``: no percentile is below it), which grows with the batch.

    A value counts only past the cap by ``BOUND_MARGIN`` (two evaluations of a monotone formula may differ in
    the last bits); NaN (no prompt) bounds nothing.
    """
    c = table.problem.constraints
    broken = np.zeros(len(table), dtype=bool)
    if table.problem.speculative is not None or (c.ttft_max_s is None and c.tpot_max_s is None):
        return broken
    metrics, percentile = table.metrics, c.slo_percentile
    if c.ttft_max_s is not None:
        broken |= metrics.ttft_at(percentile) > c.ttft_max_s * (1 + BOUND_MARGIN)
    if c.tpot_max_s is not None:
        tpot = metrics.tpot_s if percentile is None else metrics.spread.tpot_bounds_s(metrics.tpot_s)[0]
        broken |= np.asarray(tpot) > c.tpot_max_s * (1 + BOUND_MARGIN)
    return broken


def demand_broken_onwards(table: ConfigTable) -> np.ndarray:
    """Per configuration: whether it and every larger batch of its layout serve more than the demand cap.

    An instance's total output tokens/s never falls as its batch grows (without a drafter, at the model's own
    prediction): it is the batch over a time per step ``g`` with ``g(b) / b`` nonincreasing. Decode only and
    disaggregated: ``g`` is the decode step at the micro-batch ``b / pp``, each of whose terms keeps
    ``f(x) / x`` nonincreasing (``slo_broken_onwards``); closed loop: that step plus ``b / (pp osl)`` carried
    prefills, whose time does not depend on the batch; static batch: the batch's prefill pass (the same kind
    of terms) plus ``osl - 1`` decode steps, over ``osl``. So a demand cap bounds the batch of every layout,
    and the batches past it are never evaluated (a cap nothing meets used to walk all of them). With a
    ``confidence`` the speed factor falls past the measured batches (``space._at_confidence``), which may
    bring the total back under the cap: no skip there. A value counts only past the cap by ``BOUND_MARGIN``.
    """
    problem = table.problem
    cap = problem.constraints.demand_tokens_per_s
    if cap is None or problem.speculative is not None or problem.confidence is not None:
        return np.zeros(len(table), dtype=bool)
    return np.asarray(table.metrics.total_tokens_per_second, dtype=float) > cap * (1 + BOUND_MARGIN)


def caps_broken_onwards(table: ConfigTable) -> np.ndarray:
    """Per configuration: whether it and every larger batch of its layout break a TTFT, TPOT, demand or budget
    cap. The budget prices a layout's GPUs, whatever its batch: a layout over it is over it at every batch."""
    budget = table.violations.get("budget", np.zeros(len(table), dtype=bool))
    return slo_broken_onwards(table) | demand_broken_onwards(table) | budget


def enumerate_frontier(problem: Problem, *, max_latency_s: float | None = None,
                       max_usd_per_million_tokens: float | None = None, only: str | None = None) -> pd.DataFrame:
    """The frontier rows of ``configuration_frame(tabulate(problem), pareto_indices(...))`` without the table.

    Optional caps keep only the frontier's points at most that slow or that dear (the frontier of the
    capped set: a point a faster one is cheaper than is not under a tighter cap either). ``only``
    ("fastest" or "cheapest"): the caller keeps the first or the last point only, which is exact for that
    point alone (batches strictly slower or dearer than a point found are skipped: ``_Intervals.ruled_out``).

    Why it is exact though it skips configurations:

    * Batches past a layout's ``space.batches_within_hbm`` break ``hbm_capacity`` (the least HBM any
      configuration needs grows with the batch), and those past its ``space.sequence_caps`` break
      ``max_seqs``, so they are never feasible.
    * Each layout is evaluated at a ~1.4x ladder of its batches plus its largest that fits. Between
      two evaluated batches ``b_lo < b_hi`` of a layout, every batch ``b`` has latency
      ``>= latency(b_lo)`` and cost ``>= cost(b_lo) b_lo / b > cost(b_lo) b_lo / b_hi``
      (``may_skip_dominated_batches``; with a drafter, the floor ``space.latency_floor(b_lo)`` takes
      the place of ``latency(b_lo)``). If an evaluated feasible point is at least as fast as that
      latency bound and strictly cheaper than that cost bound, it precedes every ``b`` in the
      frontier's (latency, cost, index) order and is strictly cheaper, so none of them is on the
      frontier, and none can change which points are (its dominator is evaluated). Such intervals
      are dropped; the others are cut at ``SPLIT_POINTS`` evaluated batches and tested again, and
      intervals of at most ``WHOLE_INTERVAL_BATCHES`` are evaluated whole.
    * A TTFT, TPOT, demand or budget cap a batch breaks by its bound it breaks at every larger batch of the
      layout (``caps_broken_onwards``): intervals from such a batch on are dropped.
    * Evaluated pieces are merged into a running Pareto set (``_RunningFrontier``), which equals the
      whole table's frontier restricted to the evaluated points, and no skipped point is on it.

    Raises:
        InstanceError: the batch domain holds no size any valid layout can split into micro-batches; or
            more than ``MAX_TABULATED_CONFIGURATIONS`` would be evaluated (nothing skipped under an engine's
            speculative model, too few feasible points to skip with, or a frontier that holds most of what is
            evaluated: ``_Space.check_budget``).
    """
    space = _Space(problem)
    front = _RunningFrontier(max_latency_s, max_usd_per_million_tokens, only=only)
    _fill(space, front)
    return _finish(front, problem)


class LayoutFronts:
    """The frontier of a few layouts at a time, by ``enumerate_frontier``'s exact skipping.

    The solver backends' epsilon loop evaluates the layouts a solver points at with the physics
    (``solver.epsilon.KnownLayouts``); at integer resolution a layout can have 10^8 batches, so
    it takes their front this way instead of a table of every batch. Layout indices are
    ``space.searched_layouts``' order, as in the encodings.
    """

    def __init__(self, problem: Problem) -> None:
        self.space = _Space(problem)
        self._probes: tuple[np.ndarray, np.ndarray] | None = None

    def probes(self) -> tuple[np.ndarray, np.ndarray]:
        """(latency, cost), fastest first, of the Pareto set of every layout's batches ~1.4x apart (and largest).

        Real feasible points, evaluated once (a few thousand): they rule out batch ranges of the layouts
        asked for that other layouts beat. Without them a layout named first is evaluated at every batch
        it fits, dominated or not: Llama 3 8B at context 0 evaluated 3.4M configurations for a frontier
        the enumeration finds in 0.3M.
        """
        if self._probes is None:
            layout, position = _ladder_positions(self.space.fitting)
            latency, cost, canonical = [], [], []
            for table, index, _ in self.space.tables(layout, position):
                feasible = np.flatnonzero(table.feasible)
                latency.append(table.latency_s[feasible])
                cost.append(table.usd_per_million_tokens[feasible])
                canonical.append(index[feasible])
            latency_s, usd = np.concatenate([np.zeros(0), *latency]), np.concatenate([np.zeros(0), *cost])
            kept = strict_frontier(latency_s, usd, np.concatenate([np.zeros(0, dtype=np.int64), *canonical]))
            self._probes = (latency_s[kept], usd[kept])
        return self._probes

    def front(self, layouts, known: tuple[np.ndarray, np.ndarray] | None = None) -> _RunningFrontier:
        """The feasible points of these layouts that may be on the frontier (raw latency, cost, canonical, rows).

        ``known``: (latency, cost) of a frontier of feasible points already evaluated, fastest first; batch
        ranges they or the ``probes`` dominate are skipped as the enumeration skips those its own points
        dominate (exact: a dominated point is on no frontier). Points they dominate may remain; the caller
        filters them.
        """
        outside = self.probes() if may_skip_dominated_batches(self.space.problem) else (np.zeros(0), np.zeros(0))
        if known is not None and len(known[0]):
            latency_s, cost = np.concatenate((known[0], outside[0])), np.concatenate((known[1], outside[1]))
            kept = strict_frontier(latency_s, cost, np.arange(len(latency_s)))
            outside = (latency_s[kept], cost[kept])
        front = _RunningFrontier(None, None, outside=outside)
        self.space.evaluated = 0  # the evaluation budget is per call here
        only = np.zeros(len(self.space.layouts), dtype=bool)
        only[np.asarray(layouts, dtype=np.int64)] = True
        _fill(self.space, front, only)
        return front


def _fill(space: _Space, front: _RunningFrontier, only: np.ndarray | None = None) -> None:
    """Merge into ``front`` every configuration that may be on the frontier (of the ``only`` layouts)."""
    fitting = space.fitting if only is None else np.where(only, space.fitting, 0)
    problem = space.problem
    if not may_skip_dominated_batches(problem):
        count = int(fitting.sum())
        if count > MAX_TABULATED_CONFIGURATIONS:
            raise InstanceError(
                f"'max_batch': with a drafter under an engine every batch that fits in HBM is evaluated, and {count:,} "
                f"configurations exceed {MAX_TABULATED_CONFIGURATIONS:,} (about a minute); set a max_batch "
                "(--max-batch) or use the batch ladder (--batch-ladder)")
        layout, position = space.every_fitting_configuration()
        if only is not None:
            layout, position = layout[only[layout]], position[only[layout]]
        for table, canonical, _ in space.tables(layout, position):
            front.merge(table, canonical)
        return
    layout, position = _ladder_positions(fitting)
    pending = _Intervals.between(layout, position, _evaluate(space, front, layout, position))
    small = []
    while len(pending):
        pending = pending.take(~pending.ruled_out(front))
        whole = pending.high - pending.low - 1 <= WHOLE_INTERVAL_BATCHES
        small.append(pending.take(whole))
        pending = pending.take(~whole)
        if len(pending) == 0:
            break
        space.check_budget(len(pending) * SPLIT_POINTS, front)
        pending = _split(space, front, pending)
    if small:
        rest = _Intervals.join(small)
        rest = rest.take(~rest.ruled_out(front))
        sizes = rest.high - rest.low - 1
        space.check_budget(int(sizes.sum()), front)
        layout = np.repeat(rest.layout, sizes)
        position = np.repeat(rest.low + 1, sizes) + np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        for table, canonical, _ in space.tables(layout, position):
            front.merge(table, canonical)


def _ladder_positions(fitting: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(layout, position) of each layout's batches at ~1.4x steps and of its largest that fits."""
    layouts, positions = [], []
    for layout, count in enumerate(fitting):
        if count == 0:
            continue
        mine = np.unique(np.concatenate((np.array(batch_ladder(int(count))) - 1, [count - 1])))
        layouts.append(np.full(len(mine), layout))
        positions.append(mine)
    if not layouts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(layouts).astype(np.int64), np.concatenate(positions).astype(np.int64)


def _evaluate(space: _Space, front: _RunningFrontier, layout: np.ndarray, position: np.ndarray) -> _Points:
    """Evaluate these configurations into the frontier; return their ``_Points``, feasible or not.

    Without a drafter a point's latency and cost times batch are their own floors (they never fall as the
    batch grows). With one (the paper's model), the latency floor is ``space.latency_floor`` and cost
    times batch is the layout's price per second times latency, so its floor scales with it.
    """
    latency = np.empty(len(layout))
    cost = np.empty(len(layout))
    batch = np.empty(len(layout), dtype=np.int64)
    floor = np.empty(len(layout))
    broken = np.zeros(len(layout), dtype=bool)
    for table, canonical, part in space.tables(layout, position):
        front.merge(table, canonical)
        latency[part], cost[part], batch[part] = table.latency_s, table.usd_per_million_tokens, table.batch
        broken[part] = caps_broken_onwards(table)
        floor[part] = table.latency_s if space.problem.speculative is None else latency_floor(
            space.problem, tp_rows=table.tp_rows, tp_cols=table.tp_cols, pp=table.pp, ep=table.ep, batch=table.batch)
    cost_times_batch = cost * batch
    if space.problem.speculative is None:
        return _Points(batch, latency, cost_times_batch, latency, cost_times_batch, broken)
    with np.errstate(invalid="ignore", divide="ignore"):  # an infinite latency (no drafter layout) bounds nothing
        floor_cost = np.where(np.isfinite(latency), cost_times_batch / latency * floor, 0.0)
    return _Points(batch, latency, cost_times_batch, np.where(np.isfinite(latency), floor, 0.0), floor_cost, broken)


def _split(space: _Space, front: _RunningFrontier, pending: _Intervals) -> _Intervals:
    """Cut each interval at ``SPLIT_POINTS`` evenly spaced batches, evaluate them, return the pieces between."""
    steps = np.arange(1, SPLIT_POINTS + 1)
    width = pending.high - pending.low  # > SPLIT_POINTS + 1, so the cuts are distinct and inside
    cuts = pending.low[:, None] + (steps[None, :] * width[:, None]) // (SPLIT_POINTS + 1)
    cut = _evaluate(space, front, np.repeat(pending.layout, SPLIT_POINTS), cuts.ravel())
    shaped = {name: getattr(cut, name).reshape(cuts.shape) for name in _Points.__dataclass_fields__}
    # Piece k runs from grid point k to k + 1: its floors are point k's, its high end point k + 1's values.
    lows = np.column_stack((pending.low, cuts))
    highs = np.column_stack((cuts, pending.high))
    pieces = _Intervals(
        np.repeat(pending.layout, SPLIT_POINTS + 1), lows.ravel(), highs.ravel(),
        np.column_stack((pending.floor_latency_s, shaped["floor_latency_s"])).ravel(),
        np.column_stack((pending.floor_cost_times_batch, shaped["floor_cost_times_batch"])).ravel(),
        np.column_stack((shaped["latency_s"], pending.high_latency_s)).ravel(),
        np.column_stack((shaped["cost_times_batch"], pending.high_cost_times_batch)).ravel(),
        np.column_stack((shaped["batch"], pending.high_batch)).ravel(),
        np.column_stack((pending.low_breaks_cap, shaped["breaks_cap_onwards"])).ravel(),
        np.column_stack((shaped["breaks_cap_onwards"], pending.high_breaks_cap)).ravel())
    return pieces.take(pieces.high - pieces.low >= 2)


def _finish(front: _RunningFrontier, problem: Problem) -> pd.DataFrame:
    if front.frame is None:
        return empty_frame(problem)
    return front.frame


def empty_frame(problem: Problem) -> pd.DataFrame:
    """A frontier with no row but every column the problem's frontiers have."""
    one = np.ones(1, dtype=np.int64)
    return configuration_frame(tabulate_rows(problem, tp_rows=one, tp_cols=one, pp=one, ep=one, batch=one), [])


def enumerate_point(problem: Problem, *, min_tokens_per_s: float | None = None,
                    max_usd_per_million_tokens: float | None = None) -> pd.DataFrame:
    """``best_index`` on the whole table, without the table: one row, or none if nothing qualifies.

    The cheapest configuration at least ``min_tokens_per_s`` fast (ties: faster, then canonical) is the
    frontier's last point within that latency; the fastest at most ``max_usd_per_million_tokens``
    (ties: cheaper, then canonical) its first point within that cost. Each precedes, in its own
    order, everything dearer or slower, so the filter keeps it; and nothing strictly dearer (or slower) than
    a point found can be it, so those batches are skipped: a small model at context ~0 has a frontier of
    millions of points, of which a point query needs one.
    """
    if (min_tokens_per_s is None) == (max_usd_per_million_tokens is None):
        raise ValueError("give exactly one of min_tokens_per_s and max_usd_per_million_tokens")
    if min_tokens_per_s is not None:
        frame = enumerate_frontier(problem, max_latency_s=1.0 / min_tokens_per_s, only="cheapest")
        return frame.iloc[len(frame) - 1:].reset_index(drop=True)
    frame = enumerate_frontier(problem, max_usd_per_million_tokens=max_usd_per_million_tokens, only="fastest")
    return frame.iloc[:1].reset_index(drop=True)


@dataclass(frozen=True)
class RuleSummary:
    """What the whole space breaks: for ``api.diagnose_infeasible`` without a table of every configuration."""

    fits_somewhere: bool
    least_hbm_used_bytes_per_gpu: int
    broken_wherever_it_fits: list[str]  # rules every configuration checked that fits in HBM breaks, in table order
    every_batch: bool  # False: past MAX_TABULATED_CONFIGURATIONS only each layout's ~1.4x ladder was checked
    # Per cap, the value nearest to meeting it among configurations that fit (least total tok/s for demand_cap,
    # least USD/h for budget, least TTFT / TPOT in seconds at the SLO percentile): how far the cap is from
    # anything that fits (``least_cap_values``).
    closest: dict[str, float] = field(default_factory=dict)


def rule_summary(problem: Problem) -> RuleSummary:
    """Evaluate every configuration that may fit in HBM (and each layout's smallest batch) for the rules' verdict.

    A configuration past ``batches_within_hbm`` breaks ``hbm_capacity``; where nothing fits, no
    draft length fits either, so the least HBM need is at a layout's smallest batch. A space of more than
    ``MAX_TABULATED_CONFIGURATIONS`` that may fit is checked at each layout's ~1.4x ladder of batches
    only (``every_batch`` False), so that a diagnosis never costs minutes.
    """
    space = _Space(problem)
    every_batch = int(space.fitting.sum()) <= MAX_TABULATED_CONFIGURATIONS
    if every_batch:
        layout, position = space.every_fitting_configuration(at_least_one=True)
    else:
        layout, position = _ladder_positions(np.maximum(space.fitting, np.minimum(space.sizes, 1)))
    fits, least, always, closest = False, None, None, {}
    for table, _, _ in space.tables(layout, position):
        room = ~table.violations["hbm_capacity"]
        fits |= bool(room.any())
        smallest = int(table.metrics.hbm_used_bytes_per_gpu.min())
        least = smallest if least is None else min(least, smallest)
        broken = {name: bool(mask[room].all()) for name, mask in table.violations.items()}
        always = broken if always is None else {name: always[name] and broken[name] for name in always}
        for name, value in least_cap_values(table, room).items():
            closest[name] = min(closest.get(name, math.inf), value)
    return RuleSummary(fits, least, [name for name, yes in always.items() if yes], every_batch, closest)


def least_cap_values(table: ConfigTable, among: np.ndarray) -> dict[str, float]:
    """Per cap rule of the table, the least value of the quantity it bounds from above ``among`` these
    configurations (a mask), where any is finite: how near the cap anything comes.

    The quantity is the one the rule compares with its cap (``space.rule_masks``): total tok/s for
    ``demand_cap``, USD/h for ``budget``, TTFT and TPOT in seconds at the SLO percentile (the mean without
    one). A TPOT percentile is evaluated only where its bounds (``LatencySpread.tpot_bounds_s``) may hold the
    least: a configuration whose low bound is above another's high bound is not it.
    """
    m, c, least = table.metrics, table.problem.constraints, {}
    values = {}
    if "demand_cap" in table.violations:
        values["demand_cap"] = np.asarray(m.total_tokens_per_second, dtype=float)
    if "budget" in table.violations:
        values["budget"] = np.asarray(m.gpus * table.problem.hardware.price_usd_per_hour, dtype=float)
    if "ttft_max" in table.violations:
        values["ttft_max"] = np.asarray(m.ttft_at(c.slo_percentile), dtype=float)
    for rule, value in values.items():
        finite = value[among & np.isfinite(value)]
        if len(finite):
            least[rule] = float(finite.min())
    if "tpot_max" in table.violations:
        if c.slo_percentile is None:
            tpot = np.asarray(m.tpot_s, dtype=float)
        else:
            low, high = (np.asarray(bound, dtype=float) for bound in m.spread.tpot_bounds_s(m.tpot_s))
            usable = among & np.isfinite(high)
            candidates = np.flatnonzero(among & (low <= (high[usable].min() if usable.any() else np.inf)))
            tpot = np.full(len(table), np.nan)
            tpot[candidates] = m.tpot_at(c.slo_percentile, candidates)
        finite = tpot[among & np.isfinite(tpot)]
        if len(finite):
            least["tpot_max"] = float(finite.min())
    return least
