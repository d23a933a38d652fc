"""How accurate is the serving model? In-sample and leave-one-group-out errors on measured data.

Each row is predicted with its engine family's profile (NIM with the TensorRT-LLM profile it runs,
``engines.WRAPPERS``; families without one with ``generic``), fitted by ``solver.calibration`` exactly
as ``infecon calibrate`` fits the shipped profiles, and reported under the family the row names.
Leave-one-group-out: each group (source x hardware) is predicted by a fit that never saw it
(``calibration.leave_one_group_out``). Prints median and p90 |predicted/measured - 1| of per-user
tokens/s, TPOT and TTFT (where measured) by engine family and overall, then whether the predicted
ordering of H200 and MI300X matches the measured one on the workloads both ran.

On aiconfigurator-core's silicon sample (``pip install '.[kernels]'``; read as it ships, rows of models
outside the catalogue skipped with a count) the tables are per engine, system and mode (closed_loop =
aggregated, disaggregated), with the shipped profiles' errors beside the refitted ones.

    python scripts/bench_fidelity.py [--data FILE.csv ...] [--no-held-out]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infecon.formulations.errors import InfeconError  # noqa: E402
from infecon.instances.engines import builtin_engine_names, get_engine  # noqa: E402
from infecon.solver import calibration, silicon  # noqa: E402
from infecon.solver.validation import read_measurements  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "measured" / "serving_dev.csv"
if not DEFAULT_DATA.is_file():  # a worktree (/work/wt/<name>) sits one level deeper than the main checkout
    DEFAULT_DATA = ROOT.parents[1] / "shared" / "measured" / "serving_dev.csv"


def own_family_predictions(frame: pd.DataFrame, held_out: bool = True):
    """(in-sample, held-out, generic fit, shipped) tables, each predictable row by its own family's profile.

    ``shipped``: the profiles as they ship (no refit on ``frame``): what a user gets today on these rows.
    """
    families = [n for n in builtin_engine_names() if n not in ("paper", "generic")]
    generic = calibration.calibrate(frame, "generic", held_out=held_out)
    inside, outside, shipped = [], [], []
    for family in families:
        rows, _ = calibration.prepare(frame, family)
        if not rows:
            continue
        fit = calibration.calibrate(frame, family, held_out=held_out)
        inside.append(fit.in_sample)
        outside.append(fit.held_out if held_out else fit.in_sample.iloc[0:0])
        shipped.append(calibration._table(rows, get_engine(family)))
    covered = set(pd.concat(inside)["index"]) if inside else set()
    inside.append(generic.in_sample[~generic.in_sample["index"].isin(covered)])
    if held_out:
        outside.append(generic.held_out[~generic.held_out["index"].isin(covered)])
    rest, _ = calibration.prepare(frame, None)
    rest = [r for r in rest if r.index not in covered]
    if rest:
        shipped.append(calibration._table(rest, get_engine("generic")))
    return (pd.concat(inside, ignore_index=True), pd.concat(outside, ignore_index=True), generic,
            pd.concat(shipped, ignore_index=True))


def _cells(table: pd.DataFrame, label: str) -> dict[str, str]:
    stats = calibration.error_stats(table)
    cells = {}
    for name in ("per_user", "tpot", "ttft"):
        med, p90 = stats[f"{name}_median"], stats[f"{name}_p90"]
        cells[f"{label} {name}"] = "-" if not np.isfinite(med) else f"{100 * med:.0f}/{100 * p90:.0f}"
    return cells


def error_table(tables: dict[str, pd.DataFrame], by: tuple[str, ...] = ("published",)) -> pd.DataFrame:
    """Median/p90 |error| (%) of per-user speed, TPOT and TTFT per group of ``by``, then per engine and overall.

    ``tables``: label -> per-row table (``calibration._table``), e.g. shipped, in-sample, leave-one-group-out.
    """
    first = next(iter(tables.values()))
    grouped = first.groupby(list(by) if len(by) > 1 else by[0]).groups
    keys = [tuple(k) if isinstance(k, tuple) else (k,) for k in grouped]
    if len(by) > 1:  # an engine's own total after its groups
        keys = [*sorted(set(keys)), *[(e, *("all",) * (len(by) - 1)) for e in sorted(first["published"].unique())]]
    keys.append(("overall", *("all",) * (len(by) - 1)))
    records = []
    for key in sorted(set(keys), key=lambda k: (k[0] == "overall", k[0], *(v == "all" for v in k[1:]), k[1:])):
        record = dict(zip(by, key, strict=True))
        for label, table in tables.items():
            pick = table
            for column, value in zip(by, key, strict=True):
                if value not in ("all", "overall"):
                    pick = pick[pick[column] == value]
            if label == next(iter(tables)):
                record["rows"] = len(pick)
            record.update(_cells(pick, label))
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


def report(path, frame: pd.DataFrame, held_out: bool, by: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Print the error tables of one measurement file; return (in-sample, held-out) tables."""
    t0 = time.perf_counter()
    inside, outside, generic, shipped = own_family_predictions(frame, held_out)
    skipped = frame.attrs.get("skipped", {})
    print(f"\n== {path}: {len(inside)} rows predicted" + (f"; {silicon.skipped_summary(skipped)}" if skipped else ""))
    print("|predicted/measured - 1| median/p90 %: shipped = the profiles as they ship, in = refitted on this file, "
          "logo = each group (source x hardware; silicon: system x engine x model) predicted by a fit without it")
    tables = {"shipped": shipped, "in": inside}
    if held_out:
        tables["logo"] = outside
    print(error_table(tables, by).to_string(index=False))
    print("every row with the generic profile refitted:")
    generic_tables = {"in": generic.in_sample.assign(published="generic")}
    if held_out:
        generic_tables["logo"] = generic.held_out.assign(published="generic")
    print(error_table(generic_tables).tail(1).to_string(index=False))
    print(f"({time.perf_counter() - t0:.0f} s)")
    return inside, outside


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append",
                        help="measurement CSV, repeatable (default: the development data and, with the kernels "
                             "extra installed, aiconfigurator-core's silicon sample)")
    parser.add_argument("--no-held-out", action="store_true", help="skip the leave-one-group-out refits")
    args = parser.parse_args(argv)
    paths = args.data
    if not paths:
        paths = [str(DEFAULT_DATA)]
        try:
            paths.append(str(silicon.shipped_sample_path()))
        except InfeconError as exc:
            print(f"silicon sample left out: {exc}")
    pd.set_option("display.width", 250)
    for path in paths:
        frame = read_measurements(path)
        silicon_file = bool(frame.attrs.get("skipped")) or "silicon" in Path(path).name
        by = ("published", "hardware", "mode") if silicon_file else ("published",)
        inside, outside = report(path, frame, not args.no_held_out, by)
        if not silicon_file:
            print("\nH200 vs MI300X, in-sample:")
            print(ordering(frame, inside))
            if not args.no_held_out:
                print("H200 vs MI300X, leave-one-group-out:")
                print(ordering(frame, outside))
    return 0


if __name__ == "__main__":
    sys.exit(main())
