"""Fuzz the ``infecon`` command for longer than CI does, and print each failure class once with an example.

    PYTHONPATH=. python scripts/fuzz_cli.py --argv 2000 --files 500

Draws command lines and mutated files from ``tests/cli_fuzz.py`` (the same strategies and oracle as
``tests/solver/test_cli_fuzz.py``), runs each in-process, and prints the counts by outcome and every
failure class with its first example. Exit code 1 if any run failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, given, settings  # noqa: E402 -- after the path insert, as scripts run from anywhere
from hypothesis import strategies as st  # noqa: E402

from tests.cli_fuzz import Outcome, any_argv, file_case, run_cli  # noqa: E402


def fuzz(strategy_name: str, examples: int, seed: int | None) -> list[Outcome]:
    """Run ``examples`` draws of one strategy family and return every outcome (failing ones included)."""
    outcomes: list[Outcome] = []
    if examples < 1:
        return outcomes

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=("generate",))
    @given(data=st.data())
    def run(data):
        if strategy_name == "argv":
            outcomes.append(run_cli(data.draw(any_argv())))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                outcomes.append(run_cli(data.draw(file_case(Path(tmp)))))

    if seed is not None:
        from hypothesis import seed as set_seed

        run = set_seed(seed)(run)
    run()
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--argv", type=int, default=1000, help="random command lines to run (default 1000)")
    parser.add_argument("--files", type=int, default=300, help="mutated files to run (default 300)")
    parser.add_argument("--seed", type=int, help="Hypothesis seed, to repeat a run")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    outcomes = fuzz("argv", args.argv, args.seed) + fuzz("files", args.files, args.seed)
    codes = Counter(o.code for o in outcomes)
    failures: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        failure = outcome.file_failure  # includes outcome.failure
        if failure is not None:
            failures.setdefault(failure, []).append(outcome)
    print(f"{len(outcomes)} runs ({args.argv} command lines, {args.files} files) in "
          f"{time.perf_counter() - start:.0f} s; exit codes: "
          + ", ".join(f"{code}: {count}" for code, count in sorted(codes.items(), key=lambda kv: str(kv[0]))))
    slowest = max(outcomes, key=lambda o: o.wall_s)
    print(f"slowest run {slowest.wall_s:.1f} s: infecon {' '.join(slowest.argv)}")
    print(f"{sum(len(v) for v in failures.values())} failed runs in {len(failures)} classes")
    for _name, members in sorted(failures.items(), key=lambda kv: -len(kv[1])):
        print(f"\n[{len(members)}x] {members[0].describe()}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
