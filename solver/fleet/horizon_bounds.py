"""Lower bounds on a plan over periods that hold without solving it, so a plan stopped early still states a gap.

Why they are valid. In any plan, each GPU in use in period ``k`` is covered by a source that costs
at least its type's cheapest per-period price ``c_t`` for that period: on demand and spot are paid
for the period, and a reserved GPU is paid ``c_R`` in every period, so at least ``c_R`` for this
one (it covers at most one GPU in use at a time). Hence the horizon's cost is at least
``sum_k weight_k sum_t c_t U_tk`` (``U_tk``: GPUs of type ``t`` in use in period ``k``). Splitting
``U`` by workload, workload ``w``'s GPUs in period ``k`` form a plan of that workload alone with
every inventory, warm floor, spot share and budget lifted (lifting rules only lowers a minimum),
so they cost at least its least cost alone at the prices ``c``:

* ``horizon_floors``: that least cost, integer and exact (the search of ``fleet.workload``, HiGHS
  where the search gives up; a solve not proven leaves 0, which is still a bound). The model's rows
  ``cost_floor_<w>_p<k>`` carry these numbers into the LP bound; ``floor_bound`` adds them up.
* ``ratio_bound``: the same problem's LP relaxation, instantly: the demand times the least price
  per unit of capacity (an aggregated replica's, or a prefill plus a decode replica's of one route
  group). Used when the floors would cost minutes (many workloads x distinct periods).
* ``lagrangian_bound``: better prices than the cheapest source's, per type and period, searched by
  supergradient ascent on the Lagrangian relaxation of the rows ``cover`` (argued at
  ``lagrangian_value``); it sees reservations, spot availability and inventories, and reaches
  about the LP bound in seconds where HiGHS's root LP would take minutes.

Either sum is a bound on the optimum that needs no solver; ``solve_horizon`` reports the larger of it
and the MILP's dual bound, and the gap against that.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from infecon.formulations.fleet.horizon import HorizonData, cheapest_gpu_cost
from infecon.formulations.fleet.workload import solve_workload
from infecon.solver.fleet.solve import one_workload_solver, workload_alone


def horizon_floors(data: HorizonData, dropped: np.ndarray, *, node_limit: int | None = None) -> np.ndarray:
    """(W, K) micro-USD: each workload's least cost alone in each period, every GPU at its type's cheapest source.

    ``node_limit``: the search alone with this node limit, no MILP where it gives up (that floor 0):
    bounded work for large plans. None: the search, then HiGHS (exact wherever HiGHS finishes).
    """
    f = data.fleet
    if node_limit is None:
        solve = one_workload_solver("milp")
    else:
        def solve(alone, *, dropped):
            return solve_workload(alone, dropped=dropped, node_limit=node_limit)
    prices = cheapest_gpu_cost(data)
    floors = np.zeros(data.demand.shape, dtype=np.int64)
    priced = dataclasses.replace(f, gpu_cost=np.where(prices >= 0, prices, 0), available=np.full(len(prices), -1))
    for w in range(len(f.workload_names)):
        alone, mine = workload_alone(priced, w)
        seen: dict[int, int] = {}
        for k in range(data.periods):
            demand = int(data.demand[w, k])
            if demand not in seen:
                found = solve(dataclasses.replace(alone, demand=np.array([demand])), dropped=dropped[mine])
                seen[demand] = int(found.objective) if found.status == "OPTIMAL" else 0
            floors[w, k] = seen[demand]
    return floors


def floor_bound(data: HorizonData, floors: np.ndarray) -> int:
    """Micro-USD: the horizon's cost is at least the floors of every workload and period (module docstring)."""
    return int((np.asarray(floors) * data.weight[None, :]).sum())


def ratio_bound(data: HorizonData) -> float:
    """Micro-USD: the floors' LP relaxation, summed (module docstring), from arrays in milliseconds.

    Per workload the least price per capacity unit at the cheapest GPU prices: of an aggregated
    candidate, or of a prefill plus a decode candidate of one route group (if the workload routes
    requests to disaggregated pools at all); a route's requests need both pools' capacity. The
    options are the model's (``horizon_rows``), so the bound is its LP's and never above its optimum.
    """
    f = data.fleet
    prices = cheapest_gpu_cost(data)
    usable = (f.capacity > 0) & (prices[f.pool] >= 0)
    ratio = np.where(usable, f.gpus * np.maximum(prices[f.pool], 0) / np.maximum(f.capacity, 1), np.inf)
    best = np.full(len(f.workload_names), np.inf)
    for w in range(len(f.workload_names)):
        mine = f.workload == w
        best[w] = ratio[mine & (f.kind == 0)].min(initial=np.inf)
        if f.routes_disaggregated(w):
            for g in f.routes_of(w):
                pair = sum(ratio[mine & (f.kind == kind) & (f.route_group == g)].min(initial=np.inf)
                           for kind in (1, 2))
                best[w] = min(best[w], pair)
    best = np.where(np.isfinite(best), best, 0.0)  # a workload no GPU can serve: no plan at all; bound by 0
    return float((best[:, None] * data.demand * data.weight[None, :]).sum())


