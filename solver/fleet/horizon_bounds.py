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

Either sum is a bound on the optimum that needs no solver; ``solve_horizon`` reports the larger of it
and the MILP's dual bound, and the gap against that.
"""

from __future__ import annotations

import dataclasses

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
