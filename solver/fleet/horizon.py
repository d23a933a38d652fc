"""Capacity planning over time: what to reserve for the whole horizon, what to rent on demand or on spot each period.

The loop: candidates once per workload shape and GPU type (``plan.generate_candidates``, as one
fleet: they do not depend on demand), the integer model of ``formulations.fleet.horizon`` over all
periods, solved exactly by HiGHS (or CP-SAT), then the reservations and the schedule as tables.

Exact reductions, each argued where it is made, none changing the optimum:

* periods alike (demand and spot availability) are one column with a multiplicity (``merge_periods``);
* candidates that copies of others on their own GPU type replace with no more GPUs are left out
  (``dominated_candidates(other_types=False)``), except for workloads with a spot share, whose
  rows count capacity on spot;
* rows ``cost_floor_<w>_p<k>`` give the LP bound each workload's integer least cost per period at
  its types' cheapest GPU prices (``horizon_bounds.horizon_floors``), without cutting off any plan.

Exact, or a proven gap: the answer is ``optimal`` only when HiGHS proves it; otherwise ``feasible``
with a gap against a valid lower bound, the larger of HiGHS's dual bound and a bound needing no
solve (``horizon_bounds``: the floors' sum, or for large plans their LP relaxation, the
``ratio_bound``; why each is valid is argued there). A gap target (``rel_gap``) stops the search
once the plan is proven within it, or skips the MILP when the start already is. Large plans
(workloads x distinct periods above ``EXACT_WORK``) skip the exact per-period work that would cost
minutes: no floor rows (ratio bound instead) and the naive on-demand baseline. Neither changes
which plans are feasible or what is proven, only how tight the stated bound is.

Two baselines: everything on demand at each period's need (each period's least-cost one-hour fleet
on on-demand GPUs, ``solve_fleet``, exact; for large plans each workload on its own cheapest
deployment, ``naive_on_demand_plan``; also the main solve's first incumbent, re-sourced by
``reserve_and_rent``), and everything reserved at that plan's peak per type.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from infecon.formulations.errors import InfeconError, NoFeasibleLayoutError, SolverLimitError
from infecon.formulations.fleet.horizon import (
    SHARE_SCALE,
    HorizonData,
    HorizonSolution,
    cheapest_gpu_cost,
    expand,
    horizon_cost,
    horizon_rows,
    merge_periods,
    solution_from_values,
    start_values,
)
from infecon.formulations.fleet.model import (
    MICRO_USD,
    FleetData,
    FleetSolution,
    cost_units,
    demand_units,
    dominated_candidates,
    gpus_used,
    violated_rows,
)
from infecon.instances.fleet_horizon import HorizonScenario
from infecon.solver.fleet.candidates import CANDIDATE_COLUMNS
from infecon.solver.fleet.horizon_bounds import floor_bound, horizon_floors, lagrangian_bound, ratio_bound
from infecon.solver.fleet.plan import _require_servable, fleet_data, generate_candidates, naive_solution
from infecon.solver.fleet.solve import solve_fleet

SOURCES = ("reserved", "on_demand", "spot")
SCHEDULE_COLUMNS = ["period", "workload", "hardware", "mode", "layout", "tp", "pp", "ep", "batch", "replicas",
                    "gpus", "source", "usd"]
RESERVATION_COLUMNS = ["hardware", "reserved_gpus", "usd_per_hour", "usd", "peak_gpus_in_use"]


@dataclass(frozen=True)
class HorizonPlan:
    """A solved plan over periods: ``reservations`` and ``schedule`` (DataFrames), ``summary`` (summary.json)."""

    status: str  # optimal | feasible
    reservations: pd.DataFrame
    schedule: pd.DataFrame
    summary: dict
    candidates: pd.DataFrame
    solution: HorizonSolution
    data: HorizonData
    scenario: HorizonScenario = field(repr=False, default=None)


def horizon_data(scenario: HorizonScenario, candidates: pd.DataFrame) -> HorizonData:
    """The integer model's data: the fleet of the candidates, demand per workload and period, prices per period."""
    hours = scenario.period_hours

    def per_period(price: float | None) -> int:
        return -1 if price is None else cost_units(price * hours)

    fleet = fleet_data(scenario.fleet, candidates)
    data = HorizonData(
        fleet=fleet,
        demand=np.vectorize(demand_units, otypes=[np.int64])(scenario.demand_requests_per_s),
        on_demand_cost=[per_period(o.on_demand_usd_per_hour) for o in scenario.offers],
        reserved_cost=[per_period(o.reserved_usd_per_hour) for o in scenario.offers],
        spot_cost=[per_period(o.spot_usd_per_hour) for o in scenario.offers],
        spot_available=np.array([o.spot_available for o in scenario.offers], dtype=np.int64).reshape(
            len(scenario.offers), scenario.periods),
        spot_share=[int(np.floor(s * SHARE_SCALE + 1e-9)) for s in scenario.max_spot_share],
        min_replicas=list(scenario.min_replicas),
        budget=None if scenario.fleet.settings.budget_usd_per_hour is None else
        cost_units(scenario.fleet.settings.budget_usd_per_hour * hours))
    # dominance orders candidates by a price per GPU type; any positive one per type will do (see fleet.model)
    least = cheapest_gpu_cost(data)
    return dataclasses.replace(data, fleet=dataclasses.replace(fleet, gpu_cost=np.where(least > 0, least, 1)))


