"""The epsilon-constraint loop that traces the exact frontier with any backend.

The enumeration evaluates every configuration and filters the Pareto set (``enumeration``). The
solver backends (CP-SAT, MILP) search over layouts and integer batches with a relaxed encoding
(``formulations.relaxation``: the physics' lines, which never overestimate a time), and this loop
turns their answers into exact points:

* ``known`` layouts are evaluated with the physics at every batch of the space (their own frontiers,
  by the enumeration's exact skipping: ``enumeration.LayoutFronts``), so their points carry exactly
  the enumeration's numbers.
* A solve asks for the fastest configuration among the *other* layouts under the current cost cap
  (relaxed outward by ``CAP_SLACK``). Its proven bound ``T`` is a lower bound on the latency of
  every configuration of every unknown layout that satisfies the cap, and of any tighter cap,
  because tightening only removes configurations. The layout it points at becomes known.
* The next frontier point under cap ``c`` is the lexicographic minimum (latency, cost, canonical
  index) over all feasible configurations cheaper than ``c``. If the best known candidate is
  strictly faster than ``T`` (with a relative safety margin against solver tolerances), no
  unknown configuration can precede it, so it *is* that minimum: emit it, set ``c`` to its cost.
  Otherwise solve again; each solve makes one more layout known or proves that no unknown layout
  is feasible, so the loop ends after at most (layouts + 1) solves.

Runs fall out: after a solve, one layout's consecutive batches are emitted from the physics until
its latency reaches the next unknown layout's bound, typically a few solves per run of a layout.
Why nothing is missed or weakly dominated: each emitted point is the exact lexicographic minimum
under a strict cost cap (argued above), which is the definition the enumeration's Pareto filter
computes; a point equal in both objectives to an emitted one costs the same, so the strict cap
excludes it, and ties in latency resolve by cost and then canonical index as in the enumeration.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from infecon.formulations.errors import SolverInconsistencyError, SolverLimitError
from infecon.formulations.space import ConfigTable, Problem
from infecon.solver.backends import Backend, get_backend
from infecon.solver.enumeration import (
    LayoutFronts,
    best_index,
    empty_frame,
    enumerate_frontier,
    enumerate_point,
    pareto_indices,
    strict_frontier,
)
from infecon.solver.frontier import Frontier, configuration_frame

# A solver's bound is trusted only to this relative margin (its feasibility and optimality tolerances
# are 1e-7 or tighter on these scaled models); a known point within it of the bound triggers one more
# solve, which makes the competing layout known and settles the tie with the physics.
BOUND_MARGIN = 1e-6


class KnownLayouts:
    """The layouts evaluated so far with the physics, and the frontier of their points.

    Layouts are evaluated a few at a time by their frontier (``enumeration.LayoutFronts``, which
    never lists a layout's batches one by one), merged into the frontier of all known points. Exact
    for everything the loop asks: the next frontier point under a cap, and the cheapest point under
    a latency cap, are non-dominated among the known points, and a point the loop emitted stays
    non-dominated as layouts are added (it is on the true frontier).
    """

    def __init__(self, problem: Problem, layouts: np.ndarray) -> None:
        self.problem = problem
        self.layouts = layouts
        self.fronts = LayoutFronts(problem)
        self.known: set[int] = set()
        self.parts: list = []  # one evaluated frontier per ``add``
        empty = np.zeros(0)
        ints = empty.astype(np.int64)
        self._arrays = (empty, empty, ints, ints, ints)

    def __contains__(self, layout: int) -> bool:
        return layout in self.known

    def __iter__(self):
        return iter(sorted(self.known))

    def add(self, layouts) -> None:
        """Evaluate these layouts' frontier over every batch of the space (maybe empty) and merge it in."""
        layouts = [int(x) for x in np.atleast_1d(layouts) if int(x) not in self.known]
        if not layouts:
            return
        self.known.update(layouts)
        front = self.fronts.front(layouts, known=self._arrays[:2])
        self.parts.append(front)
        n = len(front.canonical)
        joined = tuple(np.concatenate(pair) for pair in zip(self._arrays, (
            front.latency_s, front.cost, front.canonical, np.full(n, len(self.parts) - 1, dtype=np.int64),
            np.arange(n)), strict=True))
        keep = strict_frontier(joined[0], joined[1], joined[2])
        self._arrays = tuple(column[keep] for column in joined)

    def arrays(self):
        """The known frontier, fastest first: latency, cost, canonical index, (part, position in its rows)."""
        return self._arrays

    def frame(self, picks: list[int]) -> pd.DataFrame:
        """Frontier rows of the given indices into ``arrays()``, in that order, with canonical ``config_index``."""
        if not picks:
            return empty_frame(self.problem)
        _, _, _, layout, local = self.arrays()
        picks_array = np.asarray(picks, dtype=np.int64)
        frames, order = [], []
        for part in np.unique(layout[picks_array]):
            mine = np.flatnonzero(layout[picks_array] == part)  # positions in ``picks`` from this part
            frames.append(self.parts[int(part)].frame.iloc[local[picks_array[mine]]])
            order.append(mine)
        joined = pd.concat(frames, ignore_index=True)
        # Row k of ``joined`` is pick number np.concatenate(order)[k]: put the rows back in pick order.
        return joined.iloc[np.argsort(np.concatenate(order), kind="stable")].reset_index(drop=True)


class _Search:
    """One backend session plus the known layouts: the shared state of frontier and point queries."""

    def __init__(self, problem: Problem, backend: Backend, deadline: float | None) -> None:
        self.session = backend.session(problem)
        # The solver that actually runs, named: "milp (CBC: highspy is not installed)" when the MILP falls back.
        self.backend_name = getattr(self.session, "description", backend.name)
        self.known = KnownLayouts(problem, self.session.options.layouts)
        self.pool = self.session.pool
        self.deadline = deadline
        self.solves = 0

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.perf_counter()

    def solve(self, **caps):
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            return None
        self.session.exclude_layouts(list(self.known))
        answer = self.session.solve(time_limit_s=remaining, **caps)
        self.solves += 1
        if answer.status == "OPTIMAL":
            self.known.add(pipeline_siblings(self.known.layouts, answer.layout))
        return answer


def pipeline_siblings(layouts: np.ndarray, layout: int) -> np.ndarray:
    """The layouts that differ from ``layout`` only in their pipeline degree (itself included).

    Columns are ``space.LAYOUT_COLUMNS``: the TP grid, EP and the attention sharding must match.

    Why they are evaluated together: PP k at batch k b nearly ties PP 1 at b in both objectives (the
    same GPU-seconds per token, plus the stage hops), so pipeline siblings crowd the frontier's
    neighbourhood and would each take a solve to be told apart. The physics evaluates them in
    milliseconds; correctness does not depend on which layouts are known (module docstring), only
    the number of solves does (measured on Mixtral 8x22B / H100 at 8,000 context, every batch to
    8,192: 107 solves without, 47 with).
    """
    others = [k for k in range(layouts.shape[1]) if k != 2]  # every column but PP
    return np.flatnonzero((layouts[:, others] == layouts[layout, others]).all(axis=1))


def trace_frontier(problem: Problem, backend: Backend | str = "enumerate", *, time_limit_s: float | None = None,
                   table: ConfigTable | None = None,
                   progress: Callable[[int], None] | None = None) -> Frontier:
    """Every non-dominated configuration, fastest first.

    Args:
        problem: model, hardware, workload, search space and constraints.
        backend: a ``Backend`` or its name (``enumerate``, ``cpsat``, ``milp``).
        time_limit_s: wall-clock budget for the whole frontier; a solver that runs out marks the
            result incomplete (``Frontier.complete``): the points returned are then a proven prefix
            (the fastest ones), never a silent partial answer.
        table: a precomputed tabulation of ``problem`` for the enumeration (ignored by solvers).
        progress: called with the number of points found so far, after each point.
    """
    backend = get_backend(backend) if isinstance(backend, str) else backend
    start = time.perf_counter()
    if backend.name == "enumerate":
        # Without a table, the whole space piece by piece (every integer batch is too many for one table).
        frame = enumerate_frontier(problem) if table is None else configuration_frame(table, pareto_indices(table))
        return Frontier(problem, backend.name, frame, ["OPTIMAL"] * len(frame), time.perf_counter() - start,
                        complete=True, solves=1)
    search = _Search(problem, backend, None if time_limit_s is None else start + time_limit_s)
    picks, complete = _trace(search, progress)
    return Frontier(problem, search.backend_name, search.known.frame(picks), ["OPTIMAL"] * len(picks),
                    time.perf_counter() - start, complete=complete, solves=search.solves)


def _trace(search: _Search, progress, *, cap: float = np.inf, inclusive: bool = False, limit: int | None = None):
    """The loop of the module docstring; returns (indices into known.arrays(), complete)."""
    picks: list[tuple[int, int]] = []  # (canonical index, layout) of emitted points, to re-find after pool changes
    bound = -np.inf
    version, position = None, 0
    horizon = Horizon()
    while limit is None or len(picks) < limit:
        if version is not search.known.arrays():  # layouts were added: the known frontier changed
            version, position = search.known.arrays(), 0
        latency, cost = version[0], version[1]  # the known frontier, fastest first
        while position < len(cost) and not (cost[position] <= cap if inclusive else cost[position] < cap):
            position += 1
        candidate = position if position < len(cost) else None
        if candidate is not None and latency[candidate] * (1 + BOUND_MARGIN) < bound:
            picks.append((int(version[2][candidate]), int(version[3][candidate])))
            cap, inclusive = float(cost[candidate]), False
            if progress is not None:
                progress(len(picks))
            continue
        if bound == np.inf:
            break  # nothing unknown is feasible and nothing known is left under the cap
        usd_cap = None if np.isinf(cap) else cap
        base = float(latency[candidate]) if candidate is not None else search.pool.lowest_latency_s(usd_cap)
        reach = horizon.reach(base) if np.isfinite(base) else None
        answer = search.solve(max_usd_per_million_tokens=usd_cap, max_latency_s=reach)
        if answer is None or answer.status not in ("OPTIMAL", "INFEASIBLE"):
            return _positions(search, picks), False
        if answer.status == "INFEASIBLE":
            bound = np.inf if reach is None else reach  # nothing unknown under the cap is as fast as ``reach``
            horizon.widen()
        else:
            bound = answer.bound
            horizon.narrow()
    return _positions(search, picks), True


class Horizon:
    """How far past a base value a solve looks: a cap at a share above it (None: no cap, look everywhere).

    In the frontier loop the base is the next known point's latency (or, with none, the lowest
    latency floor of the options left, ``relaxation.OptionPool``). A solve under cost cap C and
    latency cap X that is infeasible proves every unknown configuration under C slower than X, so X
    is a valid bound; one that is optimal gives its bound as before (every configuration it left out
    is slower than X, which is at least the optimum). Either way a known point below X is settled,
    so the loop keeps its guarantees. The cap lets each solve leave out every option whose latency
    floor is above X, which near the frontier leaves a few dozen options of thousands. The share
    doubles after an empty look and halves after a solve that found an option; past ``LARGEST`` the
    next solve has no cap, so a loop with no known point still ends.
    """

    SMALLEST, LARGEST = 0.01, 1.0

    def __init__(self) -> None:
        self.share = self.SMALLEST

    def reach(self, base: float) -> float | None:
        return None if self.share > self.LARGEST else base * (1 + self.share)

    def widen(self) -> None:
        self.share = 2 * self.share

    def narrow(self) -> None:
        self.share = max(self.SMALLEST, self.share / 2)


def _positions(search: _Search, picks: list[tuple[int, int]]) -> list[int]:
    """Where the emitted points sit in the final known frontier; each must still be on it.

    An emitted point is on the true frontier when every solve told the truth, so it can never be
    dominated by a layout evaluated later; if it is, a solver's "optimal" was wrong, and that is said.
    """
    canonical = search.known.arrays()[2]
    wanted = np.array([c for c, _ in picks], dtype=np.int64)
    lost = int((~np.isin(wanted, canonical)).sum())
    if lost:
        raise SolverInconsistencyError(
            f"{search.backend_name}: a solve proven optimal was contradicted by the physics ({lost} emitted "
            f"point(s) later dominated), so this frontier would be wrong; use --backend enumerate or another "
            f"solver, and report the problem")
    order = np.argsort(canonical)
    return order[np.searchsorted(canonical[order], wanted)].tolist()


def solve_point(problem: Problem, backend: Backend | str = "enumerate", *, min_tokens_per_s: float | None = None,
                max_usd_per_million_tokens: float | None = None, time_limit_s: float | None = None,
                table: ConfigTable | None = None) -> Frontier:
    """One constrained solve instead of a whole frontier.

    With ``min_tokens_per_s``: the cheapest configuration at least that fast (ties: faster).
    With ``max_usd_per_million_tokens``: the fastest configuration at most that expensive.
    Returns a one-row (or empty, if infeasible) ``Frontier``; raises ``SolverLimitError`` if the
    solver stopped before proving optimality.
    """
    if (min_tokens_per_s is None) == (max_usd_per_million_tokens is None):
        raise ValueError("give exactly one of min_tokens_per_s and max_usd_per_million_tokens")
    backend = get_backend(backend) if isinstance(backend, str) else backend
    start = time.perf_counter()
    if backend.name == "enumerate":
        if table is None:
            frame = enumerate_point(problem, min_tokens_per_s=min_tokens_per_s,
                                    max_usd_per_million_tokens=max_usd_per_million_tokens)
            return Frontier(problem, backend.name, frame, ["OPTIMAL"] * len(frame), time.perf_counter() - start,
                            solves=1)
        if min_tokens_per_s is not None:
            cap = table.latency_rank_at_most(1.0 / min_tokens_per_s)
            index = best_index(table, "cheapest", latency_rank_cap=cap) if cap >= 0 else None
        else:
            cap = table.cost_rank_at_most(max_usd_per_million_tokens)
            index = best_index(table, "fastest", cost_rank_cap=cap) if cap >= 0 else None
        indices = [] if index is None else [index]
        return Frontier(problem, backend.name, configuration_frame(table, indices), ["OPTIMAL"] * len(indices),
                        time.perf_counter() - start, solves=1)
    search = _Search(problem, backend, None if time_limit_s is None else start + time_limit_s)
    if max_usd_per_million_tokens is not None:
        picks, complete = _trace(search, None, cap=max_usd_per_million_tokens, inclusive=True, limit=1)
    else:
        picks, complete = _cheapest_at_speed(search, 1.0 / min_tokens_per_s)
    if not complete:
        raise SolverLimitError(f"{search.backend_name} stopped before proving the optimum; raise --time-limit")
    return Frontier(problem, search.backend_name, search.known.frame(picks), ["OPTIMAL"] * len(picks),
                    time.perf_counter() - start, solves=search.solves)


def _cheapest_at_speed(search: _Search, max_latency_s: float):
    """The cheapest feasible configuration with latency <= ``max_latency_s`` (ties: faster, then canonical).

    Each solve asks whether an unknown layout has a configuration at least as fast and no dearer
    than the best known one (caps relaxed outward), steering to the cheapest by the cost row's
    activity; it makes that layout known, or proves there is none, which settles the answer. The
    cost cap is first a ``Horizon`` above the lowest cost floor of the options left: an empty look
    proves every unknown configuration dearer than it, and the next looks further.
    """
    horizon = Horizon()
    while True:
        latency, cost, canonical, _, _ = search.known.arrays()
        ok = np.flatnonzero(latency <= max_latency_s)
        best = None
        if len(ok):
            best = int(ok[np.lexsort((canonical[ok], latency[ok], cost[ok]))[0]])
        cap = None if best is None else float(cost[best])
        floor = search.pool.lowest_usd_per_million_tokens(max_latency_s)
        reach = horizon.reach(floor) if np.isfinite(floor) else None
        tentative = reach is not None and (cap is None or reach < cap)
        limit = reach if tentative else cap
        answer = search.solve(max_usd_per_million_tokens=limit, max_latency_s=max_latency_s,
                              objective="latency" if limit is None else "cost")
        if answer is None or answer.status not in ("OPTIMAL", "INFEASIBLE"):
            return [], False
        if answer.status == "INFEASIBLE":
            if not tentative:
                return ([] if best is None else [best]), True
            horizon.widen()
        else:
            horizon.narrow()
