"""Candidate deployments of one workload on one GPU type: what the fleet MILP chooses replicas of.

A candidate is one replica: a layout and batch in a serving mode, with its GPUs, price, capacity
(requests/s and tokens/s), TTFT and TPOT, all read from the serving model's table
(``formulations.space.tabulate`` through ``solver.api.build_problem``). Three kinds:

* ``closed_loop``: an aggregated instance doing its own prefills (continuous batching); its
  capacity is its output tokens/s over osl.
* ``disaggregated_decode``: a decode instance that never prefills; capacity as above.
* ``disaggregated_prefill``: a prefill instance run at the serving model's prefill-pool
  utilisation (``serving.DEFAULT_PREFILL_UTILIZATION``), which is what its TTFT assumes. The
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
``batch = "all"`` for every integer), as ``infecon frontier`` is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from infecon.formulations.errors import InfeconError
from infecon.formulations.space import Problem, tabulate
from infecon.instances.fleet_scenario import FleetSettings, FleetWorkload, GpuPool
from infecon.solver import api
from infecon.solver.enumeration import pareto_indices
from infecon.solver.frontier import configuration_frame

CANDIDATE_COLUMNS = [
    "workload", "hardware", "mode", "tp", "tp_rows", "tp_cols", "pp", "ep", "batch", "gpus", "usd_per_hour",
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


def _problem(workload: FleetWorkload, gpu: GpuPool, settings: FleetSettings, mode: str, *, ttft: bool,
             tpot_scale: float | None, batch_sizes: list[int] | None = None) -> Problem:
    tpot = None if tpot_scale is None or workload.tpot_max_s is None else workload.tpot_max_s * tpot_scale
    return api.build_problem(
        workload.model, gpu.hardware, isl=workload.isl, osl=workload.osl, engine=workload.engine, mode=mode,
        ttft_max_s=workload.ttft_max_s if ttft else None, tpot_max_s=tpot, weight_bits=workload.weight_bits,
        kv_bits=workload.kv_bits, max_gpus=settings.max_gpus, batch_mode=settings.batch, batch_sizes=batch_sizes)


def _per_gpu_count(table, *, every_point: bool, prefill: bool) -> list[int]:
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


def _frame(workload: FleetWorkload, gpu: GpuPool, table, indices: list[int], mode: str) -> pd.DataFrame:
    points = configuration_frame(table, indices)
    usd_per_hour = points["gpus"].to_numpy(dtype=float) * gpu.hardware.price_usd_per_hour
    if mode == "disaggregated_prefill":
        input_tok_per_s = usd_per_hour / 3600.0 * 1e6 / points["usd_per_million_input_tokens"].to_numpy(dtype=float)
        requests = input_tok_per_s / workload.isl
        output_tok_per_s = requests * workload.osl
        tpot = np.full(len(points), np.nan)
        scale = np.zeros(len(points))  # TTFT is not scaled: a prefill pool serves every TPOT scale
    else:
        output_tok_per_s = points["total_tokens_per_second"].to_numpy(dtype=float)
        requests = output_tok_per_s / workload.osl
        input_tok_per_s = requests * workload.isl
        tpot = points["tpot_ms"].to_numpy(dtype=float) / 1e3
        scale = tpot / workload.tpot_max_s if workload.tpot_max_s is not None else np.zeros(len(points))
    ttft = points["ttft_ms"].to_numpy(dtype=float) / 1e3
    if mode == "disaggregated_decode":
        ttft = np.full(len(points), np.nan)  # the prefill pool's TTFT is the one a user sees
    return pd.DataFrame({
        "workload": workload.name, "hardware": gpu.key, "mode": mode, "tp": points["tp"], "tp_rows": points["tp_rows"],
        "tp_cols": points["tp_cols"], "pp": points["pp"], "ep": points["ep"], "batch": points["batch"],
        "gpus": points["gpus"], "usd_per_hour": usd_per_hour, "capacity_requests_per_s": requests,
        "capacity_output_tok_per_s": output_tok_per_s, "capacity_input_tok_per_s": input_tok_per_s,
        "ttft_s": ttft, "tpot_s": tpot, "tpot_scale": scale}, columns=CANDIDATE_COLUMNS)


def _undominated(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop a replica that copies of another replica of the same mode match or beat.

    Replica ``i`` is dominated by ``j`` when ``k = gpus_i / gpus_j`` is a whole number, ``k``
    replicas of ``j`` have at least ``i``'s capacity, and ``j`` needs no larger TPOT scale: then
    swapping ``i`` for ``k`` copies of ``j`` costs the same, uses the same GPUs and serves as much,
    so some optimal fleet never uses ``i`` (``k = 1`` is plain dominance; ties keep the first row).
    Dropping such replicas removes the near-duplicate pipeline-stacked layouts that make the
    integer program symmetric.
    """
    gpus = frame["gpus"].to_numpy(dtype=np.int64)
    cap = frame["capacity_requests_per_s"].to_numpy(dtype=float)
    scale = frame["tpot_scale"].to_numpy(dtype=float)
    modes = frame["mode"].to_numpy()
    keep = np.ones(len(frame), dtype=bool)
    for i in range(len(frame)):
        for j in range(len(frame)):
            if j == i or not keep[j] or modes[j] != modes[i] or gpus[i] % gpus[j] or scale[j] > scale[i]:
                continue
            copies = gpus[i] // gpus[j]
            if copies * cap[j] < cap[i]:
                continue
            if copies > 1 or copies * cap[j] > cap[i] or scale[j] < scale[i] or j < i:
                keep[i] = False
                break
    return frame[keep].reset_index(drop=True)