def period_fleet(data: HorizonData, k: int, *, prices: np.ndarray, available: np.ndarray) -> FleetData:
    """Period ``k`` as a one-hour fleet (``fleet.model``) with the given price per GPU and inventory per type."""
    return dataclasses.replace(data.fleet, demand=data.demand[:, k], gpu_cost=prices, available=available,
                               budget=None)


def on_demand_plan(data: HorizonData, backend: str, time_limit_s: float | None,
                   jobs: int | None = 1) -> HorizonSolution | None:
    """Everything on demand at each period's need: per period the least-cost one-hour fleet on on-demand GPUs
    (``solve_fleet``, exact; a type without on demand is not used), periods of equal demand solved once and a
    workload's own optimum and Pareto patterns solved once per distinct demand of that workload (``memo``).

    None if some period cannot be served that way, or a plan breaks a rule the one-hour fleet does not
    know (a warm floor, the budget). Also the main solve's first incumbent.
    """
    memo: dict = {}  # the periods differ only in demand: each workload's own solves are shared (solve_fleet)

    def least_cost(period: FleetData) -> FleetSolution:
        return solve_fleet(period, backend, time_limit_s=time_limit_s, jobs=jobs, memo=memo)

    return _each_period_on_demand(data, least_cost, exact=True,
                                  backend="on-demand baseline (least-cost one-hour fleets)")


def naive_on_demand_plan(data: HorizonData) -> HorizonSolution | None:
    """Everything on demand, cheaply: per distinct period each workload on its own cheapest single deployment at
    on-demand prices (``plan.naive_solution``, milliseconds), topped up to its warm floor. A plan of the model
    (checked by the caller), not the least-cost one: the baseline of large plans, where ``on_demand_plan``'s
    exact one-hour fleets would cost minutes each. None where some period finds nothing that fits."""
    return _each_period_on_demand(data, naive_solution, exact=False, backend="naive on-demand baseline")


