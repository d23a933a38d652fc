"""Candidate deployments of one workload on one GPU type: what the fleet MILP chooses replicas of.

A candidate is one replica: a layout and batch in a serving mode, with its GPUs, price, capacity
(requests/s and tokens/s), TTFT and TPOT, all read from the serving model's table
(``formulations.space.tabulate`` through ``solver.api.build_problem``). Three kinds:

* ``closed_loop``: an aggregated instance doing its own prefills (continuous batching); its
  capacity is its output tokens/s over osl.
* ``disaggregated_decode``: a decode instance that never prefills; capacity as above.
* ``disaggregated_prefill``: a prefill instance run at the fleet's prefill-pool utilisation
  (``[fleet] prefill_utilization``, default ``serving.DEFAULT_PREFILL_UTILIZATION``; see
  ``FleetSettings``), which is what its TTFT assumes. The
  serving model charges that instance's time, idle share included, to input tokens, so its
  sustainable prefill rate is its hourly price over that charge.

Why the candidate set is exact: within one GPU type a replica's price is proportional to its
GPUs, so among replicas with the same GPU count only the one with the largest capacity under the
SLOs can be in an optimal fleet, and a replica needing more GPUs for no more capacity never is.
At a fixed GPU count the cheapest point per token is the one with the most capacity, so the
candidates are, per GPU count, the cheapest point of the workload's exact frontier under its SLOs
(``enumeration.pareto_indices`` restricted to that count). For the TPOT-scale frontier
(``tpot_scale_max``) every frontier point per GPU count is a candidate, tagged with the smallest
TPOT scale at which it is allowed. Exact over the searched batch domain (the ladder by default,
``batch = "all"`` for every integer), as ``infecon frontier`` is. Candidates that copies of
others replace for no more cost (a bigger replica no better than two halves) are dropped later,
in the integer model's own units (``fleet.model.dominated_candidates``), where that is exact.

Speed: the serving tables depend on the model, GPU, isl, osl, precisions and engine, not on the
SLOs or the demand, so ``fleet_candidates_of`` tabulates each such *serving shape* once (without
SLOs) and applies each workload's SLO masks to it (``space.slo_violations``, the rule ``tabulate``
itself applies); workloads that share a shape share the work.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from infecon.formulations.errors import InfeconError
from infecon.formulations.space import (
    ConfigTable,
    Problem,
    attention_dp_choices,
    batch_domain,
    searched_layouts,
    slo_violations,
    tabulate,
)
from infecon.instances.fleet_scenario import FleetSettings, FleetWorkload, GpuPool
from infecon.solver import api
from infecon.solver.enumeration import pareto_indices

CANDIDATE_COLUMNS = [
    "workload", "hardware", "mode", "tp", "tp_rows", "tp_cols", "pp", "ep", "attention_dp", "batch", "gpus",
    "usd_per_hour",
    "capacity_requests_per_s", "capacity_output_tok_per_s", "capacity_input_tok_per_s", "ttft_s", "tpot_s",
    "tpot_scale",
]
MODES = ("closed_loop", "disaggregated_prefill", "disaggregated_decode")


@dataclass(frozen=True)
class Candidates:
    """One workload x GPU type's candidate replicas (``CANDIDATE_COLUMNS``), or why there are none."""

    workload: str
    hardware: str
    frame: pd.DataFrame
    reasons: dict[str, str]  # mode -> why it has no candidate (the binding rule)


def serving_shape(workload: FleetWorkload) -> tuple:
    """What a workload's serving tables depend on (not its SLOs or demand): workloads alike share them."""
    return (workload.model_key, workload.isl, workload.osl, workload.weight_bits, workload.kv_bits,
            repr(workload.engine))


def _problem(workload: FleetWorkload, gpu: GpuPool, settings: FleetSettings, mode: str, *,
             ttft_max_s: float | None = None, tpot_max_s: float | None = None,
             batch_sizes: list[int] | None = None) -> Problem:
    """The serving problem of one candidate kind; for an MLA model its layouts come in both attention shardings,
    as in ``infecon frontier`` (``space.attention_dp_choices``)."""
    return api.build_problem(
        workload.model, gpu.hardware, isl=workload.isl, osl=workload.osl, engine=workload.engine, mode=mode,
        ttft_max_s=ttft_max_s, tpot_max_s=tpot_max_s, slo_percentile=workload.slo_percentile,
        weight_bits=workload.weight_bits,
        kv_bits=workload.kv_bits, max_gpus=settings.max_gpus,
        # explicit sizes (a prefill pool's) are the whole batch domain, in place of the fleet's batch mode
        batch_mode=settings.batch if batch_sizes is None else "all", batch_sizes=batch_sizes,
        prefill_utilization=settings.prefill_utilization, attention_dp="auto", confidence=settings.confidence)


