"""Fuzz the ``infecon`` command and API for longer than CI does, and print each failure class once with an example.

    PYTHONPATH=. python scripts/fuzz_cli.py --argv 2000 --files 500 --caps 300 --outputs 100 --api 300 --seed 21

Draws from ``tests/cli_fuzz.py`` (the same strategies and oracles as ``tests/solver/test_cli_fuzz.py``), runs each
in-process, and prints the counts by outcome and every failure class with its count and first example. Families:

- ``argv``: random command lines; ``files``: real files with fields dropped, retyped or scaled (exit-code oracle:
  exit 0 with finite numbers, exit 2 with one line, exit 3 on a time limit);
- ``caps`` (issue 21): frontiers and single-point queries with 1-4 caps: every output row must respect every cap;
- ``outputs`` (issue 21): ``--csv`` over an existing file, some runs failing and some interrupted mid-write: the old
  file survives a failed or interrupted run whole, a finished run replaces it whole, no temporary file is left;
- ``api`` (issue 21): a hardware, model or engine spec edited with ``dataclasses.replace`` to an odd value: refused
  with an ``InstanceError`` or answered with finite numbers, never a bare exception or a warning.

Exit code 1 if any run failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, given, settings  # noqa: E402 -- after the path insert, as scripts run from anywhere
from hypothesis import strategies as st  # noqa: E402

from tests.cli_fuzz import (  # noqa: E402
    any_argv,
    cap_failure,
    capped_argv,
    edited_spec,
    file_case,
    run_cli,
    run_edited_spec,
    run_with_existing_output,
    small_problem,
)

Result = tuple[str | None, str, object]  # (failure class or None, example description, exit code)


def _argv(data) -> Result:
    outcome = run_cli(data.draw(any_argv()))
    return outcome.failure, outcome.describe(), outcome.code


def _files(data) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        outcome = run_cli(data.draw(file_case(Path(tmp))))
    return outcome.file_failure, outcome.describe(), outcome.code


def _caps(data) -> Result:
    outcome = run_cli(data.draw(capped_argv()))
    failure = outcome.failure or cap_failure(outcome)
    return failure, f"{failure}: infecon {' '.join(outcome.argv)} -> exit {outcome.code}", outcome.code


def _outputs(data) -> Result:
    argv = ["frontier", *data.draw(small_problem()), "--max-batch", data.draw(st.sampled_from(("16", "x", "0")))]
    interrupt = data.draw(st.booleans())
    with tempfile.TemporaryDirectory() as tmp:
        outcome, failure = run_with_existing_output(argv, Path(tmp), interrupt=interrupt)
    failure = failure or (outcome.failure if not interrupt else None)
    what = "interrupted" if interrupt else "run"
    return failure, f"{failure}: {what} infecon {' '.join(outcome.argv)} -> exit {outcome.code}", outcome.code


def _api(data) -> Result:
    kind, name, value = data.draw(edited_spec())
    failure = run_edited_spec(kind, name, value)
    return failure, f"{failure}: dataclasses.replace({kind}, {name}={value!r})", "api"


FAMILIES: dict[str, Callable[[object], Result]] = {"argv": _argv, "files": _files, "caps": _caps,
                                                    "outputs": _outputs, "api": _api}


def fuzz(family: str, examples: int, seed: int | None) -> list[Result]:
    """Run ``examples`` draws of one family and return every result (failing ones included)."""
    results: list[Result] = []
    if examples < 1:
        return results

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=("generate",))
    @given(data=st.data())
    def run(data):
        results.append(FAMILIES[family](data))

    if seed is not None:
        from hypothesis import seed as set_seed

        run = set_seed(seed)(run)
    run()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for family, default in (("argv", 1000), ("files", 300), ("caps", 200), ("outputs", 100), ("api", 200)):
        parser.add_argument(f"--{family}", type=int, default=default, help=f"{family} runs (default {default})")
    parser.add_argument("--seed", type=int, help="Hypothesis seed, to repeat a run")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    failures: dict[str, list[str]] = {}
    total = 0
    for family in FAMILIES:
        results = fuzz(family, getattr(args, family), args.seed)
        total += len(results)
        codes = Counter(str(code) for _, _, code in results)
        failed = [r for r in results if r[0] is not None]
        print(f"{family}: {len(results)} runs, {len(failed)} failed; outcomes: "
              + ", ".join(f"{code}: {count}" for code, count in sorted(codes.items())))
        for failure, example, _ in failed:
            failures.setdefault(f"{family}: {failure}", []).append(example)
    print(f"{total} runs in {time.perf_counter() - start:.0f} s; "
          f"{sum(len(v) for v in failures.values())} failed runs in {len(failures)} classes")
    for name, examples in sorted(failures.items(), key=lambda kv: -len(kv[1])):
        print(f"\n[{len(examples)}x] {name}\n  e.g. {examples[0][:400]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
