"""Fleet planning: how many replicas of which deployment on which GPU type serve every workload at least cost.

The loop: candidate replicas per workload x GPU type (``fleet.candidates``, in parallel), one
integer model over all of them (``fleet.model``), solved by the MILP (HiGHS) or
CP-SAT, then a plan table with one row per workload x deployment. Alongside: the naive plan
(each workload on its own cheapest single deployment, in file order, within what inventory is
left), and, when nothing is feasible, the rule that binds.

``fleet_frontier`` traces the exact Pareto frontier of fleet cost against the TPOT-SLO scale (all
workloads' TPOT limits multiplied by one factor) by the walk of ``fleet.scales``: from the
loosest scale rank to tighter ones, one least-cost solve per point (plus one per tie), each plan
telling the highest rank it needs. It is not ``solver.epsilon``'s loop because that one walks one
configuration table's ranks, and this one a model rebuilt per solve.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from infecon.formulations.errors import InfeconError, InstanceError, NoFeasibleLayoutError, SolverLimitError
from infecon.formulations.fleet.model import (
    KINDS,
    MICRO_USD,
    FleetData,
    FleetSolution,
    capacity_units,
    cost_units,
    demand_units,
    fleet_cost,
    gpus_used,
)
from infecon.instances.fleet_scenario import FleetScenario, parse_gpu, parse_workload
from infecon.instances.limits import check_knob
from infecon.solver.fleet.candidates import CANDIDATE_COLUMNS, Candidates, fleet_candidates_of, serving_shape
from infecon.solver.fleet.scales import grid_frontier, scale_frontier
from infecon.solver.fleet.solve import FLEET_BACKENDS, plan_backend, solve_fleet  # noqa: F401 (FLEET_BACKENDS: the CLI reads it here)
from infecon.solver.parallel import run_tasks

PLAN_COLUMNS = [
    "workload", "hardware", "mode", "tp", "pp", "ep", "batch", "replicas", "gpus", "usd_per_hour",
    "capacity_requests_per_s", "ttft_s", "tpot_s", "utilization", "tp_rows", "tp_cols", "replica_gpus",
    "replica_usd_per_hour", "capacity_output_tok_per_s", "demand_requests_per_s", "attention_dp",
]


@dataclass(frozen=True)
class FleetPlan:
    """A solved fleet: ``plan`` (one row per workload x deployment), ``summary`` (the JSON contract), and more.

    ``status`` is ``optimal`` only for a proven optimum; ``feasible`` means a plan whose
    ``summary["mip_gap"]`` says how far from proven it may be.
    """

    status: str
    plan: pd.DataFrame
    summary: dict
    candidates: pd.DataFrame
    solution: FleetSolution
    data: FleetData
    scenario: FleetScenario = field(repr=False, default=None)


# ---------------------------------------------------------------- candidates


_PARSED: dict[tuple, object] = {}  # per worker process: each GPU and workload table read once, not once per task


def _parsed(parse, where: str, number: int, raw: dict):
    key = (parse.__name__, where, number, repr(sorted(raw.items())))
    if key not in _PARSED:
        _PARSED[key] = parse(where, number, raw)
    return _PARSED[key]


def _candidates_task(task: tuple) -> list[Candidates]:
    """Worker side: re-read one GPU and its workloads from their TOML tables (specs do not pickle) and generate."""
    where, gpu_number, gpu_raw, workloads_raw, settings, tpot_scale_max = task
    gpu = _parsed(parse_gpu, where, gpu_number, gpu_raw)
    workloads = [_parsed(parse_workload, where, number, raw) for number, raw in workloads_raw]
    return fleet_candidates_of(workloads, gpu, settings, tpot_scale_max=tpot_scale_max)


def _task_groups(scenario: FleetScenario) -> list[tuple[int, list[int]]]:
    """(GPU, workloads) groups, one per GPU type and serving shape: a group tabulates its shape once."""
    shapes: dict[tuple, list[int]] = {}
    for wi, workload in enumerate(scenario.workloads):
        shapes.setdefault(serving_shape(workload), []).append(wi)
    return [(gi, members) for gi in range(len(scenario.gpus)) for members in shapes.values()]


def generate_candidates(scenario: FleetScenario, *, tpot_scale_max: float | None = None, jobs: int | None = 1,
                        ray: bool = False, ray_address: str | None = None, progress: bool | None = None
                        ) -> list[Candidates]:
    """Candidates of every workload x GPU type, in (workload, GPU) order; in parallel unless ``jobs == 1``.

    One task per GPU type and serving shape (``fleet.candidates.serving_shape``): workloads that
    differ only in demand or SLOs share their tables.
    """
    groups = _task_groups(scenario)
    found: dict[tuple[int, int], Candidates] = {}
    if jobs == 1 and not (ray or ray_address):
        for gi, members in groups:
            generated = fleet_candidates_of([scenario.workloads[wi] for wi in members], scenario.gpus[gi],
                                            scenario.settings, tpot_scale_max=tpot_scale_max)
            found.update({(wi, gi): c for wi, c in zip(members, generated, strict=True)})
    else:
        tasks = [(scenario.source, gi + 1, scenario.gpus[gi].raw,
                  [(wi + 1, scenario.workloads[wi].raw) for wi in members], scenario.settings, tpot_scale_max)
                 for gi, members in groups]
        results = run_tasks(_candidates_task, tasks, jobs=jobs, ray=ray, ray_address=ray_address,
                            desc="candidates", progress=progress)
        for (gi, members), (status, payload) in zip(groups, results, strict=True):
            if status != "ok":
                names = ", ".join(f"'{scenario.workloads[wi].name}'" for wi in members)
                raise InfeconError(f"candidates of workload {names} on '{scenario.gpus[gi].key}': {payload}")
            found.update({(wi, gi): c for wi, c in zip(members, payload, strict=True)})
    return [found[wi, gi] for wi in range(len(scenario.workloads)) for gi in range(len(scenario.gpus))]


def _require_servable(scenario: FleetScenario, generated: list[Candidates]) -> None:
    """Raise naming the workload and each GPU type's binding rule when a workload has no usable candidate."""
    for w in scenario.workloads:
        mine = [c for c in generated if c.workload == w.name]
        modes = set()
        for c in mine:
            modes.update(c.frame["mode"].unique().tolist())
        if "closed_loop" in modes or {"disaggregated_prefill", "disaggregated_decode"} <= modes:
            continue
        slo = ", ".join(f"{k} {v:g} s" for k, v in (("ttft_max", w.ttft_max_s), ("tpot_max", w.tpot_max_s))
                        if v is not None) or "no SLO"
        if w.slo_percentile is not None and slo != "no SLO":
            slo += f" at p{w.slo_percentile:g}"
        why = "; ".join(f"{c.hardware}: " + " / ".join(f"{mode}: {reason}" for mode, reason in c.reasons.items())
                        for c in mine if c.reasons)
        raise NoFeasibleLayoutError(f"demand_{w.name}: workload '{w.name}' ({w.model.name}, {slo}) can be served "
                                    f"on no GPU type: {why}")


