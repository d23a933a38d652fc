"""How long ``infecon validate`` takes on a large measurement file (issue 21: 10,000 rows took 84 s; goal <= 5 s).

    python scripts/bench_validate.py [--rows 10000]

Repeats the development measurements (``../shared/measured/serving_dev.csv``) to ``--rows`` rows in a temporary
file and times reading and checking it (``validation.read_measurements``), predicting every row
(``validation.predict_frame``) and the summary by engine and hardware, in this process. Prints the seconds of each
part and the total. The rows repeat 91 distinct measurements: identical rows share one prediction (a distinct row
costs ~10 ms of physics), so this measures the per-row overhead the issue found (84 s), not the physics.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402 -- after the path insert, as scripts run from anywhere

from infecon.solver import validation  # noqa: E402

MEASUREMENTS = ROOT.parent / "shared" / "measured" / "serving_dev.csv"
if not MEASUREMENTS.is_file():
    MEASUREMENTS = Path("/work/shared/measured/serving_dev.csv")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000, help="rows in the generated file (default 10000)")
    args = parser.parse_args(argv)
    base = pd.read_csv(MEASUREMENTS, dtype=str, keep_default_na=False)
    repeats = -(-args.rows // len(base))
    frame = pd.concat([base] * repeats, ignore_index=True).iloc[:args.rows]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.csv"
        frame.to_csv(path, index=False)
        start = time.perf_counter()
        read = validation.read_measurements(path)
        read_s = time.perf_counter() - start
        start = time.perf_counter()
        predicted = validation.predict_frame(read)
        predict_s = time.perf_counter() - start
        start = time.perf_counter()
        validation.format_summary(validation.summary(predicted))
        summary_s = time.perf_counter() - start
    ok = int(predicted["status"].str.startswith("ok").sum())
    total = read_s + predict_s + summary_s
    print(f"{len(predicted)} rows ({ok} predicted, {len(frame.drop_duplicates())} distinct): read and check "
          f"{read_s:.2f} s, predict {predict_s:.2f} s, summary {summary_s:.2f} s, total {total:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
