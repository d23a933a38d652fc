"""Recipes for what the commands produce: one explained point, a plan's recommended points, a fleet's rows.

``solver.recipes`` turns one ``Deployment`` into a launch recipe; this module builds the deployments from
an ``Explanation``, a frontier or plan row, or a fleet plan row (with its workload), so the commands that
print them (``infecon recipe``, ``plan --recipe``, ``fleet --recipe``) stay a few lines each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from infecon.formulations.errors import InfeconError
from infecon.formulations.serving import DEFAULT_PREFILL_UTILIZATION
from infecon.formulations.space import Problem
from infecon.solver.recipes import Deployment, Recipe, disaggregated_pool_recipe, disaggregated_recipe, recipe


def _requests(problem: Problem) -> tuple[int, int]:
    if problem.engine is None or problem.requests is None or problem.requests.input_tokens == 0:
        raise InfeconError("a launch recipe needs requests to serve: give a serving engine (--engine vllm, sglang or "
                           "trtllm) and --isl/--osl, not the paper's decode-only model")
    return problem.requests.input_tokens, problem.requests.output_tokens


def deployment_from_row(problem: Problem, row: Mapping[str, Any], role: str = "aggregated") -> Deployment:
    """The deployment of one frontier (or plan) row of ``problem``."""
    isl, osl = _requests(problem)
    w = problem.workload
    drafter = problem.speculative.drafter if problem.speculative is not None else None
    return Deployment(problem.model, problem.hardware, tp_rows=int(row["tp_rows"]), tp_cols=int(row["tp_cols"]),
                      pp=int(row["pp"]), ep=int(row["ep"]), batch=int(row["batch"]),
                      attention_dp=bool(row.get("attention_dp", False)), weight_bits=w.weight_bits, kv_bits=w.kv_bits,
                      isl=isl, osl=osl, drafter=drafter, draft_tokens=int(row.get("draft_tokens", 0)), role=role,
                      context_tokens=w.context_tokens, weight_format=getattr(w, "weight_format", "") or "")


def prefill_per_decode(problem: Problem, tpot_s: float, prefill_s: float, batch: int) -> float:
    """Prefill instances one decode instance of a disaggregated pool needs (``serving`` sizes the pool so).

    A decode instance finishes ``batch / (osl x TPOT)`` requests per second; a prefill instance of the same
    layout serves ``utilisation / P1`` of them at the pool's utilisation.
    """
    _, osl = _requests(problem)
    utilization = problem.prefill_utilization or DEFAULT_PREFILL_UTILIZATION
    return batch / (osl * tpot_s) * prefill_s / utilization


def profile_memory(profile, memory_fraction: float | None = None) -> dict[str, Any]:
    """``memory_fraction`` and its source for a recipe: the one given, else the engine profile's own when its file
    sets one (the share of HBM the physics let the deployment use), else none (the recipe record's default)."""
    if memory_fraction is not None:
        return {"memory_fraction": memory_fraction, "memory_source": "--memory-fraction"}
    sources = getattr(profile, "sources", {}) or {}
    if profile is not None and "memory_fraction" in sources:
        return {"memory_fraction": float(profile.memory_fraction),
                "memory_source": f"engine profile {profile.name} (the share of HBM the model let this deployment "
                                 f"use): {sources['memory_fraction']}"}
    return {}


def recipe_for_row(problem: Problem, row: Mapping[str, Any], engine: str, *,
                   memory_fraction: float | None = None) -> Recipe:
    """The recipe of one frontier or plan row: one instance, or a prefill/decode pair in disaggregated mode."""
    deployment = deployment_from_row(problem, row)
    memory = profile_memory(problem.engine, memory_fraction)
    if problem.mode != "disaggregated":
        return recipe(deployment, engine, **memory)
    ratio = None
    if all(k in row and not pd.isna(row[k]) for k in ("tpot_ms", "prefill_ms")):
        ratio = prefill_per_decode(problem, float(row["tpot_ms"]) / 1e3, float(row["prefill_ms"]) / 1e3,
                                   deployment.batch)
    return disaggregated_recipe(deployment, deployment, engine, prefill_per_decode=ratio, **memory)


def recipe_for_explanation(expl, engine: str, *, memory_fraction: float | None = None) -> Recipe:
    """The recipe of an ``api.explain`` result (its attention sharding and draft length as explained)."""
    m = expl.metrics
    row = {"tp_rows": expl.tp_rows, "tp_cols": expl.tp_cols, "pp": expl.pp, "ep": expl.ep, "batch": expl.batch,
           "attention_dp": expl.attention_dp, "draft_tokens": expl.draft_tokens}
    if getattr(m, "tpot_s", None) is not None:
        row.update(tpot_ms=float(m.tpot_s) * 1e3, prefill_ms=float(m.prefill_s) * 1e3)
    return recipe_for_row(expl.problem, row, engine, memory_fraction=memory_fraction)


def plan_recipes(table: pd.DataFrame, problems: Mapping[str, Problem], engine: str) -> list[tuple[str, Recipe | str]]:
    """Per scenario of a plan (in order): the recipe of its recommended point, or why there is none."""
    out: list[tuple[str, Recipe | str]] = []
    for name, group in table.groupby("scenario", sort=False):
        chosen = group[group["recommended"].fillna(False).astype(bool)]
        if name not in problems or len(chosen) == 0:
            out.append((str(name), "scenario failed: no recommended point"))
            continue
        try:
            out.append((str(name), recipe_for_row(problems[name], chosen.iloc[0].to_dict(), engine)))
        except InfeconError as exc:
            out.append((str(name), str(exc)))
    return out


def fleet_recipes(plan, engine: str) -> list[tuple[str, Recipe | str]]:
    """Per workload of a fleet plan: a recipe for each aggregated deployment, and one for its disaggregated pool
    (every prefill and decode deployment, on whichever GPU types the plan put them), or why there is none."""
    scenario = plan.scenario
    workloads = {w.name: w for w in scenario.workloads}
    pools = {g.key: g for g in scenario.gpus}
    out: list[tuple[str, Recipe | str]] = []
    for name, rows in plan.plan.groupby("workload", sort=False):
        workload = workloads[name]

        def deployment(row, role, workload=workload) -> Deployment:
            return Deployment(workload.model, pools[row["hardware"]].hardware, tp_rows=int(row["tp_rows"]),
                              tp_cols=int(row["tp_cols"]), pp=int(row["pp"]), ep=int(row["ep"]),
                              batch=int(row["batch"]), attention_dp=bool(row["attention_dp"]),
                              weight_bits=workload.weight_bits, kv_bits=workload.kv_bits or 16, isl=workload.isl,
                              osl=workload.osl, role=role)

        for _, row in rows[rows["mode"] == "closed_loop"].iterrows():
            label = (f"{name}: {int(row['replicas'])} x aggregated on {row['hardware']}, TP {int(row['tp_rows'])}x"
                     f"{int(row['tp_cols'])} PP {int(row['pp'])} EP {int(row['ep'])} batch {int(row['batch'])}"
                     ).replace("TP 1x", "TP ")
            try:
                out.append((label, recipe(deployment(row, "aggregated"), engine, **profile_memory(workload.engine))))
            except InfeconError as exc:
                out.append((label, str(exc)))
        prefill = [(deployment(r, "prefill"), int(r["replicas"]))
                   for _, r in rows[rows["mode"] == "disaggregated_prefill"].iterrows()]
        decode = [(deployment(r, "decode"), int(r["replicas"]))
                  for _, r in rows[rows["mode"] == "disaggregated_decode"].iterrows()]
        if prefill or decode:
            label = (f"{name}: disaggregated, {sum(r for _, r in prefill)} prefill + {sum(r for _, r in decode)} "
                     "decode replicas")
            try:
                out.append((label, disaggregated_pool_recipe(prefill, decode, engine,
                                                             **profile_memory(workload.engine))))
            except InfeconError as exc:
                out.append((label, str(exc)))
    return out


def format_recipes(items: Sequence[tuple[str, Recipe | str]]) -> str:
    """Each item's recipe under its label, or the reason it has none."""
    blocks = []
    for label, item in items:
        blocks.append(f"## {label}\n" + (item.text() if isinstance(item, Recipe) else f"no recipe: {item}\n"))
    return "\n".join(blocks)


def write_recipes(items: Sequence[tuple[str, Recipe | str]], folder: str | Path, engine: str) -> list[Path]:
    """One shell script per recipe, ``<folder>/<label>.<engine>.sh`` (label made a file name)."""
    folder = Path(folder)
    paths = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for label, item in items:
            if not isinstance(item, Recipe):
                continue
            stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in label).strip("_")
            path = folder / f"{stem}.{engine}.sh"
            number = 2
            while path in paths:  # two items of one label (never from plan or fleet, whose labels differ): keep both
                path = folder / f"{stem}_{number}.{engine}.sh"
                number += 1
            path.write_text("#!/bin/sh\n" + item.text())
            paths.append(path)
    except OSError as exc:
        raise InfeconError(f"cannot write recipes: {exc}") from None
    return paths
