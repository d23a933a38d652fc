"""The fleet model's oracle: every rule checked directly, and the least cost by exhaustive search (tiny fleets)."""

from __future__ import annotations

import itertools

import numpy as np

from infecon.formulations.fleet.model import FleetData, fleet_cost


def meets_rules(data: FleetData, n: np.ndarray, max_scale_rank: int | None = None) -> bool:
    """Every rule checked directly: demand (with balanced pools per route group: the KV cache moves only within
    one), inventory (in whole nodes if asked), budget."""
    if max_scale_rank is not None and np.any(n[data.scale_rank > max_scale_rank] > 0):
        return False
    served = True
    for w in range(len(data.workload_names)):
        def cap(kind: int, group: int, w: int = w) -> int:
            mask = (data.workload == w) & (data.kind == kind) & (data.route_group == group)
            return int((n * data.capacity)[mask].sum())
        routed = sum(min(cap(1, g), cap(2, g)) for g in data.routes_of(w)) if data.routes_disaggregated(w) else 0
        aggregated = cap(0, -1) if data.disaggregated[w] != "only" else 0
        served &= aggregated + routed >= data.demand[w]
    used = np.bincount(data.pool, weights=n * data.gpus, minlength=len(data.pool_names)).astype(np.int64)
    if data.whole_nodes:
        used = -(-used // data.node_size) * data.node_size
    within = bool(np.all((data.available < 0) | (used <= data.available)))
    return bool(served) and within and (data.budget is None or fleet_cost(data, n) <= data.budget)


def brute_force_cost(data: FleetData, max_scale_rank: int | None = None) -> int | None:
    """Least cost over every replica vector within the encodings' bounds, checking every rule directly."""
    upper = data.replica_upper_bounds(max_scale_rank)
    best = None
    for replicas in itertools.product(*(range(int(u) + 1) for u in upper)):
        n = np.array(replicas, dtype=np.int64)
        if meets_rules(data, n, max_scale_rank):
            cost = fleet_cost(data, n)
            best = cost if best is None else min(best, cost)
    return best
