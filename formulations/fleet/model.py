"""The fleet problem as integers: what both fleet encodings (MILP and CP-SAT) read.

Why integers: CP-SAT accepts only integer coefficients, and two backends can only be compared
exactly if they solve the same numbers. Scaling happens here, once, and always in the safe
direction: a replica's capacity is rounded *down* and a demand *up* (to millionths of a request
per second), so an integer-feasible fleet is feasible in real numbers too. Prices are
micro-USD per GPU-hour (exact for any price given to the cent), so costs are exact integers and
a cost cap "strictly below" a found cost is that cost minus one.

Rules (each a named row in both encodings):

* ``demand_<w>``: capacity of the aggregated replicas of ``w`` plus the requests routed to its
  disaggregated pools covers its demand;
* ``prefill_decode_balance_<route>_prefill`` / ``_decode``: the disaggregated prefill pool can take
  the routed requests' prompts (capacity x isl >= rate x isl) and the decode pool their outputs
  (capacity x osl >= rate x osl); both in requests/s. One pair per *route group*: the GPU types
  between which a request's KV cache can move from its prefill to its decode replica
  (``kv_transfer``: one group per GPU type by default, per vendor, or one for all), so a workload's
  prefill and decode pools of one route are never on GPUs that cannot hand the cache over;
* ``inventory_<gpu>``: GPUs used (or rented, in whole nodes) at most those available;
* ``whole_nodes_<gpu>``: with whole nodes, GPUs used fit in the nodes rented;
* ``budget``: the fleet's USD/hour at most the budget.
Objective: least USD/hour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CAPACITY_SCALE = 10**6  # capacity units per request/s
MICRO_USD = 10**6  # cost units per USD
KINDS = ("closed_loop", "disaggregated_prefill", "disaggregated_decode")


def capacity_units(requests_per_s: float) -> int:
    """A replica's capacity in integer units, rounded down (never promises more than the model gives)."""
    return math.floor(requests_per_s * CAPACITY_SCALE)


def demand_units(requests_per_s: float) -> int:
    """A demand in integer units, rounded up."""
    return math.ceil(requests_per_s * CAPACITY_SCALE)


def cost_units(usd_per_hour: float) -> int:
    """Micro-USD per hour, to the nearest unit (prices are given to the cent or so: exact)."""
    return round(usd_per_hour * MICRO_USD)


def safe_name(text: str) -> str:
    """A constraint-name fragment both PuLP's LP export and CP-SAT accept unchanged."""
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in text)


