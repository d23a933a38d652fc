"""How accurate is the serving model? In-sample and leave-one-group-out errors on measured data.

Each row is predicted with its engine family's profile (NIM with the TensorRT-LLM profile it runs,
``engines.WRAPPERS``; families without one with ``generic``), fitted by ``solver.calibration`` exactly
as ``infecon calibrate`` fits the shipped profiles, and reported under the family the row names.
Leave-one-group-out: each group (source x hardware) is predicted by a fit that never saw it
(``calibration.leave_one_group_out``). Prints median and p90 |predicted/measured - 1| of per-user
tokens/s, TPOT and TTFT (where measured) by engine family and overall, then whether the predicted
ordering of H200 and MI300X matches the measured one on the workloads both ran.

    python scripts/bench_fidelity.py [--data ../shared/measured/serving_dev.csv]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infecon.instances.engines import builtin_engine_names  # noqa: E402
from infecon.solver import calibration  # noqa: E402
from infecon.solver.validation import read_measurements  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "measured" / "serving_dev.csv"


def own_family_predictions(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(in-sample, held-out) tables with every predictable row predicted by its own family's profile."""
    families = [n for n in builtin_engine_names() if n not in ("paper", "generic")]
    generic = calibration.calibrate(frame, "generic")
    inside, outside = [], []
    for family in families:
        rows, _ = calibration.prepare(frame, family)
        if not rows:
            continue
        fit = calibration.calibrate(frame, family)
        inside.append(fit.in_sample)
        outside.append(fit.held_out)
    covered = set(pd.concat(inside)["index"]) if inside else set()
    inside.append(generic.in_sample[~generic.in_sample["index"].isin(covered)])
    outside.append(generic.held_out[~generic.held_out["index"].isin(covered)])
    return pd.concat(inside, ignore_index=True), pd.concat(outside, ignore_index=True), generic


def error_table(inside: pd.DataFrame, outside: pd.DataFrame) -> pd.DataFrame:
    records = []
    for family in [*sorted(inside["published"].unique()), "overall"]:
        pick_in = inside if family == "overall" else inside[inside["published"] == family]
        pick_out = outside if family == "overall" else outside[outside["published"] == family]
        record = {"engine": family, "rows": len(pick_in)}
        for label, table in (("in", pick_in), ("logo", pick_out)):
            stats = calibration.error_stats(table)
            for name in ("per_user", "tpot", "ttft"):
                med, p90 = stats[f"{name}_median"], stats[f"{name}_p90"]
                record[f"{label} {name} med/p90"] = "-" if not np.isfinite(med) else f"{100 * med:.0f}/{100 * p90:.0f}%"
        records.append(record)
    return pd.DataFrame(records)


def ordering(frame: pd.DataFrame, table: pd.DataFrame) -> str:
    """Measured vs predicted H200/MI300X speed ratio on each workload both ran (same model, engine, isl, osl, C)."""
    columns = ["model", "engine", "hardware", "isl", "osl", "concurrency"]
    keyed = frame.loc[table["index"], columns].reset_index(drop=True)
    joined = pd.concat([keyed, table[["measured_per_user", "predicted_per_user"]].reset_index(drop=True)], axis=1)
    key = ["model", "engine", "isl", "osl", "concurrency"]
    h200 = joined[joined["hardware"] == "h200"].set_index(key)
    mi300x = joined[joined["hardware"] == "mi300x"].set_index(key)
    shared = h200.index.intersection(mi300x.index)
    if len(shared) == 0:
        return "no workload measured on both H200 and MI300X"
    right = 0
    lines = []
    for k in shared:
        measured = float(h200.loc[k, "measured_per_user"]) / float(mi300x.loc[k, "measured_per_user"])
        predicted = float(h200.loc[k, "predicted_per_user"]) / float(mi300x.loc[k, "predicted_per_user"])
        right += (measured > 1) == (predicted > 1)
        lines.append(f"  {k[0]} {k[1]} isl {k[2]} osl {k[3]} C {k[4]}: H200/MI300X measured {measured:.2f}, "
                     f"predicted {predicted:.2f}")
    return "\n".join([f"ordering right on {right} of {len(shared)} shared workloads", *lines])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="measurement CSV (default: the development data)")
    args = parser.parse_args(argv)
    frame = read_measurements(args.data)
    inside, outside, generic = own_family_predictions(frame)
    pd.set_option("display.width", 200)
    print(f"{len(inside)} rows of {args.data}; |predicted/measured - 1| median/p90, in-sample (in) and "
          "leave-one-group-out (logo, group = source x hardware)")
    print("each row with its own engine family's profile (NIM: trtllm, which it runs; families without one: generic):")
    print(error_table(inside, outside).to_string(index=False))
    print("\nevery row with the generic profile:")
    print(error_table(generic.in_sample.assign(published="generic"), generic.held_out.assign(published="generic"))
          .tail(1).to_string(index=False))
    print("\nH200 vs MI300X, in-sample:")
    print(ordering(frame, inside))
    print("H200 vs MI300X, leave-one-group-out:")
    print(ordering(frame, outside))
    return 0


if __name__ == "__main__":
    sys.exit(main())
