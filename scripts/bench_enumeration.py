"""Benchmark: the enumeration at integer batch resolution, piece by piece against one whole table.

    python scripts/bench_enumeration.py [--cases readme llama mixtral deepseek] [--no-old]

For each case it prints, from this one run: the new path's seconds for the whole frontier
(``trace_frontier(problem, "enumerate")``, which walks the space with ``enumeration.enumerate_frontier``),
its points and runs, how many configurations the space holds up to what fits in HBM and how many it
evaluated, and the seconds of the two single-point queries (``--min-speed`` at the frontier's median
speed, ``--max-cost`` at its median cost); then the old path's seconds (``tabulate`` +
``pareto_indices`` + the frontier's rows) and whether the two frontiers are identical (every column,
canonical ``config_index`` included), or why the old path cannot run. Cases: the README example
(``infecon frontier --model llama-3-70b --hardware h100``: generic engine, closed loop, isl/osl 1024,
every integer batch up to what fits), and the issue's three spaces on the paper's decode-only model
with every integer batch up to 8,192 (Llama 3 70B / H100 at context 0, Mixtral 8x22B / H100 at 8,000,
DeepSeek-V3 / H200 at 100,000 with 8-bit weights).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from unittest import mock

import pandas as pd

from infecon.formulations.errors import InstanceError
from infecon.formulations.space import tabulate
from infecon.instances.loader import get_hardware
from infecon.solver import api, enumeration
from infecon.solver.enumeration import pareto_indices
from infecon.solver.epsilon import solve_point, trace_frontier
from infecon.solver.frontier import configuration_frame
from infecon.solver.reports import run_starts

CASES = {
    "readme": ("llama-3-70b", "h100", dict(engine="generic")),
    "llama": ("llama-3-70b", "h100", dict(engine="paper", context_tokens=0, max_batch=8192)),
    "mixtral": ("mixtral-8x22b", "h100", dict(engine="paper", context_tokens=8000, max_batch=8192)),
    "deepseek": ("deepseek-v3", "h200", dict(engine="paper", context_tokens=100_000, weight_bits=8, max_batch=8192)),
    # Measured GEMM curves (instances/kernels/) against the same hardware with the flat curve (--cases to pick):
    "trtllm_curves": ("llama-3-70b", "h100", dict(engine="trtllm", weight_bits=8, kv_bits=8)),
    "trtllm_flat": ("llama-3-70b", "h100 flat", dict(engine="trtllm", weight_bits=8, kv_bits=8)),
    "dsv3_trtllm_curves": ("deepseek-v3", "h200", dict(engine="trtllm", weight_bits=8, kv_bits=8)),
    "dsv3_trtllm_flat": ("deepseek-v3", "h200 flat", dict(engine="trtllm", weight_bits=8, kv_bits=8)),
}


def hardware_of(name: str):
    """A built-in hardware, or with ' flat' its spec without measured kernel curves (today's constants)."""
    if name.endswith(" flat"):
        return dataclasses.replace(get_hardware(name.removesuffix(" flat")), kernel_curves={}, measured_kernels={})
    return name


def new_path(problem) -> tuple[pd.DataFrame, float, int]:
    """(frontier rows, seconds, configurations evaluated) of the piecewise enumeration."""
    evaluated = [0]
    real = enumeration.tabulate_rows

    def counting(problem, **rows):
        evaluated[0] += len(rows["batch"])
        return real(problem, **rows)

    with mock.patch.object(enumeration, "tabulate_rows", counting):
        start = time.perf_counter()
        points = trace_frontier(problem, "enumerate").points
        seconds = time.perf_counter() - start
    return points, seconds, evaluated[0]


def old_path(problem) -> tuple[pd.DataFrame | None, float, str]:
    """(frontier rows, seconds, note) of one table of every configuration, or (None, nan, why not)."""
    start = time.perf_counter()
    try:
        table = tabulate(problem)
    except InstanceError as exc:
        return None, float("nan"), f"refused: {exc}"
    points = configuration_frame(table, pareto_indices(table))
    return points, time.perf_counter() - start, ""


def bench(case: str, run_old: bool) -> dict:
    model, hardware, kwargs = CASES[case]
    problem = api.build_problem(model, hardware_of(hardware), **kwargs)
    space = enumeration._Space(problem)
    points, seconds, evaluated = new_path(problem)
    row = {"case": case, "model": model, "hardware": hardware, "max_batch": space.axis.largest,
           "layouts": len(space.layouts), "fitting_configs": int(space.fitting.sum()), "evaluated": evaluated,
           "new_s": seconds, "points": len(points), "runs": len(run_starts(points))}
    speed, cost = float(points["tokens_per_second"].median()), float(points["usd_per_million_tokens"].median())
    for name, query in (("min_speed_s", dict(min_tokens_per_s=speed)),
                        ("max_cost_s", dict(max_usd_per_million_tokens=cost))):
        start = time.perf_counter()
        solve_point(problem, "enumerate", **query)
        row[name] = time.perf_counter() - start
    if run_old:
        old, old_seconds, note = old_path(problem)
        identical = ""
        if old is not None:
            try:
                pd.testing.assert_frame_equal(points, old)
                identical = "yes"
            except AssertionError:
                identical = "NO"
        row.update(old_s=old_seconds, identical=identical, note=note)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--no-old", action="store_true", help="skip the old path (one whole table)")
    args = parser.parse_args()
    rows = [bench(case, not args.no_old) for case in args.cases]
    frame = pd.DataFrame(rows)
    notes = frame.pop("note") if "note" in frame else None
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if notes is not None:
        for case, note in zip(frame["case"], notes, strict=True):
            if note:
                print(f"{case}: old path {note}")


if __name__ == "__main__":
    main()