def _segments(data: HorizonData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidates with capacity sorted into option segments: per workload its aggregated ones, per route group (of a
    workload that routes to disaggregated pools) its prefill and its decode ones. Returns the sorted candidate
    indices, each segment's start, and per segment (workload, kind, route group)."""
    f = data.fleet
    routes = np.array([f.routes_disaggregated(int(w)) for w in range(len(f.workload_names))], dtype=bool)
    usable = (f.capacity > 0) & ((f.kind == 0) | routes[f.workload])
    chosen = np.flatnonzero(usable)
    group = np.where(f.kind[chosen] == 0, -1, f.route_group[chosen])
    order = np.lexsort((chosen, group, f.kind[chosen], f.workload[chosen]))
    chosen, group = chosen[order], group[order]
    key = np.stack([f.workload[chosen], f.kind[chosen], group], axis=1)
    new = np.ones(len(chosen), dtype=bool)
    new[1:] = np.any(key[1:] != key[:-1], axis=1)
    starts = np.flatnonzero(new)
    return chosen, starts, key[starts]


def lagrangian_value(data: HorizonData, prices: np.ndarray, segments=None) -> tuple[float, np.ndarray]:
    """Micro-USD: a lower bound on the optimum for any per-GPU, per-period prices ``prices`` (T, K) that are
    *admissible*: non-negative and, for a GPU type without an inventory, at most the on-demand price where there
    is one and adding up over the horizon (x the periods' weights) to at most the reservation (``admissible``).

    Why (Lagrangian relaxation of the rows ``cover``): for any plan, its cost is at least cost -
    sum_tk weight_k prices_tk (reserved + on demand + spot - in use)_tk, as each bracket is >= 0. Collected
    by variable, the source terms of a type (reserved x (its price x periods - sum_k weight_k prices_tk), on
    demand and spot x (their price - prices_tk) x weight_k) are at least their least over every choice of
    sources within spot availability and inventory (``_sources``; without an inventory, admissible prices
    make reserving and on demand never pay, and spot loses at most weight_k (prices - spot)^+ x available).
    What is left, sum_k weight_k prices_k . GPUs in use, splits by
    workload and period, and each is at least its demand x the least price per unit of capacity of its
    options (the LP of the workload alone at prices_k: an aggregated candidate, or a route group's prefill
    plus decode pair). Every other rule is dropped, which only lowers a minimum. With the cheapest price
    of each type in every period this is ``ratio_bound``.

    Returns:
        The bound and a supergradient (T, K) (GPUs in use by the relaxed plan minus spot taken, x weights).
    """
    f = data.fleet
    chosen, starts, keys = segments if segments is not None else _segments(data)
    T, K, W = len(f.pool_names), data.periods, len(f.workload_names)
    per_unit = (f.gpus[chosen] / f.capacity[chosen])[:, None] * prices[f.pool[chosen]]  # (n, K)
    least = np.minimum.reduceat(per_unit, starts, axis=0)  # (S, K) per segment
    segment = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(chosen))))
    rows = np.where(per_unit == least[segment], np.arange(len(chosen))[:, None], len(chosen))
    argmin = np.minimum.reduceat(rows, starts, axis=0)  # (S, K) position in ``chosen`` of each segment's least
    best = np.full((W, K), np.inf)
    pick: list[list[tuple[np.ndarray, ...]]] = [[] for _ in range(W)]  # per workload: (value, positions...) options
    aggregated = keys[:, 1] == 0
    for s in np.flatnonzero(aggregated):
        pick[keys[s, 0]].append((least[s], argmin[s]))
    pairs: dict[tuple[int, int], dict[int, int]] = {}
    for s in np.flatnonzero(~aggregated):
        pairs.setdefault((int(keys[s, 0]), int(keys[s, 2])), {})[int(keys[s, 1])] = s
    for (w, _), kinds in pairs.items():
        if len(kinds) == 2:
            p, d = kinds[1], kinds[2]
            pick[w].append((least[p] + least[d], argmin[p], argmin[d]))
    gradient = np.zeros((T, K))
    columns = np.arange(K)
    for w, options in enumerate(pick):
        if not options:
            continue
        values = np.stack([o[0] for o in options])  # (options, K)
        which = np.argmin(values, axis=0)
        best[w] = values[which, columns]
        for o, option in enumerate(options):
            on = which == o
            for position in option[1:]:
                c = chosen[position[on]]
                np.add.at(gradient, (f.pool[c], columns[on]), data.demand[w, on] * f.gpus[c] / f.capacity[c])
    best = np.where(np.isfinite(best), best, 0.0)  # no option at all: no plan exists; 0 keeps it a bound
    value = float((data.demand * best * data.weight[None, :]).sum())
    for t in range(T):
        sources, taken = _sources(data, t, prices[t])
        value += sources
        gradient[t] -= taken
    return value, gradient * data.weight[None, :]


