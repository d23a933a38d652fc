"""Benchmark (issue 9): every backend's time per frontier at integer batch resolution, and the models' sizes.

    python scripts/bench_frontier.py [--max-batch 8192] [--cases llama mixtral deepseek] [--backends ...]

For each case of the issue's "done when" (Llama 3 70B / H100 at context 0, Mixtral 8x22B / H100 at
8,000, DeepSeek-V3 / H200 at 100,000 with 8-bit weights; the paper's decode-only model, every
integer batch up to ``--max-batch``), and on request DeepSeek-V3 / H200 under the generic engine
(closed loop, isl 8,000 / osl 1,000, 8-bit weights and KV) with both attention shardings searched
(``deepseek-serving``: every layout with TP > 1 twice) or heads only (``deepseek-serving-heads``), so
that the cost of searching attention data parallelism is measured, it prints one row per backend:
wall seconds for the whole frontier (start-up included), points, solves, whether the frontier
equals the enumeration's point for point (layout, attention sharding, batch, draft length; cost to
1e-9 relative), and the seconds of the two
single-point queries (``--min-speed`` at the frontier's median speed, ``--max-cost`` at its median
cost). A second table gives the MILP's and the CP-SAT model's rows and columns at max batch 64
and 8,192. Every number comes from this one run.

    python scripts/bench_frontier.py --percentiles [--repeats 3]

times instead the enumeration's frontier under serving SLOs on the mean and the same limits at p99
(``--slo-percentile 99``: TTFT and TPOT percentiles of every evaluated configuration), best of
``--repeats``, and prints their ratio (issue 22: at most 1.5).
"""

from __future__ import annotations

import argparse
import time
from unittest import mock

import numpy as np
import pandas as pd

from infecon.formulations.cpsat import build_cpsat
from infecon.formulations.milp import build_milp
from infecon.formulations.relaxation import build_options
from infecon.solver import api, enumeration
from infecon.solver.epsilon import solve_point, trace_frontier

SERVING = dict(engine="generic", isl=8000, osl=1000, weight_bits=8, kv_bits=8)
CASES = {
    "llama": ("llama-3-70b", "h100", dict(context_tokens=0)),
    "mixtral": ("mixtral-8x22b", "h100", dict(context_tokens=8000)),
    "deepseek": ("deepseek-v3", "h200", dict(context_tokens=100_000, weight_bits=8)),
    "deepseek-serving": ("deepseek-v3", "h200", dict(**SERVING, attention_dp="auto")),
    "deepseek-serving-heads": ("deepseek-v3", "h200", dict(**SERVING, attention_dp="off")),
}
DEFAULT_CASES = ["llama", "mixtral", "deepseek"]  # the paper's model; the serving cases on request
BACKENDS = ["enumerate", "milp", "cpsat"]


def problem_for(case: str, max_batch: int):
    """The case's problem: the paper's decode-only model unless the case names an engine."""
    model, hardware, kwargs = CASES[case]
    kwargs = {"engine": "paper", **kwargs}
    return api.build_problem(model, hardware, max_batch=max_batch, batch_mode="all", **kwargs)


def same_frontier(expected, actual) -> bool:
    if actual.layouts() != expected.layouts():
        return False
    a, b = (f.points["usd_per_million_tokens"].to_numpy() for f in (actual, expected))
    return bool(np.allclose(a, b, rtol=1e-9, atol=0))


def bench_case(case: str, max_batch: int, backends: list[str], time_limit_s: float) -> list[dict]:
    problem = problem_for(case, max_batch)
    rows, reference = [], None
    for backend in backends:
        start = time.perf_counter()
        frontier = trace_frontier(problem, backend, time_limit_s=None if backend == "enumerate" else time_limit_s)
        seconds = time.perf_counter() - start
        if reference is None:
            reference = frontier
        points = frontier.points
        speed = float(np.median(reference.points["tokens_per_second"]))
        cost = float(np.median(reference.points["usd_per_million_tokens"]))
        timings = {}
        for name, query in (("min_speed_s", dict(min_tokens_per_s=speed)),
                            ("max_cost_s", dict(max_usd_per_million_tokens=cost))):
            start = time.perf_counter()
            try:
                solve_point(problem, backend, time_limit_s=None if backend == "enumerate" else time_limit_s, **query)
                timings[name] = time.perf_counter() - start
            except Exception:  # a time limit: report it as such
                timings[name] = float("nan")
        rows.append({"case": case, "max_batch": max_batch, "backend": backend, "frontier_s": seconds,
                     "points": len(points), "solves": frontier.solves, "complete": frontier.complete,
                     "equals_enumeration": same_frontier(reference, frontier), **timings})
        print(pd.DataFrame([rows[-1]]).to_string(index=False, header=len(rows) == 1,
                                                 float_format=lambda v: f"{v:.2f}"), flush=True)
    return rows


