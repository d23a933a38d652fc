"""Benchmark: fleet planning at three sizes, from one run.

    python scripts/bench_fleet.py [--sizes 5x4 50x8 200x8] [--jobs N] [--time-limit S] [--ray] [--backend cpsat]
    python scripts/bench_fleet.py --periods [--sizes 5x4x24 50x8x168 200x8x168] [--time-limit S]

Prints one row per fleet: workloads x GPU types, candidates, wall seconds for the candidates and
for the solve, the solver's status and MIP gap, the fleet's USD/hour and the naive plan's (each
workload on its own cheapest single deployment) with the saving. The 5 x 4 fleet is the shipped
example; the larger ones are generated (seeded, so every run plans the same fleets): workloads
cycle through five models with varied isl/osl, demand and SLOs, and half the GPU types have an
inventory small enough to bind (the ``limited_used`` column shows GPUs used of each; ``method`` names
the types the pattern search had to couple the workloads over). Goals (issue 10, 2-core machine):
<= 10 s, <= 30 s, <= 120 s in all, gap 0.

``--periods``: capacity planning over periods (issue 19): sizes WORKLOADSxGPU_TYPESxPERIODS. The
5 x 4 x 24 plan is the shipped ``fleet_horizon_example.toml``; the others are the generated fleets
above with a diurnal demand profile per workload (its own peak hour, a weekend dip every 7th day),
every GPU type reservable at the default ratio and spot on every second type. Prints the seconds for
candidates, baselines and solve, the wall time over the goal, the status with its proven gap and bound
(``--gap``: the target, default 0.1 %), the plan's USD and both baselines (everything on demand, exact
or the naive plan for large plans: ``on_demand_kind``; everything reserved at the peak) with the savings.
Goals (issue 19, 2-core machine): 5 x 4 x 24 <= 2 s; 200 x 8 x 168 <= 60 s, gap <= 0.1 %.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from infecon.instances.fleet_scenario import load_fleet_scenario
from infecon.solver.fleet.plan import plan_fleet

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "instances" / "scenarios" / "fleet_example.toml"
GPU_TYPES = ["h100_sxm", "h200", "a100_sxm", "mi300x", "b200", "l40s", "mi325x", "h20"]
MODELS = [("llama_3_8b", 16), ("llama_3_70b", 8), ("mixtral_8x7b", 16), ("mixtral_8x22b", 8), ("llama_3_1_405b", 8)]
GOALS_S = {(5, 4): 10.0, (50, 8): 30.0, (200, 8): 120.0}
HORIZON_EXAMPLE = ROOT / "instances" / "scenarios" / "fleet_horizon_example.toml"
HORIZON_GOALS_S = {(5, 4, 24): 2.0, (200, 8, 168): 60.0}


def generated_scenario(workloads: int, gpu_types: int, seed: int = 0) -> str:
    """A fleet scenario's TOML text: ``workloads`` traffic classes on the first ``gpu_types`` GPU types."""
    rng = np.random.default_rng(seed)
    lines = ['[fleet]', 'disaggregated = "allow"', '']
    for i, hardware in enumerate(GPU_TYPES[:gpu_types]):
        lines += ["[[gpu]]", f'hardware = "{hardware}"']
        if i % 2 == 0:
            lines.append(f"available = {int(rng.choice([8, 16, 32])) * max(1, workloads // 25)}")
        lines.append("")
    for i in range(workloads):
        model, bits = MODELS[i % len(MODELS)]
        isl = int(rng.choice([500, 1000, 2000, 4000, 8000]))
        osl = int(rng.choice([100, 200, 400, 800]))
        big = model == "llama_3_1_405b"
        lines += ["[[workload]]", f'name = "w{i:03d}-{model.replace("_", "-")}"', f'model = "{model}"',
                  f"isl = {isl}", f"osl = {osl}", f"requests_per_s = {float(rng.uniform(0.5, 20.0)):.2f}",
                  f"ttft_max_s = {float(rng.choice([1.0, 2.0, 4.0]) * (3 if big else 1)):.1f}",
                  f"tpot_max_s = {float(rng.choice([0.03, 0.05, 0.1]) * (3 if big else 1)):.2f}",
                  f"weight_bits = {bits}", ""]
    return "\n".join(lines)


