"""Capacity planning over time as integers: GPUs reserved for the whole horizon, on demand or on spot per period.

The fleet of ``fleet.model`` is solved for every period at once, and GPUs come from three sources
per type: *reserved* (one number for the whole horizon, paid in every period whether used or not),
*on demand* and *spot* (chosen per period, paid for that period). Replicas do not carry a price
here: a period's replicas use GPUs of their type, and the GPUs are paid by source. All numbers are
integers scaled as in ``fleet.model`` (capacity rounded down, demand up, micro-USD), so both
encodings (HiGHS, CP-SAT) solve the same model and an integer plan holds in real numbers.

Variables (GPUs, or whole nodes with ``whole_nodes``): ``reserved_<gpu>``; per period ``p<k>``:
``replicas_<candidate>_p<k>`` (and ``spot_replicas_..._p<k>`` for a workload with a spot share:
those replicas may run on spot GPUs, the others may not), ``routed_<route>_p<k>``,
``on_demand_<gpu>_p<k>``, ``spot_<gpu>_p<k>``.

Rules, each a named row per period ``k`` (names end in ``_p<k>``):

* ``demand_<w>`` and ``prefill_decode_balance_<route>_prefill`` / ``_decode``: as ``fleet.model``
  (a route group keeps a workload's prefill and decode pools where the KV cache can move);
* ``cover_<gpu>``: GPUs used <= reserved + on demand + spot;
* ``not_on_spot_<gpu>``: GPUs of replicas that may not run on spot <= reserved + on demand (with
  ``cover`` this is exactly when GPUs can be assigned to replicas so that those run off spot);
* ``inventory_<gpu>``: reserved + on demand + spot <= the GPUs available;
* ``spot_available_<gpu>``: spot <= the spot GPUs available that period;
* ``spot_share_<w>_<kind>``: spot replicas' capacity <= ``max_spot_share`` x all of that kind's
  capacity (aggregated, prefill, decode pools each), in thousandths (the share is rounded down);
* ``min_replicas_<w>``: aggregated + decode replicas (those that generate tokens) >= the warm floor;
* ``budget``: that period's spend (its share of the reservations included) <= the budget;
* ``cost_floor_<w>`` (optional): the workload's GPUs, each priced at its type's cheapest source,
  cost at least its least cost alone at those prices (a valid bound: see ``horizon_floors``).

Objective: reserved GPUs x reserved price x the number of periods, plus on-demand and spot GPUs
x their price in each period (x the period's multiplicity after ``merge_periods``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from infecon.formulations.fleet.model import FleetData, FleetRows, IntVar, LinearRow, relative_gap, safe_name

SHARE_SCALE = 1000  # max_spot_share in thousandths
KIND_NAMES = ("aggregated", "prefill", "decode")


@dataclass(frozen=True)
class HorizonData:
    """A fleet over ``K`` periods, all integer.

    ``fleet`` holds workloads, GPU types (``available``: inventory, -1 unlimited; ``node_size``;
    ``whole_nodes``), candidates and route groups; its ``demand``, ``gpu_cost`` and ``budget`` are
    not read. Prices are micro-USD per GPU per period, -1 where the source is not offered.
    """

    fleet: FleetData
    demand: np.ndarray  # (W, K) units
    on_demand_cost: np.ndarray  # (T,)
    reserved_cost: np.ndarray  # (T,)
    spot_cost: np.ndarray  # (T,)
    spot_available: np.ndarray  # (T, K) GPUs
    spot_share: np.ndarray  # (W,) thousandths; SHARE_SCALE: no limit
    min_replicas: np.ndarray  # (W,)
    budget: int | None = None  # micro-USD per period
    weight: np.ndarray | None = None  # (K,) periods each column stands for (merge_periods); None: 1 each

    def __post_init__(self) -> None:
        for name in ("demand", "on_demand_cost", "reserved_cost", "spot_cost", "spot_available", "spot_share",
                     "min_replicas"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.int64))
        weight = np.ones(self.periods, dtype=np.int64) if self.weight is None else self.weight
        object.__setattr__(self, "weight", np.asarray(weight, dtype=np.int64))

    @property
    def periods(self) -> int:
        return int(self.demand.shape[1])

    @property
    def total_periods(self) -> int:
        """Periods of the horizon (the merged columns' multiplicities added up): what a reservation is paid for."""
        return int(self.weight.sum())

    def restricted(self, w: int) -> bool:
        """Whether workload ``w`` has a spot share below 1 (its replicas are split into spot and not)."""
        return int(self.spot_share[w]) < SHARE_SCALE


@dataclass(frozen=True)
class HorizonSolution:
    """A solver's plan: reserved GPUs (or nodes) per type; per period replicas, routing and rented GPUs (or nodes)."""

    status: str  # OPTIMAL | FEASIBLE | INFEASIBLE | UNKNOWN
    reserved: np.ndarray | None = None  # (T,)
    replicas: np.ndarray | None = None  # (C, K) replicas that may not run on spot (all, for an unrestricted workload)
    spot_replicas: np.ndarray | None = None  # (C, K) replicas that may run on spot (restricted workloads)
    routed: np.ndarray | None = None  # (G, K) units
    on_demand: np.ndarray | None = None  # (T, K)
    spot: np.ndarray | None = None  # (T, K)
    objective: int | None = None
    bound: float | None = None
    backend: str = ""
    method: str = ""  # how the plan and its bound were found (``solver.fleet.horizon.solve_horizon``)

    @property
    def gap(self) -> float | None:
        """Relative MIP gap (``model.relative_gap``)."""
        return relative_gap(self.status, self.objective, self.bound)


@dataclass(frozen=True)
class HorizonRows:
    """The horizon model in solver-neutral form (as ``fleet.model.FleetRows``) and where each variable sits."""

    model: FleetRows
    reserved_vars: np.ndarray  # (T,)
    replica_vars: np.ndarray  # (C, K); -1: not in the model
    spot_replica_vars: np.ndarray  # (C, K)
    routed_vars: np.ndarray  # (G, K)
    on_demand_vars: np.ndarray  # (T, K)
    spot_vars: np.ndarray  # (T, K)


def replica_upper_bounds(data: HorizonData) -> np.ndarray:
    """(C, K) replicas of a candidate worth having in a period: enough for the demand alone (or the warm floor, for
    replicas that count towards it), within the inventory. More never helps: every GPU costs something."""
    f = data.fleet
    cap = np.maximum(f.capacity, 1)[:, None]
    need = -(-data.demand[f.workload] // cap)
    floor = np.where(np.isin(f.kind, (0, 2))[:, None], data.min_replicas[f.workload][:, None], 0)
    upper = np.where(f.capacity[:, None] > 0, np.maximum(need, floor), 0)
    limit = f.available[f.pool]
    upper = np.where((limit >= 0)[:, None], np.minimum(upper, (np.maximum(limit, 0) // f.gpus)[:, None]), upper)
    return upper.astype(np.int64)


def cheapest_gpu_cost(data: HorizonData) -> np.ndarray:
    """Per GPU type the least a GPU can cost in one period, over the sources offered (-1: none offered)."""
    prices = np.stack([data.on_demand_cost, data.reserved_cost, data.spot_cost])
    offered = np.where(prices >= 0, prices, np.iinfo(np.int64).max)
    least = offered.min(axis=0)
    return np.where(least == np.iinfo(np.int64).max, -1, least)


def horizon_rows(data: HorizonData, *, dropped: np.ndarray | None = None,
                 floors: np.ndarray | None = None) -> HorizonRows:
    """Variables, named rows and objective of the horizon model (module docstring).

    Args:
        dropped: candidates left out in every period (``fleet.model.dominated_candidates``).
        floors: (W, K) micro-USD; rows ``cost_floor_<w>_p<k>`` where positive.
    """
    f = data.fleet
    T, K, C = len(f.pool_names), data.periods, len(f.gpus)
    size = f.node_size if f.whole_nodes else np.ones(T, dtype=np.int64)
    variables: list[IntVar] = []

    def new(name: str, upper: int) -> int:
        variables.append(IntVar(name, int(upper)))
        return len(variables) - 1

    upper = replica_upper_bounds(data)
    if dropped is not None:
        upper[np.asarray(dropped, dtype=bool)] = 0
    # GPUs of a type a period can use at most: every replica variable at its upper bound (tight bounds keep the LP
    # well scaled); more is never needed since every GPU costs something
    usable = np.zeros((T, K), dtype=np.int64)
    np.add.at(usable, f.pool, upper * f.gpus[:, None])
    most_gpus = np.where(f.available[:, None] >= 0, np.minimum(f.available[:, None], usable), usable)
    most_units = -(-most_gpus // size[:, None])  # per type and period

    reserved_vars = np.full(T, -1, dtype=np.int64)
    for t in range(T):
        if data.reserved_cost[t] >= 0:
            reserved_vars[t] = new(f"reserved_{safe_name(f.pool_names[t])}", most_units[t].max(initial=0))
    replica_vars = np.full((C, K), -1, dtype=np.int64)
    spot_replica_vars = np.full((C, K), -1, dtype=np.int64)
    routed_vars = np.full((len(f.route_names), K), -1, dtype=np.int64)
    on_demand_vars = np.full((T, K), -1, dtype=np.int64)
    spot_vars = np.full((T, K), -1, dtype=np.int64)
    labels = [safe_name(f"{f.workload_names[f.workload[c]]}_{f.pool_names[f.pool[c]]}_{_kind(f.kind[c])}_{c}")
              for c in range(C)]
    restricted = np.array([data.restricted(int(w)) for w in f.workload], dtype=bool)
    rows: list[LinearRow] = []
    objective: list[tuple[int, int]] = []
    for t in range(T):
        if reserved_vars[t] >= 0:
            objective.append((int(reserved_vars[t]), int(size[t] * data.reserved_cost[t] * data.total_periods)))
    cheapest = cheapest_gpu_cost(data)
    # candidate indices per workload and per GPU type, once: the rows below pick from these short lists (masks over
    # every candidate per row cost seconds on large plans)
    by_workload = [np.flatnonzero(f.workload == w) for w in range(len(f.workload_names))]
    by_type = [np.flatnonzero(f.pool == t) for t in range(T)]
    price = np.where(cheapest[f.pool] >= 0, cheapest[f.pool], 0) * f.gpus
    for k in range(K):
        p = f"_p{k}"
        for c in np.flatnonzero(upper[:, k] > 0):
            replica_vars[c, k] = new(f"replicas_{labels[c]}{p}", upper[c, k])
            if restricted[c]:
                spot_replica_vars[c, k] = new(f"spot_replicas_{labels[c]}{p}", upper[c, k])
        for g, name in enumerate(f.route_names):
            w = int(f.route_workload[g])
            if f.routes_disaggregated(w) and data.demand[w, k] > 0:
                routed_vars[g, k] = new(f"routed_{safe_name(name)}{p}", data.demand[w, k])
        for t in range(T):
            if data.on_demand_cost[t] >= 0:
                on_demand_vars[t, k] = new(f"on_demand_{safe_name(f.pool_names[t])}{p}", most_units[t, k])
            if data.spot_cost[t] >= 0 and data.spot_available[t, k] > 0:
                spot_vars[t, k] = new(f"spot_{safe_name(f.pool_names[t])}{p}",
                                      min(int(most_units[t, k]), int(data.spot_available[t, k] // size[t])))

        def of(indices: np.ndarray, coefficient: np.ndarray, *, spot: bool | None = None,
               k: int = k) -> list[tuple[int, int]]:
            """Terms of the period's replica variables of the candidates ``indices`` (spot copies: True only,
            False none, None both)."""
            terms: list[tuple[int, int]] = []
            for variables, wanted in ((replica_vars, spot is not True), (spot_replica_vars, spot is not False)):
                if wanted:
                    chosen = variables[indices, k]
                    present = chosen >= 0
                    terms += zip(chosen[present].tolist(), coefficient[indices[present]].tolist(), strict=True)
            return terms

        for w, name in enumerate(f.workload_names):
            mine = by_workload[w]
            kind_of, group_of = f.kind[mine], f.route_group[mine]
            wname = safe_name(name)
            terms = of(mine[kind_of == 0], f.capacity)
            for g in f.routes_of(w):
                if routed_vars[g, k] < 0:
                    continue
                terms.append((int(routed_vars[g, k]), 1))
                route = safe_name(f.route_names[g])
                for kind, pool in ((1, "prefill"), (2, "decode")):
                    rows.append(LinearRow(f"prefill_decode_balance_{route}_{pool}{p}",
                                          [*of(mine[(kind_of == kind) & (group_of == g)], f.capacity),
                                           (int(routed_vars[g, k]), -1)], lower=0))
            if data.demand[w, k] > 0:
                rows.append(LinearRow(f"demand_{wname}{p}", terms, lower=int(data.demand[w, k])))
            if data.restricted(w):
                q = int(data.spot_share[w])
                common = math.gcd(SHARE_SCALE - q, q)  # 700 and 300 as 7 and 3: smaller coefficients, same row
                on_spot, off_spot = (SHARE_SCALE - q) // common, q // common
                for kind in range(3):
                    group = mine[kind_of == kind]
                    spot_terms = [(i, on_spot * c) for i, c in of(group, f.capacity, spot=True)]
                    if spot_terms:
                        rows.append(LinearRow(f"spot_share_{wname}_{KIND_NAMES[kind]}{p}",
                                              [*spot_terms, *((i, -off_spot * c) for i, c in of(group, f.capacity,
                                                                                               spot=False))],
                                              upper=0))
            if data.min_replicas[w] > 0:
                rows.append(LinearRow(f"min_replicas_{wname}{p}", of(mine[np.isin(kind_of, (0, 2))],
                                                                     np.ones(C, dtype=np.int64)),
                                      lower=int(data.min_replicas[w])))
            if floors is not None and floors[w, k] > 0:
                rows.append(LinearRow(f"cost_floor_{wname}{p}", of(mine, price), lower=int(floors[w, k])))
        spend: list[tuple[int, int]] = []
        for t in range(T):
            gpu = safe_name(f.pool_names[t])
            sources = [(int(v), -int(size[t])) for v in (reserved_vars[t], on_demand_vars[t, k], spot_vars[t, k])
                       if v >= 0]
            used = of(by_type[t], f.gpus)
            if used:
                rows.append(LinearRow(f"cover_{gpu}{p}", [*used, *sources], upper=0))
                off_spot = of(by_type[t][restricted[by_type[t]]], f.gpus, spot=False)  # restricted: never on spot
                if off_spot and spot_vars[t, k] >= 0:
                    rows.append(LinearRow(f"not_on_spot_{gpu}{p}",
                                          [*off_spot, *((i, c) for i, c in sources if i != spot_vars[t, k])],
                                          upper=0))
            if f.available[t] >= 0 and sources:
                rows.append(LinearRow(f"inventory_{gpu}{p}", [(i, -c) for i, c in sources],
                                      upper=int(f.available[t])))
            if spot_vars[t, k] >= 0:
                rows.append(LinearRow(f"spot_available_{gpu}{p}", [(int(spot_vars[t, k]), int(size[t]))],
                                      upper=int(data.spot_available[t, k])))
                objective.append((int(spot_vars[t, k]), int(size[t] * data.spot_cost[t] * data.weight[k])))
                spend.append((int(spot_vars[t, k]), int(size[t] * data.spot_cost[t])))
            if on_demand_vars[t, k] >= 0:
                objective.append((int(on_demand_vars[t, k]),
                                  int(size[t] * data.on_demand_cost[t] * data.weight[k])))
                spend.append((int(on_demand_vars[t, k]), int(size[t] * data.on_demand_cost[t])))
            if reserved_vars[t] >= 0:
                spend.append((int(reserved_vars[t]), int(size[t] * data.reserved_cost[t])))
        if data.budget is not None:
            rows.append(LinearRow(f"budget{p}", spend, upper=int(data.budget)))
    model = FleetRows(variables, rows, objective, np.array([], dtype=np.int64), np.array([], dtype=np.int64),
                      np.array([], dtype=np.int64))
    return HorizonRows(model, reserved_vars, replica_vars, spot_replica_vars, routed_vars, on_demand_vars, spot_vars)


def _kind(kind: int) -> str:
    return KIND_NAMES[int(kind)]


def solution_from_values(data: HorizonData, rows: HorizonRows, values: list[float], status: str,
                         bound: float | None, backend: str) -> HorizonSolution:
    """The plan in ``values`` (integral: checked by the caller) as arrays."""
    def pick(indices: np.ndarray) -> np.ndarray:
        flat = np.array([round(values[i]) if i >= 0 else 0 for i in indices.ravel()], dtype=np.int64)
        return flat.reshape(indices.shape)

    objective = int(sum(c * round(values[i]) for i, c in rows.model.objective))
    return HorizonSolution(status, pick(rows.reserved_vars), pick(rows.replica_vars), pick(rows.spot_replica_vars),
                           pick(rows.routed_vars), pick(rows.on_demand_vars), pick(rows.spot_vars), objective, bound,
                           backend)


def start_values(rows: HorizonRows, start: HorizonSolution) -> list[int]:
    """A plan as a value per model variable, for a solver's first incumbent."""
    values = [0] * len(rows.model.variables)
    pairs = ((rows.reserved_vars, start.reserved), (rows.replica_vars, start.replicas),
             (rows.spot_replica_vars, start.spot_replicas), (rows.routed_vars, start.routed),
             (rows.on_demand_vars, start.on_demand), (rows.spot_vars, start.spot))
    for indices, numbers in pairs:
        if numbers is None:
            continue
        for i, n in zip(indices.ravel(), np.asarray(numbers).ravel(), strict=True):
            if i >= 0:
                values[int(i)] = min(int(n), rows.model.variables[int(i)].upper)
    return values


def horizon_cost(data: HorizonData, solution: HorizonSolution) -> int:
    """Micro-USD over the horizon of a plan's reservations and rentals, from the prices (not the solver's word)."""
    f = data.fleet
    size = f.node_size if f.whole_nodes else np.ones(len(f.pool_names), dtype=np.int64)
    reserved = int((solution.reserved * size * np.maximum(data.reserved_cost, 0)).sum()) * data.total_periods
    rented = (solution.on_demand * (size * np.maximum(data.on_demand_cost, 0))[:, None]
              + solution.spot * (size * np.maximum(data.spot_cost, 0))[:, None]) * data.weight[None, :]
    return reserved + int(rented.sum())


def merge_periods(data: HorizonData) -> tuple[HorizonData, np.ndarray]:
    """Periods alike (same demand of every workload, same spot GPUs of every type) as one column with a weight.

    Why exact: only the reservations tie periods together. For any reservations, each period's
    best plan depends on that period's demand and spot availability alone, so alike periods have
    the same best plans and an optimal plan may use one of them in all; their rentals cost weight x
    one period's. The merged model's optimum is the original's, and ``expand`` maps its plan back.

    Returns:
        The merged data and, per original period, its column in the merged data.
    """
    key = np.vstack([data.demand, data.spot_available]).T
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(first)  # keep the columns in the order of their first period
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    column = rank[inverse]
    weight = np.bincount(column, weights=data.weight, minlength=len(order)).astype(np.int64)
    merged = dataclasses.replace(data, demand=data.demand[:, first[order]],
                                 spot_available=data.spot_available[:, first[order]], weight=weight)
    return merged, column


def expand(solution: HorizonSolution, column: np.ndarray) -> HorizonSolution:
    """A merged model's plan for every original period (``merge_periods``)."""
    if solution.replicas is None:
        return solution
    return dataclasses.replace(solution, replicas=solution.replicas[:, column],
                               spot_replicas=solution.spot_replicas[:, column], routed=solution.routed[:, column],
                               on_demand=solution.on_demand[:, column], spot=solution.spot[:, column])
