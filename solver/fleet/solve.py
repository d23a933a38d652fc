"""Solve the fleet model exactly and fast: drop dominated candidates, solve each workload alone, then couple.

The integer program couples workloads only through the GPU inventories, the budget and a cost
cap. Solved as one model, branch and bound proves the optimum workload by workload (each one's
rounding gap), which takes minutes at 50 workloads and does not finish at 200. These exact steps
avoid that:

1. **Dominance** (``fleet.model.dominated_candidates``): a candidate that copies of cheaper
   kept candidates replace at no more cost and no more limited GPUs is left out; the optimum is
   unchanged (argued in that docstring, checked against the full model in the tests).
2. **Each workload alone**: with every inventory lifted and no budget, the fleet splits into one
   small problem per workload (``fleet.workload.solve_workload``, an exact search, for ``milp``);
   its least cost ``floor_w`` is a lower bound on what that
   workload's replicas cost in any feasible fleet (lifting rules only lowers a minimum). So
   ``sum floor_w`` bounds the fleet's cost from below. If the workloads' own optima together
   meet every coupling rule they cost exactly that bound and are the optimal fleet, proven; if
   the bound already exceeds the budget or the cost cap, no fleet is feasible.
3. **Pareto patterns over the binding GPU types** (``solve_by_patterns``): when the own optima
   overrun some inventories, each workload's Pareto-optimal plans in (cost, GPUs of those types)
   are enumerated and a small choice model (one plan per workload) finds the optimum; it is the
   fleet's, proven, as argued there.
4. **Otherwise** (whole nodes, where the bill is per node; or too many patterns) one solve of the
   whole model with rows ``cost_floor_<w>`` (each workload's replicas cost at least ``floor_w``,
   valid by 2.), which lift its root bound to the sum of integer optima, and the naive plan as a
   start.

A backend's own statuses pass through: ``OPTIMAL`` only when proven.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from infecon.formulations.errors import InfeconError
from infecon.formulations.fleet.model import (
    FleetData,
    FleetRows,
    FleetSolution,
    IntVar,
    LinearRow,
    dominated_candidates,
    fleet_cost,
    gpus_used,
    nodes_needed,
    safe_name,
)
from infecon.formulations.fleet.workload import solve_workload
from infecon.solver.parallel import run_tasks

FLEET_BACKENDS = ("milp", "cpsat")


def plan_backend(name: str) -> str:
    """The backend that solves one least-cost plan: ``auto`` is HiGHS there (``auto`` only chooses a route per solve
    in the frontier's walk, ``fleet.scales.LeastCost``)."""
    return "milp" if name == "auto" else name


def fleet_backend(name: str):
    """The whole-fleet solver of a backend name: ``solve_fleet_milp`` or ``solve_fleet_cpsat``."""
    if name == "milp":
        from infecon.formulations.fleet.milp import solve_fleet_milp

        return solve_fleet_milp
    if name == "cpsat":
        from infecon.formulations.fleet.cpsat import solve_fleet_cpsat

        return solve_fleet_cpsat
    raise InfeconError(f"unknown fleet backend '{name}' (choose from: {', '.join(FLEET_BACKENDS)})")


def one_workload_solver(backend: str):
    """The solver of one workload alone: for ``milp`` the exact search of ``fleet.workload`` (milliseconds),
    with HiGHS when the search gives up; for ``cpsat`` CP-SAT itself, so it stays an independent opinion."""
    solve = fleet_backend(backend)
    if backend != "milp":
        return solve

    def search_then_milp(data: FleetData, *, max_scale_rank: int | None = None, dropped: np.ndarray | None = None,
                         time_limit_s: float | None = None) -> FleetSolution:
        found = solve_workload(data, max_scale_rank=max_scale_rank, dropped=dropped)
        if found.status != "UNKNOWN":
            return found
        return solve(data, max_scale_rank=max_scale_rank, dropped=dropped, time_limit_s=time_limit_s)

    return search_then_milp


def workload_alone(data: FleetData, w: int) -> tuple[FleetData, np.ndarray]:
    """Workload ``w`` with its own candidates, every inventory lifted, no budget, GPUs billed singly.

    Returns:
        The one-workload model and the indices of its candidates in ``data``.
    """
    mine = np.flatnonzero(data.workload == w)
    routes = data.routes_of(w)
    local = np.full(len(data.route_names) + 1, -1, dtype=np.int64)  # global route group -> local (-1 stays -1)
    local[routes] = np.arange(len(routes))
    alone = dataclasses.replace(
        data, workload_names=(data.workload_names[w],), demand=data.demand[w:w + 1],
        disaggregated=(data.disaggregated[w],), available=np.full(len(data.pool_names), -1),
        workload=np.zeros(len(mine), dtype=np.int64), pool=data.pool[mine], kind=data.kind[mine],
        gpus=data.gpus[mine], capacity=data.capacity[mine], scale_rank=data.scale_rank[mine], budget=None,
        whole_nodes=False, route_group=local[data.route_group[mine]], route_workload=np.zeros(len(routes)),
        route_names=tuple(data.route_names[g] for g in routes))
    return alone, mine


def meets_coupling_rules(data: FleetData, replicas: np.ndarray, cost_cap: int | None = None) -> bool:
    """Inventory (in whole nodes if asked), budget and cost cap: the rules that tie workloads together."""
    used = nodes_needed(data, replicas) * data.node_size if data.whole_nodes else gpus_used(data, replicas)
    cost = fleet_cost(data, replicas)
    return bool(np.all((data.available < 0) | (used <= data.available))) and \
        (data.budget is None or cost <= data.budget) and (cost_cap is None or cost <= cost_cap)


MIN_PARALLEL_TASKS = 16


def _own_optimum_task(task: tuple) -> FleetSolution:
    """Worker side: one workload's least cost alone (caps on some GPU types if given)."""
    alone, dropped, backend, max_scale_rank, time_limit_s = task
    solve = one_workload_solver(backend)
    return solve(alone, max_scale_rank=max_scale_rank, dropped=dropped, time_limit_s=time_limit_s)


def _patterns_task(task: tuple) -> list[FleetSolution] | None:
    """Worker side: one workload's Pareto patterns over the GPU types ``pools``."""
    alone, dropped, pools, backend, max_scale_rank, time_limit_s, first = task
    return pareto_patterns(alone, dropped, pools, one_workload_solver(backend), max_scale_rank=max_scale_rank,
                           time_limit_s=time_limit_s, first=first)


def _map(function, tasks: list[tuple], jobs: int | None) -> list:
    """``function`` over ``tasks`` (in this process when ``jobs == 1`` or the tasks are few), raising on an error."""
    if len(tasks) < MIN_PARALLEL_TASKS:  # a process pool's start costs more than a few small solves
        jobs = 1
    results = []
    for status, payload in run_tasks(function, tasks, jobs=jobs, desc="workloads", progress=False):
        if status != "ok":
            raise InfeconError(f"fleet solve: {payload}")
        results.append(payload)
    return results


def _memo_map(function, tasks: list[tuple], keys: list[tuple], jobs: int | None, memo: dict | None) -> list:
    """``_map`` that solves each key once: results already in ``memo`` are reused, new ones stored there."""
    if memo is None:
        return _map(function, tasks, jobs)
    todo = {key: task for key, task in zip(keys, tasks, strict=True) if key not in memo}
    memo.update(zip(todo, _map(function, list(todo.values()), jobs), strict=True))
    return [memo[key] for key in keys]


def _workload_key(data: FleetData, w: int, dropped: np.ndarray, *extra) -> tuple:
    """What one workload's solve depends on within fleets that differ only in demand (``solve_fleet``'s memo)."""
    return (w, data.demand[w].tobytes(), dropped.tobytes(), *extra)


def pareto_patterns(alone: FleetData, dropped: np.ndarray, pools: list[int], solve, *,
                    max_scale_rank: int | None, time_limit_s: float | None,
                    first: FleetSolution | None = None) -> list[FleetSolution] | None:
    """Every Pareto-optimal plan of one workload in (cost, GPUs of each of ``pools``), by capping those GPUs.

    Solve the least cost under caps; a plan ``s`` found, every plan not dominated by it uses
    fewer GPUs of some pool ``p`` than ``s`` does, so it is found under the caps with ``p``'s cap
    lowered to ``s``'s use minus one. Following every such branch (each cap set once) finds them
    all. None if a solve is not proven optimal or the search grows beyond ``MAX_PATTERN_SOLVES``.
    ``first``: the workload's optimum without caps, if already known (saves that solve).
    """
    found: list[FleetSolution] = []
    start = tuple(-1 for _ in pools)
    pending, seen = [start], {start}
    while pending:
        caps = pending.pop()
        available = np.full(len(alone.pool_names), -1, dtype=np.int64)
        available[pools] = caps
        if caps == start and first is not None:
            own = first
        else:
            own = solve(dataclasses.replace(alone, available=available), max_scale_rank=max_scale_rank,
                        dropped=dropped, time_limit_s=time_limit_s)
        if own.status == "INFEASIBLE":
            continue
        if own.status != "OPTIMAL" or len(seen) > MAX_PATTERN_SOLVES:
            return None
        found.append(own)
        used = gpus_used(alone, own.replicas)[pools]
        for k, u in enumerate(used):
            if u > 0:
                lower = tuple(int(u) - 1 if j == k else c for j, c in enumerate(caps))
                if lower not in seen:
                    seen.add(lower)
                    pending.append(lower)
    keys = [(s.objective, *gpus_used(alone, s.replicas)[pools]) for s in found]
    front = []
    for i, key in enumerate(keys):
        if any(all(o <= k for o, k in zip(other, key, strict=True)) and (other != key or j < i)
               for j, other in enumerate(keys) if j != i):
            continue
        front.append(found[i])
    return front


MAX_PATTERN_SOLVES = 400  # per workload; beyond that the whole model is solved instead


def _pattern_master(data: FleetData, patterns: list[list[tuple[np.ndarray, np.ndarray, int]]], pools: list[int],
                    cost_cap: int | None, backend: str, time_limit_s: float | None):
    """Choose one pattern per workload: least cost within the inventories of ``pools``, budget and cost cap."""
    variables, choice = [], []
    for w, options in enumerate(patterns):
        for k in range(len(options)):
            variables.append(IntVar(f"pattern_{safe_name(data.workload_names[w])}_{k}", 1))
            choice.append((w, k))
    rows = []
    for w, name in enumerate(data.workload_names):
        rows.append(LinearRow(f"one_pattern_{safe_name(name)}",
                              [(i, 1) for i, (v, _) in enumerate(choice) if v == w], lower=1, upper=1))
    for p in pools:
        terms = [(i, int(patterns[w][k][1][p])) for i, (w, k) in enumerate(choice) if patterns[w][k][1][p]]
        rows.append(LinearRow(f"inventory_{safe_name(data.pool_names[p])}", terms, upper=int(data.available[p])))
    cost_terms = [(i, int(patterns[w][k][2])) for i, (w, k) in enumerate(choice)]
    for name, cap in (("budget", data.budget), ("cost_cap", cost_cap)):
        if cap is not None:
            rows.append(LinearRow(name, cost_terms, upper=int(cap)))
    model = FleetRows(variables, rows, cost_terms, np.array([], dtype=np.int64), np.array([], dtype=np.int64),
                      np.array([], dtype=np.int64))
    if backend == "milp":
        from infecon.formulations.fleet.milp import solve_rows_milp as solve_rows
    else:
        from infecon.formulations.fleet.cpsat import solve_rows_cpsat as solve_rows
    status, values, bound = solve_rows(model, time_limit_s)
    if values is None:
        return status, None, bound
    return status, [k for (w, k), v in sorted(zip(choice, values, strict=True)) if round(v) == 1], bound


def solve_by_patterns(data: FleetData, backend: str, own: list[tuple[FleetSolution, np.ndarray]],
                      dropped: np.ndarray, *, max_scale_rank: int | None, cost_cap: int | None,
                      time_limit_s: float | None, jobs: int | None = 1,
                      memo: dict | None = None) -> FleetSolution | None:
    """The exact optimum by Pareto patterns over the binding GPU types (module docstring, step 3).

    ``B`` starts as the limited GPU types the workloads' own optima overrun. With every other
    inventory lifted, workloads interact only through ``B``'s inventories, the budget and the
    cost cap, all of which prefer less cost and fewer GPUs of ``B``; so each workload may be
    restricted to its Pareto-optimal plans in (cost, GPUs of each type in ``B``) without losing
    the optimum of that relaxation, and a small choice model finds it. If its plan also fits the
    lifted inventories it is optimal for the fleet, proven; else the overrun types join ``B``.
    Patterns are searched among kept candidates only, which is exact here too: a dominance swap
    never adds GPUs of a limited type, and every type in ``B`` is limited.
    None when this does not apply (whole nodes) or gives up (too many patterns): solve whole.
    """
    if data.whole_nodes or backend not in FLEET_BACKENDS:
        return None
    limited = set(np.flatnonzero(data.available >= 0).tolist())
    combined = np.zeros(len(data.gpus), dtype=np.int64)
    for solution, mine in own:
        combined[mine] = solution.replicas
    binding = sorted(p for p in limited if gpus_used(data, combined)[p] > data.available[p])
    while True:
        alone = [workload_alone(data, w)[0] for w in range(len(own))]
        todo = [w for w, (solution, _) in enumerate(own) if np.any(gpus_used(alone[w], solution.replicas)[binding] > 0)]
        tasks = [(alone[w], dropped[own[w][1]], binding, backend, max_scale_rank, time_limit_s, own[w][0])
                 for w in todo]
        keys = [_workload_key(data, w, task[1], "patterns", tuple(binding), max_scale_rank, time_limit_s)
                for w, task in zip(todo, tasks, strict=True)]
        fronts = dict(zip(todo, _memo_map(_patterns_task, tasks, keys, jobs, memo), strict=True))
        if any(front is None for front in fronts.values()):
            return None
        patterns, solutions = [], []
        for w, (solution, mine) in enumerate(own):
            front = fronts.get(w, [solution])  # a workload using none of B: its own optimum is its only Pareto point
            replicas = []
            for s in front:
                full = np.zeros(len(data.gpus), dtype=np.int64)
                full[mine] = s.replicas
                replicas.append(full)
            patterns.append([(r, gpus_used(data, r), int(s.objective)) for r, s in zip(replicas, front, strict=True)])
            solutions.append(front)
        status, chosen, bound = _pattern_master(data, patterns, binding, cost_cap, backend, time_limit_s)
        name = f"{backend} (patterns over {', '.join(data.pool_names[p] for p in binding)})"
        if status == "INFEASIBLE":
            return FleetSolution("INFEASIBLE", backend=name)
        if chosen is None:
            return None
        replicas = sum(patterns[w][k][0] for w, k in enumerate(chosen))
        over = sorted(p for p in limited - set(binding) if gpus_used(data, replicas)[p] > data.available[p])
        if over:
            binding = sorted(set(binding) | set(over))
            continue
        routed = np.zeros(len(data.route_names), dtype=np.int64)
        for w, k in enumerate(chosen):
            routed[data.routes_of(w)] = solutions[w][k].routed
        return FleetSolution(status, replicas, routed, np.zeros(len(data.pool_names), dtype=np.int64),
                             fleet_cost(data, replicas), bound, name)


def solve_fleet(data: FleetData, backend: str = "milp", *, max_scale_rank: int | None = None,
                cost_cap: int | None = None, time_limit_s: float | None = None, hint: FleetSolution | None = None,
                reduce: bool = True, jobs: int | None = 1, memo: dict | None = None) -> FleetSolution:
    """Least-cost fleet by the exact steps of the module docstring (``reduce=False``: the plain model, one solve).

    Args:
        backend: ``milp`` (HiGHS) or ``cpsat``; it solves the per-workload problems and the whole model.
        hint: a plan that meets every rule (e.g. the naive plan), to start from.
        jobs: processes for the per-workload solves (``parallel.run_tasks``; 1: in this process).
        memo: per-workload results to share between fleets that differ ONLY in demand (the periods of a
            horizon): a workload's own optimum and Pareto patterns depend on its own demand, not the others'.

    Returns:
        ``FleetSolution``; ``OPTIMAL`` only when proven (by the bound of step 2, the patterns of step 3 or the
        backend); ``time_limit_s`` applies to each solve.
    """
    solve = fleet_backend(backend)
    if not reduce:
        return solve(data, max_scale_rank=max_scale_rank, cost_cap=cost_cap, time_limit_s=time_limit_s)
    dropped = dominated_candidates(data, respect_scale=max_scale_rank is not None)
    floors = np.zeros(len(data.workload_names), dtype=np.int64)
    replicas = np.zeros(len(data.gpus), dtype=np.int64)
    routed = np.zeros(len(data.route_names), dtype=np.int64)
    exact = True
    optima = []
    tasks = []
    for w in range(len(data.workload_names)):
        alone, mine = workload_alone(data, w)
        tasks.append((alone, dropped[mine], backend, max_scale_rank, time_limit_s))
    keys = [_workload_key(data, w, task[1], "own", max_scale_rank, time_limit_s) for w, task in enumerate(tasks)]
    for w, own in enumerate(_memo_map(_own_optimum_task, tasks, keys, jobs, memo)):
        mine = np.flatnonzero(data.workload == w)
        if own.status == "INFEASIBLE":  # lifting rules could not serve it: nothing can
            return FleetSolution("INFEASIBLE", backend=own.backend)
        if own.status != "OPTIMAL":
            exact = False
            continue
        optima.append((own, mine))
        floors[w] = own.objective
        replicas[mine] = own.replicas
        routed[data.routes_of(w)] = own.routed
    bound = int(floors.sum())
    if exact:
        limit = min(x for x in (data.budget, cost_cap, np.inf) if x is not None)
        if bound > limit:
            return FleetSolution("INFEASIBLE", bound=float(bound), backend=f"{backend} (workload bounds)")
        if fleet_cost(data, replicas) == bound and meets_coupling_rules(data, replicas, cost_cap):
            nodes = nodes_needed(data, replicas) if data.whole_nodes else np.zeros(len(data.pool_names), dtype=np.int64)
            return FleetSolution("OPTIMAL", replicas, routed, nodes, bound, float(bound),
                                 f"{backend} (workloads apart)")
        by_patterns = solve_by_patterns(data, backend, optima, dropped, max_scale_rank=max_scale_rank,
                                        cost_cap=cost_cap, time_limit_s=time_limit_s, jobs=jobs, memo=memo)
        if by_patterns is not None:
            return by_patterns
    start = hint if hint is not None and hint.replicas is not None and \
        meets_coupling_rules(data, hint.replicas, cost_cap) else None
    if start is not None:  # keeping some dominated candidates is still exact: the hint's stay in
        dropped &= start.replicas == 0
    return solve(data, max_scale_rank=max_scale_rank, cost_cap=cost_cap, time_limit_s=time_limit_s,
                 dropped=dropped, floors=floors if exact else None, start=start)