def vendor(gpu) -> str:
    """A GPU type's vendor: the first word of its hardware file's name ("NVIDIA", "AMD", "Intel", "Google")."""
    return gpu.hardware.name.split()[0]


def route_groups(scenario: FleetScenario, candidates: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Route groups of the fleet model (``fleet.model``): per candidate its group, per group its workload and name.

    ``kv_transfer`` per workload: ``same_hardware`` (the default) one group per GPU type, named
    ``<workload>_on_<gpu>``; ``same_vendor`` one per vendor, ``<workload>_on_<vendor>``; ``any`` one
    group, named after the workload (the rows of a fleet without the rule).
    """
    names = [w.name for w in scenario.workloads]
    by_key = {g.key: g for g in scenario.gpus}
    keys: dict[tuple[int, str], int] = {}
    group_names: list[str] = []
    group_workload: list[int] = []
    for w, workload in enumerate(scenario.workloads):
        rule = workload.kv_transfer
        for gpu in scenario.gpus:
            where = "" if rule == "any" else gpu.key if rule == "same_hardware" else vendor(gpu)
            if (w, where) not in keys:
                keys[w, where] = len(group_names)
                group_names.append(workload.name if not where else f"{workload.name}_on_{where}")
                group_workload.append(w)
    groups = np.full(len(candidates), -1, dtype=np.int64)
    for i, (w, hardware, mode) in enumerate(zip(candidates["workload"], candidates["hardware"], candidates["mode"],
                                                strict=True)):
        if mode != "closed_loop":
            workload = scenario.workloads[names.index(w)]
            rule = workload.kv_transfer
            where = "" if rule == "any" else hardware if rule == "same_hardware" else vendor(by_key[hardware])
            groups[i] = keys[names.index(w), where]
    return groups, np.array(group_workload, dtype=np.int64), tuple(group_names)


def fleet_data(scenario: FleetScenario, candidates: pd.DataFrame) -> FleetData:
    """The integer fleet model of a scenario and its candidate table (row order = candidate index)."""
    names = [w.name for w in scenario.workloads]
    pools = [g.key for g in scenario.gpus]
    route_group, route_workload, route_names = route_groups(scenario, candidates)
    scales = candidates["tpot_scale"].to_numpy(dtype=float)
    distinct = np.unique(scales)
    budget = scenario.settings.budget_usd_per_hour
    return FleetData(
        workload_names=tuple(names),
        demand=[demand_units(w.requests_per_s) for w in scenario.workloads],
        disaggregated=tuple(w.disaggregated for w in scenario.workloads),
        pool_names=tuple(pools),
        available=[-1 if g.available is None else g.available for g in scenario.gpus],
        node_size=[g.hardware.node_size_gpus for g in scenario.gpus],
        gpu_cost=[cost_units(g.hardware.price_usd_per_hour) for g in scenario.gpus],
        workload=[names.index(w) for w in candidates["workload"]],
        pool=[pools.index(h) for h in candidates["hardware"]],
        kind=[KINDS.index(m) for m in candidates["mode"]],
        gpus=candidates["gpus"].to_numpy(dtype=np.int64),
        capacity=[capacity_units(c) for c in candidates["capacity_requests_per_s"]],
        scale_rank=np.searchsorted(distinct, scales),
        budget=None if budget is None else cost_units(budget),
        whole_nodes=scenario.settings.whole_nodes, route_group=route_group, route_workload=route_workload,
        route_names=route_names)


# ---------------------------------------------------------------- solving


def solve(data: FleetData, backend: str = "milp", **kwargs) -> FleetSolution:
    """One least-cost solve with the named backend (``milp`` or ``cpsat``), reduced exactly (``fleet.solve``)."""
    return solve_fleet(data, backend, **kwargs)


def naive_solution(data: FleetData) -> FleetSolution | None:
    """Serve each workload, in order, on its own cheapest single deployment.

    A deployment is one aggregated candidate, or one prefill and one decode candidate of one route
    group (GPU types that can hand the KV cache over), with just enough replicas for the whole
    demand; each workload takes the cheapest that fits the inventory the earlier ones left (ties:
    the lower candidate indices). None if some workload finds nothing that fits. This plan is
    feasible for the fleet model (budget aside), so the optimum is never above it. Options are
    priced as arrays (every prefill x decode pair at
    once) and tried cheapest first, so a workload with hundreds of candidates costs milliseconds.
    """
    used = np.zeros(len(data.pool_names), dtype=np.int64)
    replicas = np.zeros(len(data.gpus), dtype=np.int64)
    routed = np.zeros(len(data.route_names), dtype=np.int64)

    def fits(option: list[tuple[int, int]]) -> bool:
        after = used.copy()
        for c, n in option:
            after[data.pool[c]] += n * data.gpus[c]
        if data.whole_nodes:
            after = -(-after // data.node_size) * data.node_size
        return bool(np.all((data.available < 0) | (after <= data.available)))

    for w in range(len(data.workload_names)):
        mine = np.flatnonzero((data.workload == w) & (data.capacity > 0))
        need = -(-data.demand[w] // np.maximum(data.capacity, 1))
        price = need * data.cost  # micro-USD/hour of each candidate serving the whole demand alone
        closed = mine[data.kind[mine] == 0] if data.disaggregated[w] != "only" else mine[:0]
        pre = mine[data.kind[mine] == 1] if data.routes_disaggregated(w) else mine[:0]
        dec = mine[data.kind[mine] == 2] if data.routes_disaggregated(w) else mine[:0]
        p, d = (a.ravel() for a in np.meshgrid(pre, dec, indexing="ij"))
        same_route = data.route_group[p] == data.route_group[d]
        p, d = p[same_route], d[same_route]
        first = np.concatenate([closed, np.minimum(p, d)])  # an option's candidates in order: the tie-break
        second = np.concatenate([np.full(len(closed), -1), np.maximum(p, d)])
        cost = np.concatenate([price[closed], price[p] + price[d]])
        pairs = [[(int(c), int(need[c]))] for c in closed]
        best = None
        for o in np.lexsort((second, first, cost)):
            option = pairs[o] if o < len(closed) else \
                [(int(p[o - len(closed)]), int(need[p[o - len(closed)]])),
                 (int(d[o - len(closed)]), int(need[d[o - len(closed)]]))]
            if fits(option):
                best = option
                break
        if best is None:
            return None
        for c, n in best:
            replicas[c] += n
            used[data.pool[c]] += n * data.gpus[c]
        if len(best) == 2:  # a prefill and decode pair takes all of the workload's requests
            routed[data.route_group[best[0][0]]] = data.demand[w]
    nodes = -(-used // data.node_size) if data.whole_nodes else np.zeros(len(used), dtype=np.int64)
    return FleetSolution("FEASIBLE", replicas, routed, nodes, fleet_cost(data, replicas), backend="naive")


def diagnose_infeasible(data: FleetData, backend: str, time_limit_s: float | None = None) -> str:
    """The rule that binds when no fleet is feasible: a workload alone, one GPU type's inventory, or the budget."""
    def feasible(changed: FleetData) -> FleetSolution:
        return solve(changed, backend, time_limit_s=time_limit_s)

    unlimited = np.full(len(data.pool_names), -1)
    if data.budget is not None:
        free = feasible(_replace(data, budget=None))
        if free.status in ("OPTIMAL", "FEASIBLE") and free.objective > data.budget:
            return (f"budget: the least-cost fleet costs ${free.objective / MICRO_USD:,.2f}/hour, above the budget of "
                    f"${data.budget / MICRO_USD:,.2f}/hour")
    for w, name in enumerate(data.workload_names):
        alone = _replace(data, demand=np.where(np.arange(len(data.demand)) == w, data.demand, 0), budget=None)
        if feasible(alone).status == "INFEASIBLE":
            return (f"inventory: workload '{name}' alone needs more GPUs than available "
                    f"({_inventory_text(data)}) at its SLOs")
    for p, pool in enumerate(data.pool_names):
        if data.available[p] < 0:
            continue
        loosened = _replace(data, available=np.where(np.arange(len(unlimited)) == p, -1, data.available), budget=None)
        if feasible(loosened).status != "INFEASIBLE":
            return (f"inventory_{pool}: the workloads together need more than the {data.available[p]} {pool} GPUs "
                    f"available ({_inventory_text(data)})")
    return f"inventory: the workloads together need more GPUs than available ({_inventory_text(data)})"


def _inventory_text(data: FleetData) -> str:
    return ", ".join(f"{p} {'unlimited' if a < 0 else a}" for p, a in zip(data.pool_names, data.available, strict=True))


def _replace(data: FleetData, **changes) -> FleetData:
    return dataclasses.replace(data, **changes)


# ---------------------------------------------------------------- the plan table


def plan_table(scenario: FleetScenario, candidates: pd.DataFrame, data: FleetData,
               solution: FleetSolution) -> pd.DataFrame:
    """One row per workload x deployment used, with totals for all its replicas and the share of capacity used."""
    chosen = np.flatnonzero(solution.replicas > 0)
    rows = candidates.iloc[chosen].reset_index(drop=True)
    replicas = solution.replicas[chosen]
    demand = {w.name: w.requests_per_s for w in scenario.workloads}
    # Requests per route group (req/s), at most the workload's demand in all (a solver may route more than it needs).
    routed_units = np.zeros(len(data.route_names))
    for w in range(len(data.workload_names)):
        left = float(data.demand[w])
        for g in data.routes_of(w):
            routed_units[g] = min(float(solution.routed[g]), left)
            left -= routed_units[g]
    scale = np.array([demand[data.workload_names[w]] / data.demand[w] if data.demand[w] else 0.0
                      for w in data.route_workload])
    routed = routed_units * scale
    row_route = data.route_group[chosen]
    routed_total = {name: float(routed[data.routes_of(w)].sum()) for w, name in enumerate(data.workload_names)}
    total_capacity = rows["capacity_requests_per_s"].to_numpy(dtype=float) * replicas
    load = np.array([routed[g] if m != "closed_loop" else max(demand[w] - routed_total[w], 0.0)
                     for w, m, g in zip(rows["workload"], rows["mode"], row_route, strict=True)])
    group = rows["workload"] + "/" + rows["mode"] + "/" + pd.Series(row_route).astype(str)
    group_capacity = pd.Series(total_capacity).groupby(group.to_numpy()).transform("sum").to_numpy()
    table = pd.DataFrame({
        "workload": rows["workload"], "hardware": rows["hardware"], "mode": rows["mode"], "tp": rows["tp"],
        "pp": rows["pp"], "ep": rows["ep"], "batch": rows["batch"], "replicas": replicas,
        "gpus": replicas * rows["gpus"].to_numpy(), "usd_per_hour": replicas * rows["usd_per_hour"].to_numpy(),
        "capacity_requests_per_s": total_capacity, "ttft_s": rows["ttft_s"], "tpot_s": rows["tpot_s"],
        "utilization": np.divide(load, group_capacity, out=np.zeros(len(rows)), where=group_capacity > 0),
        "tp_rows": rows["tp_rows"], "tp_cols": rows["tp_cols"], "replica_gpus": rows["gpus"],
        "replica_usd_per_hour": rows["usd_per_hour"],
        "capacity_output_tok_per_s": replicas * rows["capacity_output_tok_per_s"].to_numpy(),
        "demand_requests_per_s": [demand[w] for w in rows["workload"]],
        "attention_dp": rows["attention_dp"].astype(bool)}, columns=PLAN_COLUMNS)
    order = {w.name: i for i, w in enumerate(scenario.workloads)}
    table["_order"] = table["workload"].map(order)
    table = table.sort_values(["_order", "mode", "hardware"], kind="stable")
    return table.drop(columns="_order").reset_index(drop=True)


def _gpus_by_hardware(data: FleetData, solution: FleetSolution) -> dict[str, int]:
    used = gpus_used(data, solution.replicas)
    if data.whole_nodes:
        return {p: int(n * s) for p, n, s in zip(data.pool_names, solution.nodes, data.node_size, strict=True)}
    return {p: int(u) for p, u in zip(data.pool_names, used, strict=True)}


def plan_fleet(scenario: FleetScenario, *, backend: str = "milp", time_limit_s: float | None = None,
               jobs: int | None = 1, ray: bool = False, ray_address: str | None = None,
               progress: bool | None = None) -> FleetPlan:
    """The least-cost fleet serving every workload of ``scenario`` under its SLOs, inventory and budget.

    Raises:
        NoFeasibleLayoutError: a workload meets its SLOs on no GPU type, or no fleet fits the
            inventory or budget; the message names the binding rule.
        SolverLimitError: the time limit ran out before any plan was found.
    """
    start = time.perf_counter()
    backend = plan_backend(backend)
    generated = generate_candidates(scenario, jobs=jobs, ray=ray, ray_address=ray_address, progress=progress)
    _require_servable(scenario, generated)
    candidates = pd.concat([c.frame for c in generated], ignore_index=True).reindex(columns=CANDIDATE_COLUMNS)
    data = fleet_data(scenario, candidates)
    candidates_s = time.perf_counter() - start
    naive_plan = naive_solution(data)
    naive = None if naive_plan is None else naive_plan.objective
    solution = solve(data, backend, time_limit_s=time_limit_s, hint=naive_plan, jobs=jobs)
    solve_s = time.perf_counter() - start - candidates_s
    if solution.status == "INFEASIBLE":
        raise NoFeasibleLayoutError(diagnose_infeasible(data, backend, time_limit_s))
    usable = naive_plan is not None and (data.budget is None or naive <= data.budget)
    if solution.status in ("FEASIBLE", "UNKNOWN") and usable and \
            (solution.objective is None or naive < solution.objective):
        # Stopped by the time limit with nothing better than the naive plan: keep the naive plan, so the
        # answer is never above it, with the solver's bound still saying how far from proven it may be.
        solution = dataclasses.replace(naive_plan, bound=solution.bound,
                                       backend=f"{solution.backend} (its plan was costlier: naive plan kept)")
    if solution.status == "UNKNOWN":
        raise SolverLimitError(f"{solution.backend} found no plan within the time limit of {time_limit_s} s")
    status = "optimal" if solution.status == "OPTIMAL" else "feasible"
    summary = {
        "status": status,
        "total_usd_per_hour": solution.objective / MICRO_USD,
        "naive_usd_per_hour": None if naive is None else naive / MICRO_USD,
        "gpus_by_hardware": _gpus_by_hardware(data, solution),
        "mip_gap": solution.gap,
        "wall_s": time.perf_counter() - start,
        "candidates_s": candidates_s,
        "solve_s": solve_s,
        "backend": solution.backend,
        "workloads": len(scenario.workloads),
        "gpu_types": len(scenario.gpus),
        "candidates": len(candidates),
        "scenario": scenario.source,
    }
    return FleetPlan(status, plan_table(scenario, candidates, data, solution), summary, candidates, solution, data,
                     scenario)


# ---------------------------------------------------------------- the TPOT-scale frontier


def fleet_frontier(scenario: FleetScenario, *, tpot_scale_max: float = 1.0, backend: str = "auto",
                   time_limit_s: float | None = None, jobs: int | None = 1, ray: bool = False,
                   ray_address: str | None = None, progress: bool | None = None,
                   on_point: Callable[[int], None] | None = None,
                   tpot_scales: Sequence[float] | None = None) -> pd.DataFrame:
    """Exact Pareto frontier of fleet cost against the TPOT-SLO scale, tightest scale first.

    Each row: ``tpot_scale`` (every workload's TPOT limit times this), ``total_usd_per_hour``,
    ``gpus``, ``status``. A point is on the frontier only if proven optimal; a solve that is not
    stops the loop and ``attrs["complete"]`` is False; ``NoFeasibleLayoutError`` names the binding rule when no
    fleet is feasible even at ``tpot_scale_max``. ``backend``: ``auto`` (the default) tries CP-SAT for a few
    seconds per solve, then the exact decomposition of ``solve_fleet`` with HiGHS (``fleet.scales.AUTO_CPSAT_S``:
    CP-SAT is ~4x faster on most of the walk's solves and far slower on a few); ``milp`` or ``cpsat`` alone.
    ``tpot_scales``: only these scales (``fleet.scales.grid_frontier``; ``tpot_scale_max`` is then their largest),
    for fleets whose exact frontier is thousands of points long.
    """
    if tpot_scales is not None:
        if len(tpot_scales) == 0:
            raise InstanceError("'tpot_scales' must list at least one scale")
        for value in tpot_scales:
            check_knob("tpot_scale_max", value, label="each of 'tpot_scales'")
        tpot_scale_max = max(tpot_scales)
    check_knob("tpot_scale_max", tpot_scale_max)
    start = time.perf_counter()
    generated = generate_candidates(scenario, tpot_scale_max=tpot_scale_max, jobs=jobs, ray=ray,
                                    ray_address=ray_address, progress=progress)
    _require_servable(scenario, generated)
    candidates = pd.concat([c.frame for c in generated], ignore_index=True).reindex(columns=CANDIDATE_COLUMNS)
    data = fleet_data(scenario, candidates)
    scales = np.unique(candidates["tpot_scale"].to_numpy(dtype=float))
    if tpot_scales is None:
        walk = scale_frontier(data, backend, time_limit_s=time_limit_s, on_point=on_point)
        at = [float(scale) for scale in scales]
    else:  # a candidate at a scale up to s is allowed at s
        at = [float(scale) for scale in tpot_scales]
        ranks = [int(np.searchsorted(scales, scale, side="right")) - 1 for scale in at]
        walk = grid_frontier(data, ranks, backend, time_limit_s=time_limit_s, on_point=on_point)
    if not walk.points and walk.complete:  # nothing is feasible even at the loosest scale: say which rule binds
        raise NoFeasibleLayoutError(diagnose_infeasible(data, plan_backend(backend), time_limit_s))
    rows = [{"tpot_scale": at[rank], "total_usd_per_hour": plan.objective / MICRO_USD,
             "gpus": int(sum(_gpus_by_hardware(data, plan).values())),
             "gpus_by_hardware": _gpus_by_hardware(data, plan), "status": "optimal"} for rank, plan in walk.points]
    complete = walk.complete
    frame = pd.DataFrame(rows, columns=["tpot_scale", "total_usd_per_hour", "gpus", "gpus_by_hardware", "status"])
    frame.attrs.update(complete=complete, wall_s=time.perf_counter() - start, candidates=len(candidates),
                       fleet_solves=walk.fleet_solves, workload_solves=walk.workload_solves)
    return frame