def generated_horizon(workloads: int, gpu_types: int, periods: int, seed: int = 0) -> str:
    """``generated_scenario`` over ``periods`` hourly periods: a diurnal profile per workload, offers on every type."""
    rng = np.random.default_rng(seed + 1)
    text = generated_scenario(workloads, gpu_types, seed)
    lines = [f"[periods]\ncount = {periods}\n"]
    gpu = 0
    for line in text.splitlines():
        if line.startswith("requests_per_s = "):
            peak = float(line.split("=")[1])
            phase, low = rng.uniform(0, 24), rng.uniform(0.1, 0.5)
            hours = np.arange(periods)
            distance = np.minimum(np.abs(hours % 24 - phase), 24 - np.abs(hours % 24 - phase))
            profile = peak * (low + (1 - low) * np.exp(-(distance / 5.0) ** 2))
            profile *= np.where((hours // 24) % 7 == 6, 0.6, 1.0)  # a quieter day each week
            line = "requests_per_s = [" + ", ".join(f"{v:.2f}" for v in profile) + "]"
        lines.append(line)
        if line.startswith("hardware = "):
            lines.append("reserved = true")
            if gpu % 2 == 1:
                lines.append(f"spot_available = {int(rng.choice([8, 16, 32]))}")
            gpu += 1
    return "\n".join(lines) + "\n"


def bench_horizon(sizes: list[tuple[int, int, int]], *, jobs: int | None, time_limit_s: float | None,
                  ray: bool, rel_gap: float = 0.001) -> pd.DataFrame:
    from infecon.instances.fleet_horizon import load_horizon_scenario
    from infecon.solver.fleet.horizon import plan_horizon

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for workloads, gpu_types, periods in sizes:
            if (workloads, gpu_types, periods) == (5, 4, 24):
                path = HORIZON_EXAMPLE
            else:
                path = Path(folder) / f"horizon_{workloads}x{gpu_types}x{periods}.toml"
                path.write_text(generated_horizon(workloads, gpu_types, periods))
            start = time.perf_counter()
            plan = plan_horizon(load_horizon_scenario(path), jobs=jobs, ray=ray, time_limit_s=time_limit_s,
                                progress=False, rel_gap=rel_gap)
            wall = time.perf_counter() - start
            s = plan.summary
            goal = HORIZON_GOALS_S.get((workloads, gpu_types, periods))

            def pct(value):
                return None if value is None else round(value, 1)

            rows.append({
                "plan": f"{workloads} x {gpu_types} x {periods}", "candidates": s["candidates"],
                "distinct_periods": s["distinct_periods"], "candidates_s": round(s["candidates_s"], 1),
                "baselines_s": round(s["baselines_s"], 1), "solve_s": round(s["solve_s"], 1),
                "wall_s": round(wall, 1), "goal_s": goal, "wall_per_goal": None if not goal else round(wall / goal, 1),
                "status": s["status"], "gap_pct": None if s["gap"] is None else round(100 * s["gap"], 2),
                "usd": round(s["total_usd"], 2),
                "bound_usd": None if s["bound_usd"] is None else round(s["bound_usd"], 2),
                "on_demand_usd": None if s["on_demand_baseline_usd"] is None else round(s["on_demand_baseline_usd"], 2),
                "on_demand_kind": s["on_demand_baseline_status"],
                "reserved_at_peak_usd": None if s["reserved_at_peak_baseline_usd"] is None else
                round(s["reserved_at_peak_baseline_usd"], 2),
                "saving_vs_on_demand_pct": pct(s["saving_vs_on_demand_pct"]),
                "saving_vs_reserved_pct": pct(s["saving_vs_reserved_at_peak_pct"]),
                "reserved_gpus": sum(s["reserved_gpus"].values())})
            print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1), flush=True)
            print(f"  method: {s['method']}; baseline: {s['on_demand_baseline_method']}", flush=True)
    return pd.DataFrame(rows)


