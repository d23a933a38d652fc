"""What a fleet plan looks like to a person and on disk: the printed table, plan.csv/.parquet, summary.json, fleet.png.

Reads a ``FleetPlan``; computes nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from infecon.formulations.errors import InfeconError
from infecon.solver.fleet.plan import FleetPlan
from infecon.solver.outputs import write_together

_SHORT_MODE = {"closed_loop": "aggregated", "disaggregated_prefill": "prefill", "disaggregated_decode": "decode"}


def _ms(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value * 1e3:.0f}"


def format_plan(plan: FleetPlan) -> str:
    """The plan as a table, then the totals against the naive plan and the solver's verdict."""
    t = plan.plan
    shown = pd.DataFrame({
        "workload": t["workload"], "GPU": t["hardware"], "mode": t["mode"].map(_SHORT_MODE),
        "layout": [f"TP{a}" + (f" PP{b}" if b > 1 else "") + (f" EP{c}" if c > 1 else "") + (" attn-DP" if d else "")
                   for a, b, c, d in zip(t["tp"], t["pp"], t["ep"], t["attention_dp"], strict=True)],
        "batch": t["batch"], "replicas": t["replicas"], "GPUs": t["gpus"],
        "$/hour": [f"{v:,.2f}" for v in t["usd_per_hour"]],
        "req/s": [f"{v:.2f}" for v in t["capacity_requests_per_s"]],
        "TTFT ms": [_ms(v) for v in t["ttft_s"]], "TPOT ms": [_ms(v) for v in t["tpot_s"]],
        "util %": [f"{100 * v:.0f}" for v in t["utilization"]]})
    s = plan.summary
    naive = s["naive_usd_per_hour"]
    versus = "no naive plan fits the inventory" if naive is None else (
        f"naive plan ${naive:,.2f}/hour (each workload on its own cheapest deployment): "
        f"{100 * (1 - s['total_usd_per_hour'] / naive):.1f} % saved" if naive > 0 else "")
    gpus = ", ".join(f"{k} {v}" for k, v in s["gpus_by_hardware"].items() if v)
    verdict = "proven optimal" if s["status"] == "optimal" else \
        f"NOT proven optimal (MIP gap {100 * (s['mip_gap'] or 0):.2f} %; raise --time-limit)"
    lines = [
        f"Fleet plan: {s['workloads']} workloads on {s['gpu_types']} GPU types, {s['candidates']} candidate "
        f"replicas, backend {s['backend']}, {s['wall_s']:.1f} s",
        shown.to_string(index=False),
        f"total ${s['total_usd_per_hour']:,.2f}/hour, {verdict}; GPUs: {gpus}",
        versus,
    ]
    return "\n".join(line for line in lines if line)


def format_frontier(frontier: pd.DataFrame) -> str:
    shown = pd.DataFrame({"TPOT scale": [f"{v:.3f}" for v in frontier["tpot_scale"]],
                          "$/hour": [f"{v:,.2f}" for v in frontier["total_usd_per_hour"]],
                          "GPUs": frontier["gpus"]})
    note = "" if frontier.attrs.get("complete", True) else "\nnote: a solve was not proven optimal; frontier stops here"
    head = (f"{len(frontier)} Pareto-optimal fleets (cost against every workload's TPOT limit x scale), "
            f"{frontier.attrs.get('wall_s', 0):.1f} s")
    return f"{head}\n{shown.to_string(index=False)}{note}"


def plot_plan(plan: FleetPlan, path: Path) -> None:
    """Stacked bars: USD/hour per workload, one colour per GPU type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pivot = plan.plan.pivot_table(index="workload", columns="hardware", values="usd_per_hour", aggfunc="sum",
                                  fill_value=0.0, sort=False)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    pivot.plot.bar(stacked=True, ax=ax)
    ax.set_ylabel("USD per hour")
    ax.set_title(f"Fleet: ${plan.summary['total_usd_per_hour']:,.2f}/hour ({plan.summary['status']})")
    ax.legend(title="GPU type")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_plan(plan: FleetPlan, out_dir: str | Path) -> list[Path]:
    """Write plan.csv, plan.parquet, summary.json and fleet.png into ``out_dir`` (created); the paths written."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths = write_together({
            out / "plan.csv": lambda tmp: plan.plan.to_csv(tmp, index=False),
            out / "plan.parquet": lambda tmp: plan.plan.to_parquet(tmp, index=False),
            out / "summary.json": lambda tmp: tmp.write_text(json.dumps(plan.summary, indent=2) + "\n"),
            out / "fleet.png": lambda tmp: plot_plan(plan, tmp),
        })
    except (OSError, ValueError) as exc:
        raise InfeconError(f"cannot write output: {exc}") from None
    return paths


def write_frontier(frontier: pd.DataFrame, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        path = out / "frontier.csv"
        frontier.assign(gpus_by_hardware=[json.dumps(v) for v in frontier["gpus_by_hardware"]]).to_csv(path,
                                                                                                       index=False)
    except OSError as exc:
        raise InfeconError(f"cannot write output: {exc}") from None
    return path
