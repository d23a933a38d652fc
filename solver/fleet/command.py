"""The ``infecon fleet`` subcommand: parse arguments, call ``solver.fleet``, print and write. Nothing else."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from infecon.formulations.errors import InfeconError, InstanceError
from infecon.instances.fleet_horizon import has_periods, load_horizon_scenario
from infecon.instances.fleet_scenario import load_fleet_scenario
from infecon.solver.arguments import CONFIDENCE_HELP, knob, recipe_engine, worker_count
from infecon.solver.arguments import confidence as confidence_type
from infecon.solver.fleet import plan as fleet
from infecon.solver.fleet import report as fleet_report

FLEET_HELP = """\
A fleet scenario lists GPU types (with inventory and price), workloads (model, isl/osl, demand,
SLOs) and optional [fleet] settings:

  [fleet]
  budget_usd_per_hour = 400     # optional cap on the whole fleet
  whole_nodes = false           # true: GPUs of a type are rented in whole nodes
  disaggregated = "allow"       # "allow" | "never" | "only": separate prefill and decode pools
  confidence = 0.9              # optional: plan on the pessimistic end of the error band (--confidence)
  kv_transfer = "same_hardware" # a workload's prefill and decode pools on one GPU type; "same_vendor" | "any"
  engine = "generic"            # serving-engine profile (instances/engines/)
  max_gpus = 64                 # GPUs in one replica
  batch = "ladder"              # batch sizes searched: "ladder" (~1.4x apart) or "all"
  prefill_utilization = 0.7     # busy share a disaggregated prefill pool is sized for (sets its TTFT)
  max_pp = 4                    # engine limits for every workload (also memory_fraction, max_seqs);
                                # unset: the engine profile's; a [[workload]] may set its own
  [[gpu]]
  hardware = "h100_sxm"
  available = 64                # omit for unlimited
  price_usd_per_hour = 2.1      # omit for the hardware file's price
  [[workload]]
  name = "chat"
  model = "llama_3_70b"
  isl = 2000
  osl = 400
  requests_per_s = 12.0         # or output_tok_per_s
  ttft_max_s = 1.5              # optional SLOs
  tpot_max_s = 0.04
  slo_percentile = 99           # optional: the SLOs hold for 99 % of requests (default: the mean)
  weight_bits = 8               # optional (also kv_bits, engine, disaggregated, kv_transfer per workload)

Writes DIR/plan.csv and DIR/plan.parquet (one row per workload x deployment: workload, hardware,
mode, tp, pp, ep, batch, replicas, gpus, usd_per_hour, capacity_requests_per_s, ttft_s, tpot_s,
utilization, ...; gpus and usd_per_hour for all replicas of the row), DIR/summary.json (status,
total_usd_per_hour, naive_usd_per_hour, gpus_by_hardware, mip_gap, wall_s) and DIR/fleet.png.
'optimal' means proven optimal. With --frontier: DIR/frontier.csv, the exact Pareto frontier of
fleet cost against a common scale on every workload's TPOT limit. Bad input or an infeasible fleet
prints one line naming the rule and exits 2 without touching DIR.

Planning over time: a file with a [periods] table plans what to reserve for the whole horizon
and what to rent on demand or on spot in each period (see instances/scenarios/fleet_horizon_example.toml):

  [periods]
  count = 24                    # periods (e.g. 24 hours, 168 for a week)
  hours = 1.0                   # length of one period
  demand_csv = "demand.csv"     # optional: rows period,workload,requests_per_s
  [[gpu]]                       # available: reserved + on demand + spot GPUs in any period
  on_demand_usd_per_hour = 2.1  # default: the hardware file's price; on_demand = false: none
  reserved_usd_per_hour = 1.47  # or reserved = true: 0.70 x on demand (cited list prices)
  spot_available = [0, 8, ...]  # spot GPUs per period (a number or a list); spot_usd_per_hour:
                                # default 0.80 x on demand
  [[workload]]
  requests_per_s = [3.0, ...]   # one number per period (or a number, or the CSV)
  max_spot_share = 0.3          # at most this share of each pool's capacity on spot
  min_replicas = 2              # warm floor: replicas generating tokens in every period

Writes DIR/reservations.csv (GPU type, reserved GPUs, cost), DIR/schedule.csv and .parquet (period,
workload, hardware, mode, layout, batch, replicas, gpus, source, usd; idle GPUs paid for as mode
"idle"), DIR/summary.json (status, gap and the lower bound it is proven against, the method, total_usd,
the baselines "everything on demand" and "everything reserved at the peak", savings) and DIR/horizon.png
(GPUs in use by type and source, demand on a second axis). --time-limit defaults to 60 s for the
solve; a plan not proven optimal reports its gap and exits 3.