def fleet_candidates(workload: FleetWorkload, gpu: GpuPool, settings: FleetSettings, *,
                     tpot_scale_max: float | None = None) -> Candidates:
    """Candidate replicas of ``workload`` on ``gpu`` under its SLOs.

    Args:
        tpot_scale_max: None for one plan at the workload's own SLOs (only the largest-capacity
            replica per GPU count); a factor for the TPOT-scale frontier, which then keeps every
            frontier point with TPOT at most ``tpot_scale_max * tpot_max_s``.

    Returns:
        ``Candidates``; a mode with no replica meeting the SLOs records the binding rule in ``reasons``.
    """
    every_point = tpot_scale_max is not None
    scale = 1.0 if tpot_scale_max is None else tpot_scale_max
    modes = {"allow": MODES, "never": MODES[:1], "only": MODES[1:]}[workload.disaggregated]
    frames, reasons = [], {}
    for mode in modes:
        try:
            if mode == "disaggregated_prefill":
                base = _problem(workload, gpu, settings, "disaggregated", ttft=True, tpot_scale=None)
                # one sequence per micro-batch is all a prefill pass needs: the smallest batch each layout allows
                layouts = api.layouts(base, None)
                problem = _problem(workload, gpu, settings, "disaggregated", ttft=True, tpot_scale=None,
                                   batch_sizes=sorted(set(layouts["pp"].tolist())))
            else:
                serving_mode = "closed_loop" if mode == "closed_loop" else "disaggregated"
                problem = _problem(workload, gpu, settings, serving_mode, ttft=mode == "closed_loop",
                                   tpot_scale=scale)
            table = tabulate(problem)
        except InfeconError as exc:
            reasons[mode] = str(exc)
            continue
        indices = _per_gpu_count(table, every_point=every_point, prefill=mode == "disaggregated_prefill")
        if not indices:
            reasons[mode] = api.diagnose_infeasible(problem)
            continue
        frames.append(_frame(workload, gpu, table, indices, mode))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CANDIDATE_COLUMNS)
    if len(frame):
        frame = _undominated(frame)
    return Candidates(workload.name, gpu.key, frame, reasons)
