"""One workload's least-cost replicas by exact branch and bound: the fleet solver's inner problem, in milliseconds.

The fleet solver (``fleet.solve``) solves each workload alone hundreds of times (its own
optimum, then its Pareto plans under caps on some GPU types). Each is tiny (a few dozen candidate
replicas, one demand, at most two balance rows, a few GPU caps), and HiGHS spends 10-60 ms on the
machinery of a general MIP for each; this search needs a few hundred nodes.

The problem: choose replicas ``x_i >= 0`` of the workload's candidates (aggregated, prefill and
decode kinds) to minimise ``sum cost_i x_i`` subject to ``A + sum_g min(P_g, Q_g) >= D`` (A: the
aggregated capacity, P_g and Q_g the prefill and decode capacity of route group g, between whose
GPUs the KV cache can move; the demand rows of ``fleet.model`` with the routed requests chosen as
well as possible) and, per capped GPU type, ``sum gpus_i x_i <= cap``.

Depth first over candidates in order of cost per unit of capacity, each tried from the most
replicas that can still help down to none. A node is pruned when its cost plus a lower bound on
the rest cannot beat the best plan by one micro-dollar. The bound relaxes integrality and most of
the GPU caps: with ``r_k`` the least cost per unit of capacity among the remaining candidates of
kind ``k`` whose GPU type still has room for one replica, covering the rest costs at least
the least cost of the missing capacity bought at those rates in fractions: per route group, a
routed request costs the missing pool's rate up to the group's imbalance, then both pools' rates;
an aggregated request costs ``r_0``; the need is filled cheapest first (a convex piecewise-linear
program, solved greedily; with rates per kind and route group). Everything else is
integer arithmetic, so the answer is exact. The bound is weak when a GPU cap forces the plan off
its cheapest type, so a search that passes ``node_limit`` says ``UNKNOWN`` and the caller solves
the model by MIP instead (on the 50 x 8 bench fleet four in five searches finish within the
default limit, and the whole pass takes about half HiGHS's time).
"""

from __future__ import annotations

import math

import numpy as np

from infecon.formulations.fleet.model import FleetData, FleetSolution

NODE_LIMIT = 3_000