# Serving problems with TTFT and TPOT limits: Llama 3.1 405B at the long prompts of issue 22 and Llama 3 70B.
SLO_CASES = {
    "llama-405b-long": ("llama-3-1-405b", "h200", dict(engine="generic", isl=9400, osl=680, weight_bits=8,
                                                       ttft_max_s=6.0, tpot_max_s=0.175)),
    "llama-70b-chat": ("llama-3-70b", "h100", dict(engine="generic", isl=2000, osl=500, ttft_max_s=1.0,
                                                   tpot_max_s=0.05)),
}


def configurations_evaluated(problem) -> int:
    """How many configurations ``enumerate_frontier`` evaluates (its skips are what the timings measure)."""
    counts = []
    real = enumeration.tabulate_rows

    def counting(problem, **rows):
        counts.append(len(rows["batch"]))
        return real(problem, **rows)

    with mock.patch.object(enumeration, "tabulate_rows", counting):
        enumeration.enumerate_frontier(problem)
    return sum(counts)


def bench_percentiles(repeats: int) -> pd.DataFrame:
    """Enumeration frontier seconds with SLOs on the mean and at p99 (best of ``repeats``), and their ratio."""
    rows = []
    for case, (model, hardware, kwargs) in SLO_CASES.items():
        problems = {label: api.build_problem(model, hardware, batch_mode="all", slo_percentile=percentile, **kwargs)
                    for label, percentile in (("mean", None), ("p99", 99.0))}
        seconds = dict.fromkeys(problems, float("inf"))
        points, evaluated = {}, {}
        for _ in range(repeats):  # interleaved, best of each: a shared machine's load hits both alike
            for label, problem in problems.items():
                start = time.perf_counter()
                frontier = trace_frontier(problem, "enumerate")
                seconds[label] = min(seconds[label], time.perf_counter() - start)
                points[label] = len(frontier.points)
        for label, problem in problems.items():  # untimed: configurations the enumeration evaluates
            evaluated[label] = configurations_evaluated(problem)
        rows.append({"case": case, "mean_s": seconds["mean"], "p99_s": seconds["p99"],
                     "ratio": seconds["p99"] / seconds["mean"], "points_mean": points["mean"],
                     "points_p99": points["p99"], "evaluated_mean": evaluated["mean"],
                     "evaluated_p99": evaluated["p99"]})
        print(pd.DataFrame([rows[-1]]).to_string(index=False, header=len(rows) == 1,
                                                 float_format=lambda v: f"{v:.3f}"), flush=True)
    return pd.DataFrame(rows)


def model_sizes(cases: list[str]) -> pd.DataFrame:
    rows = []
    for case in cases:
        for max_batch in (64, 8192):
            problem = problem_for(case, max_batch)
            options = build_options(problem)
            milp = build_milp(problem, options)
            cpsat = build_cpsat(problem, options).model.proto
            rows.append({"case": case, "max_batch": max_batch, "layouts": len(options.layouts), "options": len(options),
                         "milp_rows": len(milp.row_names), "milp_columns": len(milp.column_names),
                         "cpsat_constraints": len(cpsat.constraints), "cpsat_variables": len(cpsat.variables)})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=DEFAULT_CASES)
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=BACKENDS)
    parser.add_argument("--max-batch", type=int, default=8192)
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per solver frontier or query")
    parser.add_argument("--percentiles", action="store_true",
                        help="time the enumeration under mean and p99 SLOs instead (issue 22)")
    parser.add_argument("--repeats", type=int, default=3, help="--percentiles: best of this many runs")
    args = parser.parse_args()
    if args.percentiles:
        bench_percentiles(args.repeats)
        return
    backends = ["enumerate"] + [b for b in args.backends if b != "enumerate"]
    rows = []
    for case in args.cases:
        rows += bench_case(case, args.max_batch, backends, args.time_limit)
    print()
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print()
    print(model_sizes(args.cases).to_string(index=False))


if __name__ == "__main__":
    main()
