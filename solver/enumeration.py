"""The exhaustive numpy oracle: every configuration evaluated, the exact Pareto frontier extracted.

Because it looks at every point, it cannot miss one; the CP-SAT and MILP backends are tested
against it. It is also the fastest backend for the spaces we ship, and the default.
"""

from __future__ import annotations

import numpy as np

from infecon.formulations.space import ConfigTable


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
    order = np.lexsort((candidates, cost, table.latency_s[candidates]))
    ordered_cost = cost[order]
    cheapest_before = np.minimum.accumulate(np.concatenate(([np.inf], ordered_cost[:-1])))
    return candidates[order][ordered_cost < cheapest_before]


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