def _slo_limits(workload: FleetWorkload, mode: str, tpot_scale: float) -> tuple[str, float | None, float | None]:
    """The serving mode of a candidate kind and the TTFT and TPOT limits it must meet."""
    tpot = None if mode == "disaggregated_prefill" or workload.tpot_max_s is None else workload.tpot_max_s * tpot_scale
    ttft = workload.ttft_max_s if mode != "disaggregated_decode" else None  # the prefill pool owns TTFT
    serving_mode = "closed_loop" if mode == "closed_loop" else "disaggregated"
    return serving_mode, ttft, tpot


_LAYOUTS: dict[tuple, np.ndarray] = {}  # per process: the valid layouts of a model on a GPU type


def _layouts(problem: Problem) -> np.ndarray:
    """``space.searched_layouts``, once per model, node size, search space and attention choice in this process.

    Layouts depend on nothing else (``space.layout_rule_violation`` reads the node size only; the
    name is in its error message), and every workload on a GPU type searches the same ones.
    """
    space, hw = problem.space, problem.hardware
    key = (repr(problem.model), hw.name, hw.node_size_gpus, space.max_gpus, space.allow_2d_tp, space.allow_pp,
           space.allow_ep, attention_dp_choices(problem))
    if key not in _LAYOUTS:
        _LAYOUTS[key] = searched_layouts(problem)
    return _LAYOUTS[key]


@dataclass(frozen=True)
class _ShapeTable:
    """One serving mode's table of a shape, without SLOs, and the rows each candidate kind searches."""

    table: ConfigTable
    searched: dict[str, np.ndarray]  # candidate kind -> rows in its batch domain


def _shape_table(workload: FleetWorkload, gpu: GpuPool, settings: FleetSettings, serving_mode: str) -> _ShapeTable:
    """The serving table of one mode without SLOs.

    A decode or closed-loop replica searches the batch domain (the ladder or every integer); a
    prefill replica only the smallest batch each layout allows (one sequence per micro-batch is all
    a prefill pass needs). In the disaggregated mode both are rows of one table over the union of
    the two domains: every row is evaluated on its own, so this is the two tables in one pass.
    """
    problem = _problem(workload, gpu, settings, serving_mode)
    layouts = _layouts(problem)
    if serving_mode == "closed_loop":
        table = tabulate(problem, layouts)
        return _ShapeTable(table, {"closed_loop": np.ones(len(table), dtype=bool)})
    domain = batch_domain(problem, layouts)
    batches = np.union1d(domain, layouts[:, 2])
    table = tabulate(problem, layouts, batches)
    return _ShapeTable(table, {"disaggregated_decode": np.isin(table.batch, domain),
                               "disaggregated_prefill": table.batch == table.pp})


def _per_gpu_count(table: ConfigTable, *, every_point: bool, prefill: bool) -> list[int]:
    """Per GPU count: the cheapest frontier point (or all of them), as table indices."""
    chosen: list[int] = []
    gpus = table.metrics.gpus
    for count in np.unique(gpus[table.feasible]):
        mask = gpus == count
        if prefill:  # a prefill replica's capacity does not depend on the batch: the cheapest input price
            price = np.where(mask & table.feasible, table.metrics.usd_per_million_input_tokens, np.inf)
            chosen.append(int(np.argmin(price)))
            continue
        front = pareto_indices(table, mask)
        chosen.extend(int(i) for i in (front if every_point else front[-1:]))
    return chosen