examples:
  infecon fleet instances/scenarios/fleet_example.toml --out out/fleet
  infecon fleet instances/scenarios/fleet_horizon_example.toml --out out/horizon   # 24 hours
  infecon fleet instances/scenarios/fleet_example.toml --out out/fleet --backend cpsat --time-limit 60
  infecon fleet instances/scenarios/fleet_example.toml --frontier --tpot-scale-max 1.0   # 70 fleets, ~40 s
  infecon fleet instances/scenarios/fleet_example.toml --frontier --tpot-scales 0.3,0.5,1  # three scales, ~2 s
  infecon fleet instances/scenarios/fleet_example.toml --ray                    # candidates on a local Ray
  infecon fleet instances/scenarios/fleet_example.toml --ray-address ray://head:10001
"""


def _scale_list(text: str) -> list[float]:
    """``0.5,0.75,1`` as scales, each in (0, 1000]."""
    convert = knob("tpot_scale_max")
    parts = [part.strip() for part in text.split(",")]
    if not all(parts):
        raise argparse.ArgumentTypeError(f"a comma-separated list of scales, e.g. 0.5,0.75,1 (got {text!r})")
    return [convert(part) for part in parts]


def _points_found():
    """On a terminal, a running count of frontier points on stderr (a frontier takes minutes); else nothing."""
    if not sys.stderr.isatty():
        return None
    start = time.perf_counter()

    def show(count: int) -> None:
        print(f"\r{count} Pareto-optimal fleets so far ({time.perf_counter() - start:.0f} s)", end="", file=sys.stderr,
              flush=True)
    return show


HORIZON_TIME_LIMIT_S = 60.0


def cmd_horizon(args: argparse.Namespace) -> int:
    """A file with [periods]: reservations and per-period rentals (``solver.fleet.horizon``)."""
    from infecon.solver.fleet import horizon, horizon_report

    if args.frontier:
        raise InstanceError(f"{args.file}: --frontier: a file with [periods] plans reservations over time; the TPOT "
                            f"frontier is for one-hour fleets (a file without [periods])")
    if args.recipe:
        raise InstanceError(f"{args.file}: --recipe: a file with [periods] has a schedule, not one plan; its recipes "
                            f"are those of each period's deployments (not written yet: plan one hour without "
                            f"[periods] to get them)")
    scenario = load_horizon_scenario(args.file)
    if args.confidence is not None:
        own = scenario.fleet.settings.confidence
        if own is not None and own != args.confidence:
            raise InstanceError(f"{args.file}: [fleet] confidence = {own:g} but --confidence {args.confidence:g}: "
                                "give one")
        fleet_scenario = dataclasses.replace(scenario.fleet, settings=dataclasses.replace(
            scenario.fleet.settings, confidence=args.confidence))
        scenario = dataclasses.replace(scenario, fleet=fleet_scenario)
    time_limit = HORIZON_TIME_LIMIT_S if args.time_limit is None else args.time_limit
    plan = horizon.plan_horizon(scenario, backend=args.backend, time_limit_s=time_limit, jobs=args.jobs,
                                ray=args.ray, ray_address=args.ray_address, progress=None)
    paths = horizon_report.write_horizon(plan, args.out) if args.out else []
    print(horizon_report.format_horizon(plan))
    if paths:
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0 if plan.status == "optimal" else 3


def cmd_fleet(args: argparse.Namespace) -> int:
    if has_periods(args.file):
        return cmd_horizon(args)
    scenario = load_fleet_scenario(args.file)
    if args.confidence is not None:
        own = scenario.settings.confidence
        if own is not None and own != args.confidence:
            raise InstanceError(f"{args.file}: [fleet] confidence = {own:g} but --confidence {args.confidence:g}: "
                                "give one")
        scenario = dataclasses.replace(scenario, settings=dataclasses.replace(scenario.settings,
                                                                              confidence=args.confidence))
    if scenario.settings.confidence is not None:
        print(f"at confidence {scenario.settings.confidence:g}: each candidate's capacity is the pessimistic end of "
              "its error band (reached with that probability), its TTFT and TPOT the matching high end")
    common = dict(backend=args.backend, time_limit_s=args.time_limit, jobs=args.jobs, ray=args.ray,
                  ray_address=args.ray_address, progress=None)
    if args.frontier and args.recipe:
        raise InfeconError("--recipe launches one plan's deployments; it does not apply to --frontier")
    if args.frontier:
        front = fleet.fleet_frontier(scenario, tpot_scale_max=args.tpot_scale_max, tpot_scales=args.tpot_scales,
                                     on_point=_points_found(), **common)
        if args.out:
            path = fleet_report.write_frontier(front, args.out)
        if sys.stderr.isatty():
            print(file=sys.stderr)
        print(fleet_report.format_frontier(front))
        if args.out:
            print(f"wrote {path}")
        return 0 if front.attrs["complete"] else 3
    plan = fleet.plan_fleet(scenario, **common)
    paths = fleet_report.write_plan(plan, args.out) if args.out else []
    print(fleet_report.format_plan(plan))
    if args.recipe:
        from infecon.solver.recipe_hooks import fleet_recipes, format_recipes, write_recipes

        items = fleet_recipes(plan, args.recipe)
        print(format_recipes(items), end="")
        if args.out:
            paths += write_recipes(items, f"{args.out}/recipes", args.recipe)
    if paths:
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0 if plan.status == "optimal" else 3


def register(subparsers) -> None:
    """Add the ``fleet`` subcommand to the ``infecon`` parser."""
    p = subparsers.add_parser(
        "fleet", help="least-cost fleet: replicas of which deployment on which GPU type serve every workload",
        description="Choose integer replica counts of candidate deployments (per workload x GPU type, from each "
                    "workload's exact frontier under its SLOs) that meet every demand within inventory and budget "
                    "at the least USD/hour, by MILP (HiGHS) or CP-SAT.",
        epilog=FLEET_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="SCENARIO.toml", help="fleet scenario (see below and "
                   "instances/scenarios/fleet_example.toml)")
    p.add_argument("--out", metavar="DIR", help="write plan.csv, plan.parquet, summary.json, fleet.png here (with "
                   "[periods]: reservations.csv, schedule.csv/.parquet, summary.json, horizon.png)")
    p.add_argument("--backend", choices=("auto", *fleet.FLEET_BACKENDS), default="auto",
                   help="milp (PuLP + HiGHS, CBC without highspy), cpsat, or auto (the default: HiGHS for one plan; "
                        "with --frontier CP-SAT for up to 5 s per solve, then the exact decomposition with HiGHS, as "
                        "CP-SAT is faster on most of its many small solves and far slower on a few)")
    p.add_argument("--time-limit", type=knob("time_limit_s"), metavar="S",
                   help="seconds per solve; a plan not proven optimal exits 3 and reports its MIP gap")
    p.add_argument("--frontier", action="store_true",
                   help="trace fleet cost against a common scale on all TPOT limits instead of one plan")
    p.add_argument("--tpot-scale-max", type=knob("tpot_scale_max"), default=1.0, metavar="X",
                   help="with --frontier: the loosest scale considered, in (0, 1000] (default 1: the scenario's own "
                        "limits; 2 also tries every TPOT limit up to twice as loose)")
    p.add_argument("--tpot-scales", type=_scale_list, metavar="LIST",
                   help="with --frontier: only these scales, e.g. 0.5,0.75,1 (one exact plan each, keeping those "
                        "cheaper than every tighter one; for large fleets, whose exact frontier can have thousands "
                        "of points); their largest replaces --tpot-scale-max")
    p.add_argument("--recipe", metavar="ENGINE", type=recipe_engine,
                   help="also print (and with --out write to DIR/recipes/) the launch recipe of every deployment of "
                        "the plan on vllm, sglang or trtllm: aggregated replicas, and each disaggregated "
                        "prefill/decode pair (SGLang PD or NVIDIA Dynamo)")
    scale = p.add_argument_group("candidate generation (one task per workload x GPU type)")
    scale.add_argument("--jobs", type=worker_count, default=None,
                       help="local worker processes (default: all cores; at most 4 per core); 1 runs in this "
                            "process")
    scale.add_argument("--ray", action="store_true", help="run the tasks on a local Ray runtime (pip install "
                       "'infecon[ray]')")
    scale.add_argument("--ray-address", metavar="ADDRESS",
                       help="join an existing Ray cluster instead (e.g. ray://head:10001 or auto)")
    p.add_argument("--confidence", type=confidence_type, metavar="P",
                   help=CONFIDENCE_HELP + " (or [fleet] confidence = P)")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_fleet)