def limited_use(scenario, gpus_by_hardware: dict[str, int]) -> str:
    """GPUs used of each limited type, e.g. ``h100_sxm 64/64``: an inventory binds where the two are close."""
    return ", ".join(f"{g.key} {gpus_by_hardware.get(g.key, 0)}/{g.available}" for g in scenario.gpus
                     if g.available is not None)


def bench(sizes: list[tuple[int, int]], *, jobs: int | None, time_limit_s: float | None, ray: bool,
          backend: str = "milp") -> pd.DataFrame:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for workloads, gpu_types in sizes:
            if (workloads, gpu_types) == (5, 4):
                path = EXAMPLE
            else:
                path = Path(folder) / f"fleet_{workloads}x{gpu_types}.toml"
                path.write_text(generated_scenario(workloads, gpu_types))
            start = time.perf_counter()
            scenario = load_fleet_scenario(path)
            plan = plan_fleet(scenario, jobs=jobs, ray=ray, time_limit_s=time_limit_s,
                              progress=False, backend=backend)
            wall = time.perf_counter() - start
            s = plan.summary
            naive = s["naive_usd_per_hour"]
            goal = GOALS_S.get((workloads, gpu_types))
            rows.append({
                "fleet": f"{workloads} x {gpu_types}", "candidates": s["candidates"],
                "candidates_s": round(s["candidates_s"], 2), "solve_s": round(s["solve_s"], 2),
                "wall_s": round(wall, 2), "goal_s": goal, "met": "yes" if goal and wall <= goal else "no",
                "status": s["status"], "mip_gap": s["mip_gap"], "usd_per_hour": round(s["total_usd_per_hour"], 2),
                "naive_usd_per_hour": None if naive is None else round(naive, 2),
                "saving_pct": None if not naive else round(100 * (1 - s["total_usd_per_hour"] / naive), 1),
                "limited_used": limited_use(scenario, s["gpus_by_hardware"]), "method": s["backend"]})
            print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1), flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["5x4", "50x8", "200x8"], help="WORKLOADSxGPU_TYPES")
    parser.add_argument("--jobs", type=int, default=None, help="candidate worker processes (default: all cores)")
    parser.add_argument("--time-limit", type=float, default=None, help="seconds per solve (default: none)")
    parser.add_argument("--ray", action="store_true", help="generate candidates on a local Ray runtime")
    parser.add_argument("--backend", choices=["milp", "cpsat"], default="milp", help="fleet solver (default: milp)")
    parser.add_argument("--gap", type=float, default=0.001,
                        help="--periods: relative gap at which a plan counts as solved (default 0.001; 0: exact)")
    parser.add_argument("--periods", action="store_true", help="plans over periods: sizes WORKLOADSxGPU_TYPESxPERIODS "
                        "(default 5x4x24 50x8x168 200x8x168)")
    args = parser.parse_args()
    if args.periods:
        sizes = args.sizes if args.sizes != parser.get_default("sizes") else ["5x4x24", "50x8x168", "200x8x168"]
        table = bench_horizon([tuple(int(x) for x in size.lower().split("x")) for size in sizes], jobs=args.jobs,
                              time_limit_s=args.time_limit, ray=args.ray, rel_gap=args.gap)
        print()
        print(table.to_string(index=False))
        return
    sizes = [tuple(int(x) for x in size.lower().split("x")) for size in args.sizes]
    table = bench(sizes, jobs=args.jobs, time_limit_s=args.time_limit, ray=args.ray, backend=args.backend)
    print()
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