def _columns(workload: FleetWorkload, gpu: GpuPool, table: ConfigTable, indices: list[int],
             mode: str) -> dict[str, np.ndarray]:
    """The candidate columns of ``indices``, read from the table's metrics (numpy; one DataFrame per workload later)."""
    idx = np.asarray(indices, dtype=np.int64)
    m = table.metrics
    gpus = np.asarray(m.gpus[idx], dtype=np.int64)
    usd_per_hour = gpus * gpu.hardware.price_usd_per_hour
    ttft = m.ttft_at(workload.slo_percentile, idx)  # at the SLOs' percentile (the mean without one)
    if mode == "disaggregated_prefill":
        input_tok_per_s = usd_per_hour / 3600.0 * 1e6 / np.asarray(m.usd_per_million_input_tokens, dtype=float)[idx]
        requests = input_tok_per_s / workload.isl
        output_tok_per_s = requests * workload.osl
        tpot = np.full(len(idx), np.nan)
        scale = np.zeros(len(idx))  # TTFT is not scaled: a prefill pool serves every TPOT scale
    else:
        output_tok_per_s = np.asarray(m.total_tokens_per_second, dtype=float)[idx]
        requests = output_tok_per_s / workload.osl
        input_tok_per_s = requests * workload.isl
        tpot = m.tpot_at(workload.slo_percentile, idx)
        scale = tpot / workload.tpot_max_s if workload.tpot_max_s is not None else np.zeros(len(idx))
    if mode == "disaggregated_decode":
        ttft = np.full(len(idx), np.nan)  # the prefill pool's TTFT is the one a user sees
    tp_rows, tp_cols = table.tp_rows[idx], table.tp_cols[idx]
    n = len(idx)
    return {
        "workload": np.full(n, workload.name, dtype=object), "hardware": np.full(n, gpu.key, dtype=object),
        "mode": np.full(n, mode, dtype=object), "tp": tp_rows * tp_cols, "tp_rows": tp_rows, "tp_cols": tp_cols,
        "pp": table.pp[idx], "ep": table.ep[idx], "attention_dp": table.attention_dp[idx], "batch": table.batch[idx],
        "gpus": gpus,
        "usd_per_hour": usd_per_hour, "capacity_requests_per_s": requests,
        "capacity_output_tok_per_s": output_tok_per_s, "capacity_input_tok_per_s": input_tok_per_s,
        "ttft_s": ttft, "tpot_s": tpot, "tpot_scale": scale}


def fleet_candidates_of(workloads: Sequence[FleetWorkload], gpu: GpuPool, settings: FleetSettings, *,
                        tpot_scale_max: float | None = None) -> list[Candidates]:
    """Candidate replicas of each of ``workloads`` on ``gpu`` under its SLOs; a serving shape is tabulated once.

    Args:
        tpot_scale_max: None for one plan at the workloads' own SLOs (only the largest-capacity
            replica per GPU count); a factor for the TPOT-scale frontier, which then keeps every
            frontier point with TPOT at most ``tpot_scale_max * tpot_max_s``.

    Returns:
        One ``Candidates`` per workload, in order; a mode with no replica meeting the SLOs records
        the binding rule in ``reasons``.
    """
    every_point = tpot_scale_max is not None
    scale = 1.0 if tpot_scale_max is None else tpot_scale_max
    tables: dict[tuple, ConfigTable | InfeconError] = {}
    out = []
    for workload in workloads:
        modes = {"allow": MODES, "never": MODES[:1], "only": MODES[1:]}[workload.disaggregated]
        parts, reasons = [], {}
        for mode in modes:
            serving_mode, ttft, tpot = _slo_limits(workload, mode, scale)
            key = (serving_shape(workload), serving_mode)
            if key not in tables:
                try:
                    tables[key] = _shape_table(workload, gpu, settings, serving_mode)
                except InfeconError as exc:
                    tables[key] = exc
            shape = tables[key]
            if isinstance(shape, InfeconError):
                reasons[mode] = str(shape)
                continue
            slo = slo_violations(shape.table.metrics, ttft, tpot, workload.slo_percentile)
            violations = {**shape.table.violations, **slo, "batch_domain": ~shape.searched[mode]}
            table = dataclasses.replace(shape.table, violations=violations)
            indices = _per_gpu_count(table, every_point=every_point, prefill=mode == "disaggregated_prefill")
            if not indices:  # rare: tabulate the kind's own problem once more, for the diagnosis
                problem = _problem(workload, gpu, settings, serving_mode, ttft_max_s=ttft, tpot_max_s=tpot)
                if mode == "disaggregated_prefill":
                    pps = sorted(set(_layouts(problem)[:, 2].tolist()))
                    problem = _problem(workload, gpu, settings, serving_mode, ttft_max_s=ttft, batch_sizes=pps)
                reasons[mode] = api.diagnose_infeasible(problem)
                continue
            parts.append(_columns(workload, gpu, table, indices, mode))
        if parts:
            frame = pd.DataFrame({c: np.concatenate([p[c] for p in parts]) for c in CANDIDATE_COLUMNS})
        else:
            frame = pd.DataFrame(columns=CANDIDATE_COLUMNS)
        out.append(Candidates(workload.name, gpu.key, frame, reasons))
    return out


def fleet_candidates(workload: FleetWorkload, gpu: GpuPool, settings: FleetSettings, *,
                     tpot_scale_max: float | None = None) -> Candidates:
    """Candidate replicas of one workload on one GPU type (``fleet_candidates_of`` for one)."""
    return fleet_candidates_of([workload], gpu, settings, tpot_scale_max=tpot_scale_max)[0]