@dataclass(frozen=True)
class FleetData:
    """Workloads, GPU pools and candidate replicas, all integer.

    Candidate arrays are aligned (one entry per candidate). ``kind`` indexes ``KINDS``.
    ``scale_rank`` orders candidates by the TPOT scale they need (0 for prefill replicas);
    a solve may allow only candidates up to a rank (the TPOT-scale frontier).
    """

    workload_names: tuple[str, ...]
    demand: np.ndarray  # units, per workload
    disaggregated: tuple[str, ...]  # "allow" | "never" | "only", per workload
    pool_names: tuple[str, ...]
    available: np.ndarray  # GPUs per pool; -1: unlimited
    node_size: np.ndarray  # GPUs per node, per pool
    gpu_cost: np.ndarray  # micro-USD per GPU-hour, per pool
    workload: np.ndarray  # per candidate
    pool: np.ndarray
    kind: np.ndarray
    gpus: np.ndarray
    capacity: np.ndarray  # units per replica
    scale_rank: np.ndarray
    budget: int | None = None  # micro-USD per hour
    whole_nodes: bool = False
    # Route groups (see the module docstring): per candidate its group (-1 for aggregated replicas), per group its
    # workload and name. None: one group per workload (any prefill pool may hand over to any decode pool).
    route_group: np.ndarray | None = None
    route_workload: np.ndarray | None = None
    route_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("demand", "available", "node_size", "gpu_cost", "workload", "pool", "kind", "gpus", "capacity",
                     "scale_rank"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.int64))
        if self.route_group is None:
            object.__setattr__(self, "route_group", np.where(self.kind == 0, -1, self.workload))
            object.__setattr__(self, "route_workload", np.arange(len(self.workload_names)))
            object.__setattr__(self, "route_names", tuple(self.workload_names))
        object.__setattr__(self, "route_group", np.asarray(self.route_group, dtype=np.int64))
        object.__setattr__(self, "route_workload", np.asarray(self.route_workload, dtype=np.int64))

    @property
    def cost(self) -> np.ndarray:
        """Micro-USD per hour of one replica of each candidate."""
        return self.gpus * self.gpu_cost[self.pool]

    def replica_upper_bounds(self, max_scale_rank: int | None = None) -> np.ndarray:
        """Replicas of a candidate an optimal fleet can use: enough to cover its workload alone, within inventory.

        0 for a candidate with no capacity or above ``max_scale_rank``. More replicas than
        ceil(demand / capacity) are never needed since every cost is positive.
        """
        cap = np.maximum(self.capacity, 1)
        upper = -(-self.demand[self.workload] // cap)
        upper = np.where(self.capacity > 0, upper, 0)
        limit = self.available[self.pool]
        upper = np.where(limit >= 0, np.minimum(upper, limit // self.gpus), upper)
        if max_scale_rank is not None:
            upper = np.where(self.scale_rank <= max_scale_rank, upper, 0)
        return upper.astype(np.int64)

    def routes_disaggregated(self, w: int) -> bool:
        return self.disaggregated[w] != "never"

    def routes_of(self, w: int) -> np.ndarray:
        """The route groups of workload ``w`` (indices into ``route_names``), in order."""
        return np.flatnonzero(self.route_workload == w)


@dataclass(frozen=True)
class FleetSolution:
    """A solver's answer: replicas per candidate and nodes per pool, its cost and how sure it is.

    ``status`` is ``OPTIMAL`` (proven), ``FEASIBLE`` (a plan, not proven optimal: see ``gap``),
    ``INFEASIBLE`` or ``UNKNOWN`` (stopped with no plan).
    """

    status: str
    replicas: np.ndarray | None = None
    routed: np.ndarray | None = None  # units per route group sent to its disaggregated pools
    nodes: np.ndarray | None = None  # whole nodes per pool (whole_nodes only)
    objective: int | None = None  # micro-USD per hour
    bound: float | None = None
    backend: str = ""

    @property
    def gap(self) -> float | None:
        """Relative MIP gap (objective - bound) / objective; 0 for a proven optimum."""
        return relative_gap(self.status, self.objective, self.bound)


def relative_gap(status: str, objective: int | None, bound: float | None) -> float | None:
    """(objective - bound) / objective of a solve: 0 when proven optimal, None without a plan or a bound.

    Shared by one-hour fleets and plans over periods, so both report a gap the same way.
    """
    if objective is None:
        return None
    if status == "OPTIMAL":
        return 0.0
    if bound is None or objective == 0:
        return None
    return max(0.0, (objective - bound) / objective)


def gpus_used(data: FleetData, replicas: np.ndarray) -> np.ndarray:
    """GPUs per pool that ``replicas`` (one count per candidate) occupy."""
    return np.bincount(data.pool, weights=data.gpus * np.asarray(replicas), minlength=len(data.pool_names)).astype(
        np.int64)


def nodes_needed(data: FleetData, replicas: np.ndarray) -> np.ndarray:
    """Whole nodes per pool that hold ``gpus_used`` (what a ``whole_nodes`` fleet rents)."""
    return -(-gpus_used(data, replicas) // data.node_size)


def fleet_cost(data: FleetData, replicas: np.ndarray) -> int:
    """Micro-USD per hour of a fleet: replica prices, or whole nodes per pool with ``whole_nodes``."""
    replicas = np.asarray(replicas, dtype=np.int64)
    if not data.whole_nodes:
        return int((data.cost * replicas).sum())
    return int((nodes_needed(data, replicas) * data.node_size * data.gpu_cost).sum())


@dataclass(frozen=True)
class IntVar:
    name: str
    upper: int  # lower bound is 0


@dataclass(frozen=True)
class LinearRow:
    """``lower <= sum(coef * var) <= upper`` over integer variables, named after its rule (None: open side)."""

    name: str
    terms: list[tuple[int, int]]
    lower: int | None = None
    upper: int | None = None


@dataclass(frozen=True)
class FleetRows:
    """The whole fleet model in solver-neutral form: both encodings translate exactly this."""

    variables: list[IntVar]
    rows: list[LinearRow]
    objective: list[tuple[int, int]]
    replica_vars: np.ndarray  # variable index per candidate (-1: not in the model)
    routed_vars: np.ndarray  # variable index per route group (-1: none)
    node_vars: np.ndarray  # variable index per pool (-1: none)


def fleet_rows(data: FleetData, *, max_scale_rank: int | None = None, cost_cap: int | None = None,
               dropped: np.ndarray | None = None, floors: np.ndarray | None = None) -> FleetRows:
    """Variables, named rows and objective of the fleet model (module docstring).

    Args:
        max_scale_rank: allow only candidates with ``scale_rank`` up to this (the TPOT-scale frontier).
        cost_cap: micro-USD per hour the fleet may cost at most (the epsilon loop's cap); None: open.
        dropped: candidates left out (``dominated_candidates``: the optimum does not change).
        floors: micro-USD per hour each workload's own replicas cost at least (its least cost when
            served alone, a valid bound); rows ``cost_floor_<w>`` that let the LP bound see it.
    """
    variables: list[IntVar] = []

    def new(name: str, upper: int) -> int:
        variables.append(IntVar(name, int(upper)))
        return len(variables) - 1

    upper = data.replica_upper_bounds(max_scale_rank)
    if dropped is not None:
        upper = np.where(dropped, 0, upper)
    replica_vars = np.full(len(data.gpus), -1, dtype=np.int64)
    for c in np.flatnonzero(upper > 0):
        label = f"{data.workload_names[data.workload[c]]}_{data.pool_names[data.pool[c]]}_{KINDS[data.kind[c]]}_{c}"
        replica_vars[c] = new(f"replicas_{safe_name(label)}", upper[c])
    routed_vars = np.full(len(data.route_names), -1, dtype=np.int64)
    for g, name in enumerate(data.route_names):
        w = int(data.route_workload[g])
        if data.routes_disaggregated(w):
            routed_vars[g] = new(f"routed_{safe_name(name)}", data.demand[w])
    node_vars = np.full(len(data.pool_names), -1, dtype=np.int64)
    if data.whole_nodes:
        for p, name in enumerate(data.pool_names):
            used = upper[data.pool == p] * data.gpus[data.pool == p]
            most = -(-int(used.sum()) // int(data.node_size[p]))
            if data.available[p] >= 0:
                most = min(most, int(data.available[p]) // int(data.node_size[p]))
            node_vars[p] = new(f"nodes_{safe_name(name)}", most)

    def of(mask: np.ndarray, coefficient: np.ndarray) -> list[tuple[int, int]]:
        return [(int(replica_vars[c]), int(coefficient[c])) for c in np.flatnonzero(mask & (replica_vars >= 0))]

    rows: list[LinearRow] = []
    for w, name in enumerate(data.workload_names):
        mine = data.workload == w
        terms = of(mine & (data.kind == 0), data.capacity)
        for g in data.routes_of(w):
            if routed_vars[g] < 0:
                continue
            terms.append((int(routed_vars[g]), 1))
            route = safe_name(data.route_names[g])
            for kind, pool in ((1, "prefill"), (2, "decode")):
                rows.append(LinearRow(f"prefill_decode_balance_{route}_{pool}",
                                      [*of(mine & (data.kind == kind) & (data.route_group == g), data.capacity),
                                       (int(routed_vars[g]), -1)], lower=0))
        rows.append(LinearRow(f"demand_{safe_name(name)}", terms, lower=int(data.demand[w])))
    cost_terms: list[tuple[int, int]]
    if data.whole_nodes:
        cost_terms = []
        for p, name in enumerate(data.pool_names):
            size = int(data.node_size[p])
            rows.append(LinearRow(f"whole_nodes_{safe_name(name)}",
                                  [*of(data.pool == p, data.gpus), (int(node_vars[p]), -size)], upper=0))
            if data.available[p] >= 0:
                rows.append(LinearRow(f"inventory_{safe_name(name)}", [(int(node_vars[p]), size)],
                                      upper=int(data.available[p])))
            cost_terms.append((int(node_vars[p]), size * int(data.gpu_cost[p])))
    else:
        for p, name in enumerate(data.pool_names):
            if data.available[p] >= 0:
                rows.append(LinearRow(f"inventory_{safe_name(name)}", of(data.pool == p, data.gpus),
                                      upper=int(data.available[p])))
        cost_terms = of(np.ones(len(data.gpus), dtype=bool), data.cost)
    if floors is not None:
        for w, name in enumerate(data.workload_names):
            if floors[w] > 0:
                rows.append(LinearRow(f"cost_floor_{safe_name(name)}", of(data.workload == w, data.cost),
                                      lower=int(floors[w])))
    if data.budget is not None:
        rows.append(LinearRow("budget", cost_terms, upper=int(data.budget)))
    if cost_cap is not None:
        rows.append(LinearRow("cost_cap", cost_terms, upper=int(cost_cap)))
    return FleetRows(variables, rows, cost_terms, replica_vars, routed_vars, node_vars)


def violated_rows(model: FleetRows, values: list[float] | None, tolerance: float = 1e-6) -> list[str]:
    """Names of the rules ``values`` break (a value off its integer or its bounds is named after its variable).

    Why: a backend's answer is handed on as a plan only if it is one. A solver stopped early can
    return a fractional point (PuLP's CBC on a time limit says "Not Solved" and still fills the
    variables); checking every row and every integrality here, in integers, is what makes "a plan"
    mean a plan, whatever the backend said.
    """
    if values is None or len(values) != len(model.variables):
        return ["no values"]
    broken = [v.name for v, x in zip(model.variables, values, strict=True)
              if x is None or abs(x - round(x)) > tolerance or round(x) < 0 or round(x) > v.upper]
    if broken:
        return broken
    ints = [round(x) for x in values]
    for row in model.rows:
        total = sum(c * ints[i] for i, c in row.terms)
        if (row.lower is not None and total < row.lower) or (row.upper is not None and total > row.upper):
            broken.append(row.name)
    return broken


def start_values(model: FleetRows, start: FleetSolution) -> list[int]:
    """A plan as a value per model variable (replicas, routed requests, nodes), for a solver's starting point."""
    values = [0] * len(model.variables)
    for indices, numbers in ((model.replica_vars, start.replicas), (model.routed_vars, start.routed),
                             (model.node_vars, start.nodes)):
        for i, n in zip(indices, numbers if numbers is not None else np.zeros(len(indices)), strict=True):
            if i >= 0:
                values[int(i)] = min(int(n), model.variables[int(i)].upper)
    return values


def solution_from_values(data: FleetData, model: FleetRows, values: list[int], status: str, bound: float | None,
                         backend: str) -> FleetSolution:
    """Replicas, routing and nodes from the solver's variable values (rounded: they are integral)."""
    def pick(indices: np.ndarray) -> np.ndarray:
        return np.array([round(values[i]) if i >= 0 else 0 for i in indices], dtype=np.int64)

    replicas = pick(model.replica_vars)
    return FleetSolution(status, replicas, pick(model.routed_vars), pick(model.node_vars),
                         int(sum(coef * round(values[i]) for i, coef in model.objective)), bound, backend)


def _add_unbounded(best: np.ndarray, weight: int, value: int) -> None:
    """Add an item to an unbounded knapsack table in place: ``best[g]`` = most value within weight ``g``.

    Any number of copies: for ``g = q * weight + r``, ``best[g] = max_k old[g - k weight] + k value``,
    a running maximum of ``old - q value`` along each residue class ``r``, plus ``q value``.
    """
    size = len(best)
    rows = -(-size // weight)
    padded = np.full(rows * weight, np.iinfo(np.int64).min // 4, dtype=np.int64)
    padded[:size] = best
    grid = padded.reshape(rows, weight)
    shift = (np.arange(rows, dtype=np.int64) * value)[:, None]
    grid = np.maximum.accumulate(grid - shift, axis=0) + shift
    best[:] = grid.reshape(-1)[:size]


def dominated_candidates(data: FleetData, *, respect_scale: bool = False, other_types: bool = True) -> np.ndarray:
    """Candidates some optimal fleet never needs: copies of other kept candidates do the same job for no more.

    Why dropping them keeps the optimum: take candidates of one workload, kind and route group
    (they enter the same demand or balance row and no other row of that workload) in a strict order by
    (TPOT scale rank if ``respect_scale``, cost, larger capacity, pool, index), and drop
    candidate ``i`` when some multiset of *kept* candidates before it has at least its capacity
    and either

    * sits on ``i``'s own GPU type with at most ``i``'s GPUs in total: swapping one replica of
      ``i`` for it uses no more GPUs of that type (so no more whole nodes either) and, as the
      price per GPU is one number per type, costs no more; or
    * sits on one other GPU type with no inventory limit and costs no more in total (not with
      ``whole_nodes``, where the bill is by node): the swap frees GPUs of ``i``'s type, needs
      none that are limited, and costs no more.

    Either swap keeps every demand and balance row satisfied (capacity is at least as large in
    the same row), every inventory, the budget and any cost cap, and does not raise the cost;
    the multiset's members precede ``i`` in the order, so their TPOT scale is no larger and a
    scale cap that admits ``i`` admits them (``respect_scale``; needless when no cap is set).
    Members are kept candidates and stay kept, so repeating the swap ends in a fleet of kept
    candidates only, as cheap as the one we started from; trimming surplus replicas then brings
    it within ``replica_upper_bounds``. Hence the least cost over kept candidates equals the least
    cost over all. A candidate's capacity is summed in the model's integer units, so the
    argument holds for the integer model exactly, not only up to rounding. This generalises plain
    dominance (one member) and the whole-multiple rule of ``fleet.candidates`` (copies of one).

    ``other_types=False`` keeps to the first swap (on the candidate's own type), which needs no
    price per replica: the planner over periods (``fleet.horizon``) pays GPUs by source, not replicas.

    Returns:
        A boolean mask over candidates, True where the candidate can be dropped.
    """
    dropped = np.zeros(len(data.gpus), dtype=bool)
    cost = data.cost
    unlimited = np.flatnonzero(data.available < 0) if not data.whole_nodes and other_types else \
        np.array([], dtype=np.int64)
    for w in range(len(data.workload_names)):
        mine = data.workload == w
        for kind, route in sorted({(int(k), int(r)) for k, r in zip(data.kind[mine], data.route_group[mine],
                                                                    strict=True)}):
            group = np.flatnonzero((data.workload == w) & (data.kind == kind) & (data.route_group == route)
                                   & (data.capacity > 0))
            if len(group) < 2:
                continue
            scale = data.scale_rank[group] if respect_scale else np.zeros(len(group), dtype=np.int64)
            order = group[np.lexsort((group, data.pool[group], -data.capacity[group], cost[group], scale))]
            # knapsack tables per GPU type: most capacity of kept candidates within g GPUs of that type
            most_gpus = {int(p): int(data.gpus[group][data.pool[group] == p].max(initial=0)) for p in data.pool[group]}
            for p in unlimited:
                most_gpus[int(p)] = max(most_gpus.get(int(p), 0), int(cost[group].max() // data.gpu_cost[p]))
            tables = {p: np.zeros(g + 1, dtype=np.int64) for p, g in most_gpus.items()}
            for i in order:
                pool = int(data.pool[i])
                beaten = tables[pool][data.gpus[i]] >= data.capacity[i]
                for p in unlimited:
                    if not beaten and p != pool:
                        beaten = tables[int(p)][int(cost[i] // data.gpu_cost[p])] >= data.capacity[i]
                if beaten:
                    dropped[i] = True
                else:
                    _add_unbounded(tables[pool], int(data.gpus[i]), int(data.capacity[i]))
    return dropped
