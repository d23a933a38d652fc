"""The exact Pareto frontier of fleet cost against the TPOT-scale rank, in about one solve per point.

``C(r)``, the least fleet cost when only candidates up to scale rank ``r`` may serve, does not
increase with ``r``; the frontier is each cost level with the least rank that reaches it. The walk
goes from the loosest rank to tighter ones and never bisects:

- solve ``C(r)``; its plan is feasible at the highest rank ``u`` it uses, so ``C(u) = C(r)``;
- solve ``C(u - 1)``: if it costs more, ``u`` is the least rank of that level (a frontier point)
  and the new plan opens the next level; if it ties, its plan uses a lower rank: go on from there;
- stop when a rank is infeasible (or rank 0 is reached).

Each solve is exact (``OPTIMAL`` or ``INFEASIBLE``, else the walk stops and says it is incomplete),
so each point is proven: one solve per point plus one per tie. A solve first sums each workload's
own least cost with every inventory lifted and no budget (``WorkloadFloors``, milliseconds), a
lower bound on the fleet's: if it is infinite or over the budget the rank is infeasible; if the
workloads' own optima together cost exactly that and meet the coupling rules they are the fleet's
optimum; otherwise the plain model is solved (dominated candidates left out).
On the fleet example (4,194 candidates, ~4,000 ranks) this is 70 points in 118 fleet solves,
where bisecting on the scale at every level took about eleven solves per point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from infecon.formulations.fleet.model import FleetData, FleetSolution, dominated_candidates, fleet_cost, nodes_needed
from infecon.solver.fleet.solve import (
    fleet_backend,
    meets_coupling_rules,
    one_workload_solver,
    plan_backend,
    solve_fleet,
    workload_alone,
)


def highest_rank_used(data: FleetData, solution: FleetSolution) -> int:
    """The loosest scale rank among the candidates a plan uses: the plan is feasible at that rank."""
    used = solution.replicas > 0
    return int(data.scale_rank[used].max()) if used.any() else 0


@dataclass
class WorkloadFloors:
    """Each workload's least cost alone (inventories lifted, no budget) at a rank, memoised by rank interval.

    A workload's optimum at rank ``r`` that uses candidates up to rank ``u`` is also its optimum at
    every rank in ``[u, r]`` (more candidates cannot cost more, fewer still include the plan), so
    one solve answers a whole interval of ranks.
    """

    data: FleetData
    backend: str
    dropped: np.ndarray
    time_limit_s: float | None
    solves: int = 0
    _alone: list[tuple[FleetData, np.ndarray]] = field(default_factory=list)
    _known: list[list[tuple[int, int, FleetSolution]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._alone = [workload_alone(self.data, w) for w in range(len(self.data.workload_names))]
        self._known = [[] for _ in self._alone]

    def own(self, w: int, rank: int) -> FleetSolution:
        for low, high, solution in self._known[w]:
            if low <= rank <= high:
                return solution
        alone, mine = self._alone[w]
        solution = one_workload_solver(self.backend)(alone, max_scale_rank=rank, dropped=self.dropped[mine],
                                               time_limit_s=self.time_limit_s)
        self.solves += 1
        low = highest_rank_used(alone, solution) if solution.status == "OPTIMAL" else 0
        if solution.status in ("OPTIMAL", "INFEASIBLE"):  # infeasible at rank: also at every lower rank
            self._known[w].append((low, rank, solution))
        return solution

    def bound(self, rank: int) -> tuple[float, FleetSolution | None]:
        """At ``rank``: a lower bound on ``C(rank)`` (inf: some workload cannot be served), and the workloads' own
        optima as one plan (None unless all are proven)."""
        total = 0
        replicas = np.zeros(len(self.data.gpus), dtype=np.int64)
        routed = np.zeros(len(self.data.route_names), dtype=np.int64)
        proven = True
        for w, (_, mine) in enumerate(self._alone):
            own = self.own(w, rank)
            if own.status == "INFEASIBLE":
                return np.inf, None
            if own.status != "OPTIMAL":
                proven = False
                continue
            total += int(own.objective)
            replicas[mine] = own.replicas
            routed[self.data.routes_of(w)] = own.routed
        if not proven:
            return float(total), None
        cost = fleet_cost(self.data, replicas)
        together = FleetSolution("OPTIMAL", replicas, routed, nodes_needed(self.data, replicas), cost, float(cost),
                                 f"{self.backend} (workloads apart)")
        return float(total), together


@dataclass
class ScaleFrontier:
    """The walk's result: ``points`` as (rank, plan), tightest rank first; ``complete`` False if a solve was not
    proven (the points found are still exact); the count of fleet solves and per-workload solves."""

    points: list[tuple[int, FleetSolution]]
    complete: bool
    fleet_solves: int
    workload_solves: int


# ``auto``: CP-SAT on the whole model for up to this long per solve, then ``solve_fleet``'s exact decomposition
# with HiGHS (each workload alone, Pareto patterns over binding GPU types, else the whole model with floors).
# On the fleet example CP-SAT solves the walk's models in 0.24 s against HiGHS's 1.1 s, but in whole nodes it
# took 213 s on one of them (HiGHS 1.1 s), and on a generated 50 x 8 fleet (96,567 candidates) it proves nothing
# in 5 s, where the whole model stalls HiGHS for minutes and the decomposition takes 2-4 s.
AUTO_CPSAT_S = 5.0
# ... and after this many unfinished CP-SAT solves in a row, the decomposition alone for the rest of the walk (on
# the 50 x 8 fleet CP-SAT never finishes, and 5 s a solve would be wasted at every point).
AUTO_CPSAT_MISSES = 3


class LeastCost:
    """The least-cost fleet at a scale rank, exactly, by the cheapest route that proves it.

    First the per-workload bound and shortcut (``WorkloadFloors``), then the backend: ``milp`` or
    ``cpsat`` on the whole model, or ``auto`` (``AUTO_CPSAT_S`` of CP-SAT, then ``solve_fleet``'s
    decomposition; after ``AUTO_CPSAT_MISSES`` unfinished CP-SAT solves in a row, the decomposition alone).
    """

    def __init__(self, data: FleetData, backend: str, time_limit_s: float | None) -> None:
        self.data, self.backend, self.time_limit_s = data, backend, time_limit_s
        self.dropped = dominated_candidates(data, respect_scale=True)
        self.floors = WorkloadFloors(data, plan_backend(backend), self.dropped, time_limit_s)
        self.solves = 0
        self.misses = 0  # CP-SAT's unfinished solves in a row (``auto``)

    def __call__(self, rank: int) -> FleetSolution:
        data, time_limit_s = self.data, self.time_limit_s
        bound, together = self.floors.bound(rank)
        if bound == np.inf or (data.budget is not None and bound > data.budget):
            return FleetSolution("INFEASIBLE", backend=f"{self.backend} (workload bounds)")
        if together is not None and together.objective == bound and meets_coupling_rules(data, together.replicas):
            return together
        self.solves += 1
        # No per-workload floors rows: valid, but measured slower (HiGHS 1.26 -> 1.08 s a solve without them,
        # CP-SAT 3.8 -> 0.24 s, over eight ranks of the fleet example).
        if self.backend != "auto":
            return fleet_backend(self.backend)(data, max_scale_rank=rank, time_limit_s=time_limit_s,
                                               dropped=self.dropped)
        if self.misses < AUTO_CPSAT_MISSES:
            first_s = AUTO_CPSAT_S if time_limit_s is None else min(AUTO_CPSAT_S, time_limit_s)
            quick = fleet_backend("cpsat")(data, max_scale_rank=rank, time_limit_s=first_s, dropped=self.dropped)
            if quick.status in ("OPTIMAL", "INFEASIBLE"):
                self.misses = 0
                return quick
            self.misses += 1
        return solve_fleet(data, "milp", max_scale_rank=rank, time_limit_s=time_limit_s)


def scale_frontier(data: FleetData, backend: str = "auto", *, time_limit_s: float | None = None,
                   on_point: Callable[[int], None] | None = None) -> ScaleFrontier:
    """Every cost level of the fleet with the least TPOT-scale rank that reaches it (module docstring).

    ``backend``: ``milp``, ``cpsat`` or ``auto`` (``LeastCost``).
    """
    top = int(data.scale_rank.max()) if len(data.scale_rank) else 0
    least_cost = LeastCost(data, backend, time_limit_s)

    points: list[tuple[int, FleetSolution]] = []

    def emit(least_rank: int, level_plan: FleetSolution | None) -> None:
        if level_plan is not None:
            points.append((least_rank, level_plan))
            if on_point is not None:
                on_point(len(points))

    complete = True
    rank, level, plan = top, None, None
    while rank >= 0:
        trial = least_cost(rank)
        if trial.status not in ("OPTIMAL", "INFEASIBLE"):
            complete = False
            break
        if trial.status == "INFEASIBLE" or trial.objective != level:  # ``level`` needs no rank below ``rank + 1``
            emit(rank + 1, plan)
            if trial.status == "INFEASIBLE":
                break
        level, plan = trial.objective, trial
        rank = highest_rank_used(data, trial) - 1
    else:  # rank 0 reached: the last level needs no tighter rank
        emit(0, plan)
    points.reverse()
    return ScaleFrontier(points, complete, least_cost.solves, least_cost.floors.solves)


def grid_frontier(data: FleetData, ranks: list[int], backend: str = "auto", *, time_limit_s: float | None = None,
                  on_point: Callable[[int], None] | None = None) -> ScaleFrontier:
    """The least-cost fleet at each of ``ranks`` only, keeping those strictly cheaper than every tighter one.

    For fleets whose exact frontier has thousands of points (``scale_frontier``): one exact least cost
    (``LeastCost``) per rank asked, tightest first. ``points`` holds (index into ``ranks``, plan).
    """
    least_cost = LeastCost(data, backend, time_limit_s)
    points: list[tuple[int, FleetSolution]] = []
    complete = True
    for k in sorted(range(len(ranks)), key=lambda i: ranks[i]):
        if ranks[k] < 0:  # tighter than every candidate
            continue
        plan = least_cost(ranks[k])
        if plan.status == "INFEASIBLE":
            continue
        if plan.status != "OPTIMAL":
            complete = False
            break
        if not points or plan.objective < points[-1][1].objective:
            points.append((k, plan))
            if on_point is not None:
                on_point(len(points))
    return ScaleFrontier(points, complete, least_cost.solves, least_cost.floors.solves)
