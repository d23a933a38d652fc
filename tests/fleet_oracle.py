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


def horizon_broken_rules(data, plan) -> list[str]:
    """Every rule of a plan over periods checked directly from the data (not from the model's rows): the names of
    the rules it breaks, e.g. ``demand_w0_p1``. ``data``: ``HorizonData``; ``plan``: ``HorizonSolution``."""
    from infecon.formulations.fleet.horizon import SHARE_SCALE

    f = data.fleet
    size = f.node_size if f.whole_nodes else np.ones(len(f.pool_names), dtype=np.int64)
    broken = []
    total = plan.replicas + plan.spot_replicas
    if np.any(plan.reserved[data.reserved_cost < 0] > 0) or np.any(plan.on_demand[data.on_demand_cost < 0] > 0) \
            or np.any(plan.spot[data.spot_cost < 0] > 0):
        broken.append("offers")
    restricted = np.array([data.restricted(int(w)) for w in f.workload], dtype=bool)
    if np.any(plan.spot_replicas[~restricted] > 0):
        broken.append("spot_copies")
    for k in range(data.periods):
        n = total[:, k]
        for w, name in enumerate(f.workload_names):
            def cap(kind: int, group: int, m: np.ndarray = n, w: int = w) -> int:
                mask = (f.workload == w) & (f.kind == kind) & (f.route_group == group)
                return int((m * f.capacity)[mask].sum())
            routed = sum(min(cap(1, g), cap(2, g)) for g in f.routes_of(w)) if f.routes_disaggregated(w) else 0
            aggregated = cap(0, -1) if f.disaggregated[w] != "only" else 0
            if aggregated + routed < data.demand[w, k]:
                broken.append(f"demand_{name}_p{k}")
            tokens = int(n[(f.workload == w) & np.isin(f.kind, (0, 2))].sum())
            if tokens < data.min_replicas[w]:
                broken.append(f"min_replicas_{name}_p{k}")
            if data.restricted(w):
                q = int(data.spot_share[w])
                for kind in range(3):
                    mine = (f.workload == w) & (f.kind == kind)
                    on_spot = int((plan.spot_replicas[:, k] * f.capacity)[mine].sum())
                    every = int((n * f.capacity)[mine].sum())
                    if on_spot * SHARE_SCALE > q * every:
                        broken.append(f"spot_share_{name}_{kind}_p{k}")
        used = np.bincount(f.pool, weights=n * f.gpus, minlength=len(f.pool_names)).astype(np.int64)
        off_spot = np.bincount(f.pool, weights=np.where(restricted, plan.replicas[:, k], 0) * f.gpus,
                               minlength=len(f.pool_names)).astype(np.int64)
        have = (plan.reserved + plan.on_demand[:, k] + plan.spot[:, k]) * size
        for t, gpu in enumerate(f.pool_names):
            if used[t] > have[t]:
                broken.append(f"cover_{gpu}_p{k}")
            if off_spot[t] > (plan.reserved[t] + plan.on_demand[t, k]) * size[t]:
                broken.append(f"not_on_spot_{gpu}_p{k}")
            if f.available[t] >= 0 and have[t] > f.available[t]:
                broken.append(f"inventory_{gpu}_p{k}")
            if plan.spot[t, k] * size[t] > data.spot_available[t, k]:
                broken.append(f"spot_available_{gpu}_p{k}")
        if data.budget is not None:
            spend = int((size * (plan.reserved * np.maximum(data.reserved_cost, 0)
                                 + plan.on_demand[:, k] * np.maximum(data.on_demand_cost, 0)
                                 + plan.spot[:, k] * np.maximum(data.spot_cost, 0))).sum())
            if spend > data.budget:
                broken.append(f"budget_p{k}")
    return broken