def _sources(data: HorizonData, t: int, prices: np.ndarray) -> tuple[float, np.ndarray]:
    """The least of the relaxed objective's source terms of GPU type ``t`` (``lagrangian_value``) and the GPUs per
    period the minimising sources provide: reserved ``R`` for the horizon, then per period spot and on demand,
    each taken when its price is below ``prices`` (the better margin first), within the spot GPUs available and,
    with an inventory, what it leaves after ``R``. The terms are convex and piecewise linear in ``R``, so
    the least sits at a breakpoint: 0, the inventory, or the inventory less a period's spot GPUs."""
    weight = data.weight.astype(float)
    limit = int(data.fleet.available[t])
    spot = np.where((data.spot_cost[t] >= 0), data.spot_available[t], 0).astype(float)
    spot_gain = np.where(spot > 0, prices - max(int(data.spot_cost[t]), 0), 0.0)
    od_gain = prices - data.on_demand_cost[t] if data.on_demand_cost[t] >= 0 else np.full(len(prices), -np.inf)
    if limit < 0:  # admissible prices keep on demand and reservations from paying: only spot can
        taken = np.where(spot_gain > 0, spot, 0.0)
        return -float((weight * spot_gain * taken).sum()), taken
    levels = np.unique([0.0, float(limit), *np.clip(limit - spot, 0, limit)]) if data.reserved_cost[t] >= 0 \
        else np.array([0.0])
    room = limit - levels[:, None]  # (levels, K)
    first_spot = spot_gain >= od_gain
    spot_taken = np.where(spot_gain > 0, np.minimum(spot, room), 0.0)
    od_taken = np.where(od_gain > 0, np.where(first_spot, room - spot_taken, room), 0.0)
    spot_taken = np.where(first_spot | (od_gain <= 0), spot_taken, 0.0)
    gain = (spot_taken * spot_gain + od_taken * np.where(od_gain > 0, od_gain, 0.0)) @ weight
    reserve = max(int(data.reserved_cost[t]), 0) * data.total_periods - float(prices @ weight)
    totals = levels * reserve - gain
    j = int(np.argmin(totals))
    return float(totals[j]), levels[j] + spot_taken[j] + od_taken[j]


def admissible(data: HorizonData, prices: np.ndarray) -> np.ndarray:
    """The admissible prices (``lagrangian_value``) nearest to ``prices``: non-negative; for a type without an
    inventory also at most its on-demand price, and lowered by a common amount x weight until they add up to
    its reservation (bisection). A type with an inventory takes any (its sources are bounded)."""
    unlimited = data.fleet.available < 0
    high = np.where(unlimited & (data.on_demand_cost >= 0), data.on_demand_cost, np.inf).astype(float)[:, None]
    clipped = np.clip(prices, 0, high)
    budget = data.reserved_cost.astype(float) * data.total_periods
    weight = data.weight.astype(float)
    for t in np.flatnonzero((data.reserved_cost >= 0) & unlimited):
        if clipped[t] @ weight <= budget[t]:
            continue
        low, up = 0.0, float(np.max(prices[t]) / weight.min()) + 1.0
        for _ in range(60):
            mid = (low + up) / 2
            if np.clip(prices[t] - mid * weight, 0, high[t]) @ weight > budget[t]:
                low = mid
            else:
                up = mid
        clipped[t] = np.clip(prices[t] - up * weight, 0, high[t])
    return clipped


def lagrangian_bound(data: HorizonData, *, target: float | None = None, iterations: int = 300,
                     seconds: float | None = 10.0) -> float:
    """Micro-USD: the best ``lagrangian_value`` found by projected supergradient ascent from the cheapest prices
    (``ratio_bound``'s), Polyak steps towards ``target`` (a plan's cost; default 1.5 x the start's bound),
    for at most ``iterations`` steps or ``seconds``. Any admissible prices give a valid bound, so stopping
    early only leaves it lower."""
    started = time.perf_counter()
    segments = _segments(data)
    least = cheapest_gpu_cost(data)
    prices = admissible(data, np.repeat(np.where(least >= 0, least, 0).astype(float)[:, None], data.periods, axis=1))
    best, gradient = lagrangian_value(data, prices, segments)
    goal = target if target is not None else 1.5 * max(best, 1.0)
    step, stale, current = 1.0, 0, best
    for _ in range(iterations):
        if seconds is not None and time.perf_counter() - started > seconds:
            break
        norm = float((gradient ** 2).sum())
        if norm <= 0 or goal <= best:
            break
        prices = admissible(data, prices + step * (goal - current) / norm * gradient)
        current, gradient = lagrangian_value(data, prices, segments)
        if current > best * (1 + 1e-6):
            best, stale = current, 0
        else:
            stale += 1
            if stale >= 10:
                step, stale = step / 2, 0
    return best