def _each_period_on_demand(data: HorizonData, solve: Callable[[FleetData], FleetSolution | None], *, exact: bool,
                           backend: str) -> HorizonSolution | None:
    """The two on-demand baselines' common frame: each distinct period's one-hour fleet at on-demand prices
    (``solve``; a type without on demand is not used), then every workload topped up to its warm floor with its
    cheapest replicas that generate tokens (the one-hour fleet knows no warm floor). ``OPTIMAL`` only where
    ``exact`` and every period's solve proved its optimum and no top-up was needed."""
    f = data.fleet
    T, K = len(f.pool_names), data.periods
    prices = np.where(data.on_demand_cost >= 0, data.on_demand_cost, 1)
    available = np.where(data.on_demand_cost >= 0, f.available, 0)
    solved: dict[bytes, FleetSolution | None] = {}
    for k in range(K):
        key = data.demand[:, k].tobytes()
        if key not in solved:
            solved[key] = solve(period_fleet(data, k, prices=prices, available=available))
    plans = [solved[data.demand[:, k].tobytes()] for k in range(K)]
    if any(plan is None or plan.replicas is None for plan in plans):
        return None
    replicas = np.stack([p.replicas for p in plans], axis=1)
    proven = exact and all(p.status == "OPTIMAL" for p in plans)
    for w in np.flatnonzero(data.min_replicas > 0):
        counts = np.isin(f.kind, (0, 2)) & (f.workload == w) & (f.capacity > 0) & (available[f.pool] != 0)
        if not counts.any():
            return None
        cheapest = np.flatnonzero(counts)[np.argmin((f.gpus * prices[f.pool])[counts])]
        short = np.maximum(data.min_replicas[w] - replicas[counts].sum(axis=0), 0)
        if short.any():
            replicas[cheapest] += short
            proven = False
    solution = HorizonSolution("OPTIMAL" if proven else "FEASIBLE", np.zeros(T, dtype=np.int64), replicas,
                               np.zeros_like(replicas), np.stack([p.routed for p in plans], axis=1),
                               np.stack([_units(data, gpus_used(f, replicas[:, k])) for k in range(K)], axis=1),
                               np.zeros((T, K), dtype=np.int64), backend=backend)
    return dataclasses.replace(solution, objective=horizon_cost(data, solution))


