"""What a plan over periods looks like to a person and on disk: the printed summary, reservations.csv, schedule.csv
and .parquet, summary.json, horizon.png. Reads a ``HorizonPlan``; computes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from infecon.formulations.errors import InfeconError
from infecon.solver.fleet.horizon import SOURCES, HorizonPlan
from infecon.solver.outputs import write_together

_SOURCE_NAME = {"reserved": "reserved", "on_demand": "on demand", "spot": "spot"}


def format_horizon(plan: HorizonPlan) -> str:
    """Reservations, spend by source, the total against both baselines, and the solver's verdict."""
    s = plan.summary
    r = plan.reservations
    lines = [f"Plan over {s['periods']} periods of {s['period_hours']:g} h: {s['workloads']} workloads on "
             f"{s['gpu_types']} GPU types, {s['candidates']} candidate replicas, {s['distinct_periods']} distinct "
             f"periods, backend {s['backend']}, {s['wall_s']:.1f} s",
             "Reserved for the whole horizon:",
             r.assign(usd=[f"{v:,.2f}" for v in r["usd"]]).to_string(index=False)]
    spend = ", ".join(f"{_SOURCE_NAME[k]} ${v:,.2f}" for k, v in s["usd_by_source"].items() if v)
    bound = "" if s.get("bound_usd") is None else f", lower bound ${s['bound_usd']:,.2f}"
    verdict = "proven optimal" if s["status"] == "optimal" else \
        f"NOT proven optimal (gap {100 * (s['mip_gap'] or 0):.2f} %{bound}; raise --time-limit)"
    lines.append(f"total ${s['total_usd']:,.2f} over the horizon ({spend}), {verdict}")
    for key, name in (("on_demand_baseline_usd", "everything on demand at each period's need"),
                      ("reserved_at_peak_baseline_usd", "everything reserved at that plan's peak")):
        if s[key]:
            lines.append(f"  vs {name}: ${s[key]:,.2f}, {100 * (1 - s['total_usd'] / s[key]):.1f} % saved")
    if s.get("method"):
        lines.append(f"method: {s['method']}")
    return "\n".join(lines)


def plot_horizon(plan: HorizonPlan, path: Path) -> None:
    """GPUs in use per period, stacked by GPU type and source; total demand (requests/s) on a second axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    busy = plan.schedule[plan.schedule["mode"] != "idle"]
    periods = np.arange(plan.summary["periods"])
    fig, ax = plt.subplots(figsize=(10, 5))
    bottom = np.zeros(len(periods))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    hatches = {"reserved": "", "on_demand": "//", "spot": ".."}
    for t, hardware in enumerate(plan.reservations["hardware"]):
        for source in SOURCES:
            mine = busy[(busy["hardware"] == hardware) & (busy["source"] == source)]
            gpus = mine.groupby("period")["gpus"].sum().reindex(periods, fill_value=0).to_numpy(dtype=float)
            if gpus.any():
                ax.bar(periods, gpus, bottom=bottom, color=colours[t % len(colours)], hatch=hatches[source],
                       edgecolor="white", label=f"{hardware} {_SOURCE_NAME[source]}")
                bottom += gpus
    ax.set_xlabel("period")
    ax.set_ylabel("GPUs in use")
    demand = plan.scenario.demand_requests_per_s.sum(axis=0)
    twin = ax.twinx()
    twin.plot(periods, demand, color="black", marker="o", markersize=3, label="demand (all workloads)")
    twin.set_ylabel("demand, requests/s")
    twin.set_ylim(bottom=0)
    handles, labels = ax.get_legend_handles_labels()
    more, more_labels = twin.get_legend_handles_labels()
    ax.legend(handles + more, labels + more_labels, fontsize=8, loc="upper left", ncol=2)
    s = plan.summary
    ax.set_title(f"${s['total_usd']:,.2f} over {s['periods']} periods ({s['status']}); reserved: "
                 + ", ".join(f"{h} {g}" for h, g in s["reserved_gpus"].items() if g))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_horizon(plan: HorizonPlan, out_dir: str | Path) -> list[Path]:
    """Write reservations.csv, schedule.csv, schedule.parquet, summary.json and horizon.png (all or none)."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths = write_together({
            out / "reservations.csv": lambda tmp: plan.reservations.to_csv(tmp, index=False),
            out / "schedule.csv": lambda tmp: plan.schedule.to_csv(tmp, index=False),
            out / "schedule.parquet": lambda tmp: plan.schedule.to_parquet(tmp, index=False),
            out / "summary.json": lambda tmp: tmp.write_text(json.dumps(plan.summary, indent=2) + "\n"),
            out / "horizon.png": lambda tmp: plot_horizon(plan, tmp),
        })
    except (OSError, ValueError) as exc:
        raise InfeconError(f"cannot write output: {exc}") from None
    return paths