def solve_workload(data: FleetData, *, max_scale_rank: int | None = None, dropped: np.ndarray | None = None,
                   node_limit: int = NODE_LIMIT) -> FleetSolution:
    """Least-cost plan of a one-workload fleet model (no budget, GPUs billed singly).

    Args:
        data: exactly one workload; ``available`` caps GPU types (-1: unlimited).
        max_scale_rank, dropped: as ``fleet.model.fleet_rows`` (candidates left out).

    Returns:
        ``OPTIMAL`` (proven), ``INFEASIBLE``, or ``UNKNOWN`` when the search passed ``node_limit``.

    Raises:
        ValueError: more than one workload, a budget or whole nodes (not this solver's problem).
    """
    if len(data.workload_names) != 1 or data.budget is not None or data.whole_nodes:
        raise ValueError("solve_workload takes one workload, no budget, GPUs billed singly")
    demand = int(data.demand[0])
    mode = data.disaggregated[0]
    usable = data.capacity > 0
    if dropped is not None:
        usable &= ~np.asarray(dropped, dtype=bool)
    if max_scale_rank is not None:
        usable &= data.scale_rank <= max_scale_rank
    usable &= (data.kind == 0) if mode == "never" else (data.kind != 0) if mode == "only" else True
    chosen = np.flatnonzero(usable)
    chosen = chosen[np.lexsort((chosen, data.cost[chosen] / data.capacity[chosen]))]
    kind = [int(k) for k in data.kind[chosen]]
    cost = [int(c) for c in data.cost[chosen]]
    cap = [int(c) for c in data.capacity[chosen]]
    pool = [int(p) for p in data.pool[chosen]]
    gpus = [int(g) for g in data.gpus[chosen]]
    room = [int(a) for a in data.available]  # GPUs left per type; -1: unlimited
    n = len(chosen)
    ratio = [cost[i] / cap[i] for i in range(n)]  # ascending: the candidates are in this order
    capped = any(room[pool[i]] >= 0 for i in range(n))

    group_of = [int(g) for g in data.route_group[chosen]]  # route group of each candidate (-1: aggregated)
    groups = len(data.route_names)
    prefill, decode = [0] * groups, [0] * groups
    classes = len({(kind[j], group_of[j]) for j in range(n)})

    def rates(i: int) -> dict[tuple[int, int], float]:
        """Least cost per capacity unit per (kind, route group) among candidates from ``i`` on that still fit one
        replica."""
        found: dict[tuple[int, int], float] = {}
        for j in range(i, n):
            key = (kind[j], group_of[j])
            if key not in found and (room[pool[j]] < 0 or room[pool[j]] >= gpus[j]):
                found[key] = ratio[j]
                if len(found) == classes:
                    break
        return found

    rest = [rates(i) for i in range(n + 1)]  # without caps the rates depend on the position only
    inf = math.inf

    def bound(i: int, a: int) -> float:
        """Least cost to serve the rest with capacity bought at those rates in any fraction: fill the need from
        the cheapest way to add one routed request first (aggregated; a group's missing pool up to its imbalance;
        both pools of a group), a convex piecewise-linear program solved greedily."""
        r = rates(i) if capped else rest[i]
        need = demand - a - sum(min(pg, qg) for pg, qg in zip(prefill, decode, strict=True))
        if need <= 0:
            return 0.0
        segments = [(r.get((0, -1), inf), need)]
        for g in range(groups):
            r1, r2 = r.get((1, g), inf), r.get((2, g), inf)
            if prefill[g] > decode[g]:
                segments.append((r2, prefill[g] - decode[g]))
            elif decode[g] > prefill[g]:
                segments.append((r1, decode[g] - prefill[g]))
            segments.append((r1 + r2, need))
        total = 0.0
        for rate, amount in sorted(segments):
            if rate == inf:
                return inf
            take = min(need, amount)
            total += take * rate
            need -= take
            if need <= 0:
                return total
        return inf

    best_cost = math.inf
    best_x: list[int] | None = None
    x = [0] * n
    nodes = 0

    def routed_total() -> int:
        return sum(min(pg, qg) for pg, qg in zip(prefill, decode, strict=True))

    def search(i: int, spent: int, a: int) -> bool:
        """False once the node limit is passed."""
        nonlocal best_cost, best_x, nodes
        nodes += 1
        if nodes > node_limit:
            return False
        routed = routed_total()
        if a + routed >= demand:
            if spent < best_cost:
                best_cost, best_x = spent, list(x)
            return True
        if i == n:
            return True
        rest_cost = bound(i, a)
        if rest_cost == inf or spent + rest_cost > best_cost - 1 + 1e-6:
            return True
        g = group_of[i]
        if kind[i] == 0:
            short = demand - a - routed
        else:  # more of this group's pool than the rest of the demand never helps
            others = routed - min(prefill[g], decode[g])
            short = demand - a - others - (prefill[g] if kind[i] == 1 else decode[g])
        most = -(-short // cap[i]) if short > 0 else 0
        if room[pool[i]] >= 0:
            most = min(most, room[pool[i]] // gpus[i])
        for count in range(most, -1, -1):
            x[i] = count
            if room[pool[i]] >= 0:
                room[pool[i]] -= count * gpus[i]
            added = count * cap[i]
            if kind[i] == 1:
                prefill[g] += added
            elif kind[i] == 2:
                decode[g] += added
            ok = search(i + 1, spent + count * cost[i], a + added * (kind[i] == 0))
            if kind[i] == 1:
                prefill[g] -= added
            elif kind[i] == 2:
                decode[g] -= added
            if room[pool[i]] >= 0:
                room[pool[i]] += count * gpus[i]
            x[i] = 0
            if not ok:
                return False
        return True

    if demand <= 0:
        best_cost, best_x = 0, [0] * n
    elif not search(0, 0, 0):
        return FleetSolution("UNKNOWN", backend="workload-search")
    if best_x is None:
        return FleetSolution("INFEASIBLE", backend="workload-search")
    replicas = np.zeros(len(data.gpus), dtype=np.int64)
    replicas[chosen] = best_x
    routed = route_split(data, replicas, demand, mode)
    return FleetSolution("OPTIMAL", replicas, routed, np.zeros(len(data.pool_names), dtype=np.int64),
                         int(best_cost), float(best_cost), "workload-search")


def route_split(data: FleetData, replicas: np.ndarray, demand: int, mode: str) -> np.ndarray:
    """Requests routed to each route group of a one-workload plan: what aggregated replicas leave, up to each
    group's balanced capacity (``min`` of its prefill and decode pools), groups in order."""
    served = (replicas * data.capacity)
    left = max(demand - int(served[data.kind == 0].sum()), 0) if mode != "never" else 0
    routed = np.zeros(len(data.route_names), dtype=np.int64)
    for g in range(len(routed)):
        balanced = min(int(served[(data.kind == 1) & (data.route_group == g)].sum()),
                       int(served[(data.kind == 2) & (data.route_group == g)].sum()))
        routed[g] = min(balanced, left)
        left -= routed[g]
    return routed
