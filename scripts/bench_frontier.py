"""Benchmark: time to draw each frontier with every backend, and the ratio to the enumeration, from one run.

    python scripts/bench_frontier.py [--models ...] [--contexts 0 100000] [--speculative]

Prints one row per (model, context, speculative): the number of configurations searched, the
frontier size, each backend's wall time (tabulation included, as a user sees it) and its ratio
to the enumeration's. Every backend's frontier is checked against the enumeration's on the way.
Targets (issue 3, 2-core machine): every backend under 2 s per frontier (5 s with speculative
decoding), the enumeration under 0.2 s.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from formulations.space import tabulate
from solver import api
from solver.epsilon import trace_frontier

MODELS = ["llama-3-8b", "llama-3-70b", "llama-3-1-405b", "mixtral-8x22b", "deepseek-v3"]
BACKENDS = ["enumerate", "cpsat", "milp"]


def time_backend(problem, backend: str) -> tuple[float, object]:
    """Wall seconds for one frontier from scratch: tabulation plus search."""
    start = time.perf_counter()
    frontier = trace_frontier(problem, backend)
    return time.perf_counter() - start, frontier


def bench(models: list[str], contexts: list[int], speculative: list[bool], hardware: str) -> pd.DataFrame:
    rows = []
    for model in models:
        for context in contexts:
            for spec in speculative:
                problem = api.build_problem(model, hardware, context_tokens=context,
                                            draft="llama-3-8b" if spec else None)
                row = {"model": model, "context": context, "speculative": spec, "configs": len(tabulate(problem))}
                reference = None
                for backend in BACKENDS:
                    seconds, frontier = time_backend(problem, backend)
                    if reference is None:
                        reference = frontier
                        row["points"] = len(frontier)
                    elif frontier.layouts() != reference.layouts():
                        raise SystemExit(f"{backend} disagrees with the enumeration on {model} context {context}")
                    row[f"{backend}_s"] = seconds
                for backend in BACKENDS[1:]:
                    row[f"{backend}_ratio"] = row[f"{backend}_s"] / row["enumerate_s"]
                rows.append(row)
                print(pd.DataFrame([row]).to_string(index=False, header=len(rows) == 1,
                                                    float_format=lambda v: f"{v:.3f}"), flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--contexts", nargs="+", type=int, default=[0, 100_000])
    parser.add_argument("--hardware", default="h100")
    parser.add_argument("--speculative", choices=["off", "on", "both"], default="both")
    args = parser.parse_args()
    spec = {"off": [False], "on": [True], "both": [False, True]}[args.speculative]
    table = bench(args.models, args.contexts, spec, args.hardware)
    print()
    print(table.to_markdown(index=False, floatfmt=".3f") if _has_tabulate() else table.to_string(index=False))
    worst = {b: table[f"{b}_s"].max() for b in BACKENDS}
    print("worst wall time per backend (s): " + ", ".join(f"{b} {t:.3f}" for b, t in worst.items()))


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