def _units(data: HorizonData, gpus: np.ndarray) -> np.ndarray:
    """GPUs per type as the units the sources are counted in (whole nodes if asked)."""
    f = data.fleet
    return -(-gpus // f.node_size) if f.whole_nodes else gpus


def reserve_and_rent(data: HorizonData, plan: HorizonSolution) -> HorizonSolution:
    """The on-demand plan's replicas with its GPUs re-sourced: per type the reservation that is cheapest for its
    usage over the periods (the newsvendor level: one more reserved unit pays when at least reserved/on-demand
    price of the periods use it), the rest on spot where there is some (replicas of workloads free to use spot
    only), then on demand. A plan of the model (checked by the caller), a much better first incumbent."""
    f = data.fleet
    T, K = len(f.pool_names), data.periods
    size = f.node_size if f.whole_nodes else np.ones(T, dtype=np.int64)
    restricted = np.array([data.restricted(int(w)) for w in f.workload], dtype=bool)
    used = np.stack([gpus_used(f, plan.replicas[:, k]) for k in range(K)], axis=1)  # (T, K) GPUs
    free_to_spot = np.stack([gpus_used(f, np.where(restricted, 0, plan.replicas[:, k])) for k in range(K)], axis=1)
    units = -(-used // size[:, None])
    reserved = np.zeros(T, dtype=np.int64)
    for t in range(T):
        if data.reserved_cost[t] < 0 or data.on_demand_cost[t] < 0:
            continue
        # unit u is in use in the periods whose use is at least u; it pays to reserve it when those periods'
        # on-demand price covers the reservation over the whole horizon (fewer periods for higher u)
        horizon = data.reserved_cost[t] * data.total_periods
        paying = [int(level) for level in np.unique(units[t])
                  if level > 0 and horizon <= data.on_demand_cost[t] * data.weight[units[t] >= level].sum()]
        reserved[t] = max(paying, default=0)
    excess = np.maximum(units - reserved[:, None], 0)
    spot_room = np.where(data.spot_cost[:, None] >= 0, data.spot_available // size[:, None], 0)
    cheaper = (data.spot_cost >= 0) & ((data.on_demand_cost < 0) | (data.spot_cost < data.on_demand_cost))
    spot = np.where(cheaper[:, None], np.minimum(np.minimum(excess, spot_room), free_to_spot // size[:, None]), 0)
    solution = dataclasses.replace(plan, reserved=reserved, on_demand=excess - spot, spot=spot,
                                   backend="reserve-and-rent")
    return dataclasses.replace(solution, objective=horizon_cost(data, solution))


def reserved_at_peak_usd(data: HorizonData, start: HorizonSolution) -> float:
    """Everything reserved at the on-demand plan's peak per type (a type without a reserved offer: on demand at
    its peak in every period), in USD over the horizon."""
    f = data.fleet
    size = f.node_size if f.whole_nodes else np.ones(len(f.pool_names), dtype=np.int64)
    peak = start.on_demand.max(axis=1) * size
    price = np.where(data.reserved_cost >= 0, data.reserved_cost, data.on_demand_cost)
    return float((peak * price).sum() * data.total_periods) / MICRO_USD


# workloads x distinct periods beyond which exact per-period work (the floors' searches, the on-demand baseline's
# one-hour fleets) costs minutes: then the ratio bound and the naive on-demand baseline instead
EXACT_WORK = 600  # 5 x 24: exact; 50 x 24 would spend ~1 min on floors and ~5 min on the baseline's fleets


def solve_horizon(data: HorizonData, backend: str = "milp", *, time_limit_s: float | None = None,
                  start: HorizonSolution | None = None, reduce: bool = True,
                  rel_gap: float = 0.0) -> HorizonSolution:
    """Least-cost plan of the horizon model, exactly (``reduce``: the module docstring's reductions).

    Args:
        rel_gap: stop once the plan is proven within this relative gap of the optimum (0: exact).
            The gap is measured against the larger of the MILP's dual bound and the bounds of
            ``horizon_bounds`` (valid without any solve); if the start is already within it (or
            meets the bound: then proven optimal), no MILP is run. HiGHS stops at the target;
            CP-SAT ignores it (searches to the optimum or the time limit).

    Returns:
        ``OPTIMAL`` only when proven, ``FEASIBLE`` with its bound (``gap``), ``INFEASIBLE`` or
        ``UNKNOWN``; the plan is given for every original period; ``method`` says how it was found.
    """
    column = np.arange(data.periods)
    solved = data
    if reduce:
        solved, column = merge_periods(data)
    f = solved.fleet
    dropped = np.zeros(len(f.gpus), dtype=bool)
    floors = None
    steps = [f"{solved.periods} distinct periods of {data.periods}"]
    cheap_bound = 0.0
    if reduce:
        dropped = dominated_candidates(f, other_types=False)
        dropped &= ~np.array([solved.restricted(int(w)) for w in f.workload], dtype=bool)
        if start is not None and start.replicas is not None:  # keeping more candidates is exact too: the start's stay
            dropped &= ~np.any((start.replicas > 0) | (start.spot_replicas > 0), axis=1)
        steps.append(f"{int((~dropped).sum())} of {len(dropped)} candidates kept by dominance")
        if len(f.workload_names) * solved.periods <= EXACT_WORK:
            floors = horizon_floors(solved, dropped)
            cheap_bound = float(floor_bound(solved, floors))
            steps.append(f"cost floors per workload and period (rows; their sum ${cheap_bound / MICRO_USD:,.2f} "
                         "a bound)")
    rows = horizon_rows(solved, dropped=dropped, floors=floors)
    first, first_cost = None, None
    if start is not None and start.replicas is not None:
        merged_start = dataclasses.replace(
            start, replicas=_first_of(start.replicas, column), spot_replicas=_first_of(start.spot_replicas, column),
            routed=_first_of(start.routed, column), on_demand=_first_of(start.on_demand, column),
            spot=_first_of(start.spot, column))
        values = start_values(rows, merged_start)
        if not violated_rows(rows.model, values):
            first = values
            first_cost = sum(c * values[i] for i, c in rows.model.objective)
    if reduce and floors is None:
        relaxed = max(ratio_bound(solved), lagrangian_bound(solved, target=first_cost))
        cheap_bound = relaxed * (1 - 1e-9)  # float sums: a hair below, never above
        steps.append(f"Lagrangian bound ${cheap_bound / MICRO_USD:,.2f} (prices per GPU type and period, LP per "
                     "workload and period)")
    proven = first is not None and first_cost - cheap_bound < 1  # integer costs: the optimum is the start's
    if proven or (first is not None and rel_gap > 0 and first_cost > 0 and
                  (first_cost - cheap_bound) / first_cost <= rel_gap):
        steps.append("the start meets the bound: proven optimal, no MILP run" if proven else
                     f"the start is within the gap target {100 * rel_gap:g} % of the bound: no MILP run")
        solution = solution_from_values(solved, rows, first, "OPTIMAL" if proven else "FEASIBLE", cheap_bound,
                                        "bound check")
        return expand(dataclasses.replace(solution, method="; ".join(steps)), column)
    if backend == "cpsat":
        from infecon.formulations.fleet.cpsat import solve_rows_cpsat

        status, values, bound = solve_rows_cpsat(rows.model, time_limit_s, start=first)
        name = "cpsat"
    elif backend == "milp":
        from infecon.formulations.fleet.milp import CBC_BACKEND, highs_available, solve_rows_milp

        status, values, bound = solve_rows_milp(rows.model, time_limit_s, first, rel_gap=rel_gap)
        name = "milp-highs" if highs_available() else CBC_BACKEND
    else:
        raise InfeconError(f"unknown backend '{backend}' for a plan over periods (choose from: milp, cpsat)")
    steps.insert(0, f"{name} on the whole model" + (f" (gap target {100 * rel_gap:g} %)" if rel_gap > 0 else ""))
    if status != "OPTIMAL" and cheap_bound > 0 and (bound is None or not np.isfinite(bound) or bound < cheap_bound):
        bound = cheap_bound  # both are valid: report the larger
        steps.append("bound: the no-solve bound (the solver's was lower or none)")
    if first is not None and status in ("FEASIBLE", "UNKNOWN") and \
            (values is None or sum(c * round(values[i]) for i, c in rows.model.objective) > first_cost):
        # stopped by the time limit with nothing better than the start: keep the start (never above the baseline),
        # the solver's bound still saying how far from proven it may be
        values, status, name = first, "FEASIBLE", f"{name} (its plan was costlier: the reserve-and-rent start kept)"
    if values is None:
        return HorizonSolution(status, bound=bound, backend=name, method="; ".join(steps))
    solution = solution_from_values(solved, rows, values, status, bound, name)
    return expand(dataclasses.replace(solution, method="; ".join(steps)), column)


def _first_of(array: np.ndarray, column: np.ndarray) -> np.ndarray:
    """An original-period array as merged columns: the first period of each column (alike periods share plans)."""
    first = np.zeros(column.max() + 1, dtype=np.int64)
    first[column[::-1]] = np.arange(len(column))[::-1]
    return array[:, first]


def diagnose(data: HorizonData, backend: str, time_limit_s: float | None) -> str:
    """The first period and workload no plan can serve, or the rule that binds across periods."""
    f = data.fleet
    rentable = (data.on_demand_cost >= 0) | (data.reserved_cost >= 0)
    prices = np.where(data.on_demand_cost >= 0, data.on_demand_cost, 1)
    for k in range(data.periods):
        most = np.where(rentable, f.available, np.minimum(data.spot_available[:, k],
                                                          np.where(f.available >= 0, f.available, 1 << 40)))
        if not rentable.all():
            most = np.where(~rentable & (data.spot_cost < 0), 0, most)
        period = period_fleet(data, k, prices=prices, available=most)
        for w, name in enumerate(f.workload_names):
            alone = dataclasses.replace(period, demand=np.where(np.arange(len(f.workload_names)) == w,
                                                                period.demand, 0))
            if solve_fleet(alone, backend, time_limit_s=time_limit_s).status == "INFEASIBLE":
                return (f"demand_{name}_p{k}: workload '{name}' in period {k} "
                        f"({data.demand[w, k] / 1e6:g} requests/s) needs more GPUs than any source offers "
                        f"({_inventory(f.pool_names, most)})")
        if solve_fleet(period, backend, time_limit_s=time_limit_s).status == "INFEASIBLE":
            return (f"inventory_p{k}: in period {k} the workloads together need more GPUs than available "
                    f"({_inventory(f.pool_names, most)})")
    return ("no plan meets every rule together (each period alone can be served: the budget, a spot share or a "
            "warm floor binds)")


def _inventory(names: tuple[str, ...], available: np.ndarray) -> str:
    return ", ".join(f"{n} {'unlimited' if a < 0 else int(a)}" for n, a in zip(names, available, strict=True))


def _layout(row) -> str:
    pp = f" PP{int(row.pp)}" if row.pp > 1 else ""
    ep = f" EP{int(row.ep)}" if row.ep > 1 else ""
    return f"TP{int(row.tp)}{pp}{ep}"


def schedule_table(scenario: HorizonScenario, candidates: pd.DataFrame, data: HorizonData,
                   solution: HorizonSolution) -> pd.DataFrame:
    """One row per period x workload x deployment x source, plus idle GPUs paid for; USD adds up to the total.

    Sources are assigned per GPU type and period: replicas that may not run on spot take reserved,
    then on-demand GPUs; the others take what reserved GPUs are left, then spot, then on demand (the
    rows ``cover`` and ``not_on_spot`` guarantee this fits). GPUs are counted per type, so one
    replica may span two sources: its row then shows a fraction of a replica.
    """
    f = data.fleet
    size = f.node_size if f.whole_nodes else np.ones(len(f.pool_names), dtype=np.int64)
    price = {"reserved": np.maximum(data.reserved_cost, 0), "on_demand": np.maximum(data.on_demand_cost, 0),
             "spot": np.maximum(data.spot_cost, 0)}
    rows = []
    for k in range(data.periods):
        for t, hardware in enumerate(f.pool_names):
            left = {"reserved": int(solution.reserved[t] * size[t]),
                    "on_demand": int(solution.on_demand[t, k] * size[t]), "spot": int(solution.spot[t, k] * size[t])}
            on_type = np.flatnonzero(f.pool == t)
            off_spot = [(c, int(solution.replicas[c, k])) for c in on_type
                        if data.restricted(int(f.workload[c])) and solution.replicas[c, k] > 0]
            anywhere = [(c, int(solution.replicas[c, k])) for c in on_type
                        if not data.restricted(int(f.workload[c])) and solution.replicas[c, k] > 0]
            anywhere += [(c, int(solution.spot_replicas[c, k])) for c in on_type if solution.spot_replicas[c, k] > 0]
            for group, order in ((off_spot, ("reserved", "on_demand")), (anywhere, ("reserved", "spot", "on_demand"))):
                for c, count in group:
                    need = count * int(f.gpus[c])
                    cand = candidates.iloc[c]
                    for source in order:
                        take = min(need, left[source])
                        if take <= 0:
                            continue
                        left[source] -= take
                        need -= take
                        rows.append({"period": k, "workload": cand["workload"], "hardware": hardware,
                                     "mode": cand["mode"], "layout": _layout(cand), "tp": int(cand["tp"]),
                                     "pp": int(cand["pp"]), "ep": int(cand["ep"]), "batch": int(cand["batch"]),
                                     "replicas": take / int(f.gpus[c]), "gpus": take, "source": source,
                                     "usd": take * price[source][t] / MICRO_USD})
                    if need > 0:
                        raise InfeconError(f"internal: period {k}, {hardware}: the plan's GPUs do not cover its "
                                           f"replicas ({need} short)")
            for source, idle in left.items():
                if idle > 0:
                    rows.append({"period": k, "workload": "", "hardware": hardware, "mode": "idle", "layout": "",
                                 "tp": 0, "pp": 0, "ep": 0, "batch": 0, "replicas": 0.0, "gpus": idle,
                                 "source": source, "usd": idle * price[source][t] / MICRO_USD})
    return pd.DataFrame(rows, columns=SCHEDULE_COLUMNS)


def reservation_table(data: HorizonData, solution: HorizonSolution, schedule: pd.DataFrame,
                      hours: float) -> pd.DataFrame:
    """Per GPU type: GPUs reserved, their price per hour and over the horizon, and the peak GPUs in use."""
    f = data.fleet
    size = f.node_size if f.whole_nodes else np.ones(len(f.pool_names), dtype=np.int64)
    in_use = schedule[schedule["mode"] != "idle"].groupby(["hardware", "period"])["gpus"].sum()
    rows = []
    for t, hardware in enumerate(f.pool_names):
        gpus = int(solution.reserved[t] * size[t])
        per_hour = gpus * max(int(data.reserved_cost[t]), 0) / MICRO_USD / hours
        peak = int(in_use.loc[hardware].max()) if hardware in in_use.index.get_level_values(0) else 0
        rows.append({"hardware": hardware, "reserved_gpus": gpus, "usd_per_hour": per_hour,
                     "usd": per_hour * hours * data.total_periods, "peak_gpus_in_use": peak})
    return pd.DataFrame(rows, columns=RESERVATION_COLUMNS)


def plan_horizon(scenario: HorizonScenario, *, backend: str = "milp", time_limit_s: float | None = None,
                 jobs: int | None = 1, ray: bool = False, ray_address: str | None = None,
                 progress: bool | None = None, reduce: bool = True, rel_gap: float = 0.0) -> HorizonPlan:
    """The least-cost reservations and per-period rentals serving every workload in every period (module docstring).

    ``rel_gap``: stop once the plan is proven within this relative gap (``solve_horizon``; 0: exact).

    Raises:
        NoFeasibleLayoutError: a workload meets its SLOs on no GPU type, or some period (named, with
            its workload) cannot be served by any source, or the rules together bind.
        SolverLimitError: the time limit ran out before any plan was found.
    """
    started = time.perf_counter()
    backend = "milp" if backend == "auto" else backend
    generated = generate_candidates(scenario.fleet, jobs=jobs, ray=ray, ray_address=ray_address, progress=progress)
    _require_servable(scenario.fleet, generated)
    candidates = pd.concat([c.frame for c in generated], ignore_index=True).reindex(columns=CANDIDATE_COLUMNS)
    data = horizon_data(scenario, candidates)
    candidates_s = time.perf_counter() - started
    distinct = len(np.unique(np.vstack([data.demand, data.spot_available]).T, axis=0))
    if len(scenario.fleet.workloads) * distinct <= EXACT_WORK:
        baseline = on_demand_plan(data, backend, time_limit_s, jobs=jobs)
    else:
        baseline = naive_on_demand_plan(data)
    start = None if baseline is None else reserve_and_rent(data, baseline)
    baselines_s = time.perf_counter() - started - candidates_s
    solution = solve_horizon(data, backend, time_limit_s=time_limit_s, start=start, reduce=reduce, rel_gap=rel_gap)
    solve_s = time.perf_counter() - started - candidates_s - baselines_s
    if solution.status == "INFEASIBLE":
        raise NoFeasibleLayoutError(diagnose(data, backend, time_limit_s))
    if solution.status == "UNKNOWN" or solution.replicas is None:
        raise SolverLimitError(f"{solution.backend} found no plan within the time limit of {time_limit_s} s")
    total = horizon_cost(data, solution)
    if total != solution.objective:
        raise InfeconError(f"internal: the plan costs {total} micro-USD by the prices, the solver says "
                           f"{solution.objective}")
    schedule = schedule_table(scenario, candidates, data, solution)
    reservations = reservation_table(data, solution, schedule, scenario.period_hours)
    status = "optimal" if solution.status == "OPTIMAL" else "feasible"
    on_demand_usd = None if baseline is None else horizon_cost(data, baseline) / MICRO_USD
    reserved_usd = None if baseline is None else reserved_at_peak_usd(data, baseline)
    total_usd = total / MICRO_USD

    def saving(baseline_usd: float | None) -> float | None:
        return None if not baseline_usd else 100 * (1 - total_usd / baseline_usd)

    summary = {
        "status": status, "mip_gap": solution.gap, "gap": solution.gap,
        "bound_usd": None if solution.bound is None else solution.bound / MICRO_USD, "method": solution.method,
        "total_usd": total_usd,
        "on_demand_baseline_usd": on_demand_usd, "reserved_at_peak_baseline_usd": reserved_usd,
        "on_demand_baseline_status": "none" if baseline is None else baseline.status.lower(),
        "on_demand_baseline_method": "none" if baseline is None else baseline.backend,
        "saving_vs_on_demand_pct": saving(on_demand_usd), "saving_vs_reserved_at_peak_pct": saving(reserved_usd),
        "reserved_gpus": {h: int(g) for h, g in zip(reservations["hardware"], reservations["reserved_gpus"],
                                                     strict=True)},
        "usd_by_source": {s: float(schedule.loc[schedule["source"] == s, "usd"].sum()) for s in SOURCES},
        "periods": scenario.periods, "period_hours": scenario.period_hours, "distinct_periods": distinct,
        "workloads": len(scenario.fleet.workloads), "gpu_types": len(scenario.fleet.gpus),
        "candidates": len(candidates), "backend": solution.backend,
        "wall_s": time.perf_counter() - started, "candidates_s": candidates_s, "baselines_s": baselines_s,
        "solve_s": solve_s, "scenario": scenario.source,
    }
    return HorizonPlan(status, reservations, schedule, summary, candidates, solution, data, scenario)

