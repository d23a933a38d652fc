"""Benchmark (issue 9, serving): the solver backends on the serving model, against the enumeration.

    python scripts/bench_serving.py [--max-batch 512] [--engines generic vllm ...] [--modes closed_loop ...]

For each shipped engine profile and each serving mode (decode only, static batch, closed loop,
disaggregated), Llama 3 70B on H100 at isl 2,000 / osl 500, every integer batch up to ``--max-batch``,
with a TTFT cap of ``--ttft-max`` seconds and a TPOT cap of ``--tpot-max`` seconds (the CLI's SLOs),
it prints one row per backend: wall seconds for the whole frontier (start-up included), points,
solves, and whether the frontier equals the enumeration's point for point (layout, batch; cost to
1e-9 relative). The last line counts the agreeing frontiers. Every number comes from this one run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from infecon.formulations.specs import SERVING_MODES
from infecon.instances.engines import builtin_engine_names
from infecon.solver import api
from infecon.solver.epsilon import trace_frontier

SOLVERS = ["milp", "cpsat"]


def same_frontier(expected, actual) -> bool:
    if not actual.complete or actual.layouts() != expected.layouts():
        return False
    a, b = (f.points["usd_per_million_tokens"].to_numpy() for f in (actual, expected))
    return bool(np.allclose(a, b, rtol=1e-9, atol=0))


def bench(engine: str, mode: str, args) -> list[dict]:
    problem = api.build_problem("llama-3-70b", "h100", engine=engine, mode=mode, isl=2000, osl=500,
                                ttft_max_s=args.ttft_max, tpot_max_s=args.tpot_max, max_batch=args.max_batch,
                                max_gpus=args.max_gpus, batch_mode="all")
    rows, reference = [], None
    for backend in ["enumerate", *args.backends]:
        start = time.perf_counter()
        frontier = trace_frontier(problem, backend, time_limit_s=None if backend == "enumerate" else args.time_limit)
        seconds = time.perf_counter() - start
        reference = reference or frontier
        rows.append({"engine": engine, "mode": mode, "backend": backend, "frontier_s": seconds,
                     "points": len(frontier), "solves": frontier.solves,
                     "equals_enumeration": same_frontier(reference, frontier)})
        print(pd.DataFrame([rows[-1]]).to_string(index=False, header=False, float_format=lambda v: f"{v:.2f}"),
              flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", nargs="+", default=list(builtin_engine_names()))
    parser.add_argument("--modes", nargs="+", choices=SERVING_MODES, default=list(SERVING_MODES))
    parser.add_argument("--backends", nargs="+", choices=SOLVERS, default=SOLVERS)
    parser.add_argument("--max-batch", type=int, default=512)
    parser.add_argument("--max-gpus", type=int, default=64)
    parser.add_argument("--ttft-max", type=float, default=1.0, help="seconds (default 1, the issue's example)")
    parser.add_argument("--tpot-max", type=float, default=0.05, help="seconds")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per solver frontier")
    args = parser.parse_args()
    print("engine mode backend frontier_s points solves equals_enumeration")
    rows = []
    for engine in args.engines:
        for mode in args.modes:
            rows += bench(engine, mode, args)
    table = pd.DataFrame(rows)
    print()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    solved = table[table.backend != "enumerate"]
    print(f"\n{int(solved.equals_enumeration.sum())} of {len(solved)} solver frontiers equal the enumeration's")
    print(table.groupby("backend").frontier_s.median().rename("median_frontier_s").to_string())


if __name__ == "__main__":
    main()
