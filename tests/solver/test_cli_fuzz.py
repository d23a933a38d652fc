"""Fuzzing the CLI (issue 11): random flags and values, and real files with fields dropped, retyped or scaled.

The only allowed outcomes are those of ``tests.cli_fuzz.Outcome.failure``: exit 0 with finite numbers,
exit 2 with one line and no traceback, exit 3 for a time limit (and explain's or plan's documented
exit 1). ``scripts/fuzz_cli.py`` runs many more examples and groups failures by class.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tests.cli_fuzz import (
    any_argv,
    cap_failure,
    capped_argv,
    edited_spec,
    file_case,
    mutated,
    run_cli,
    run_edited_spec,
    run_with_existing_output,
    small_problem,
    toml_text,
)

# In-process runs of small problems take ~10-100 ms each; these counts keep the module under a minute.
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FILES = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Issue 21's answer oracles, in CI with a fixed seed (the same draws every run) and a bounded budget (~30 s in all);
# scripts/fuzz_cli.py --caps/--outputs/--api runs more.
ANSWERS = settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(argv=any_argv())
def test_random_command_lines(argv):
    """Random options and odd values: exit 0 with finite numbers, or one line with exit 2, or exit 3 on a limit."""
    outcome = run_cli(argv)
    assert outcome.failure is None, outcome.describe()


@FILES
@given(data=st.data())
def test_mutated_files(data):
    """Real model, hardware, engine, sweep and plan files and config.json with 1-3 fields broken."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = data.draw(file_case(Path(tmp)))
        outcome = run_cli(argv)
        assert outcome.file_failure is None, outcome.describe()


@seed(21)
@ANSWERS
@given(argv=capped_argv())
def test_output_respects_every_cap(argv):
    """Frontiers and single-point queries with 1-4 caps: every row printed respects every cap given."""
    outcome = run_cli(argv)
    assert outcome.failure is None, outcome.describe()
    assert cap_failure(outcome) is None, outcome.describe()


@seed(21)
@settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_existing_output_survives(data):
    """--csv over an existing file: a failed or interrupted run leaves it whole; a finished one replaces it whole."""
    argv = ["frontier", *data.draw(small_problem()), "--max-batch", data.draw(st.sampled_from(("16", "x")))]
    with tempfile.TemporaryDirectory() as tmp:
        outcome, failure = run_with_existing_output(argv, Path(tmp), interrupt=data.draw(st.booleans()))
    assert failure is None, f"{failure}: {outcome.describe()}"


@seed(21)
@ANSWERS
@given(case=edited_spec())
def test_api_edited_spec_is_validated(case):
    """A spec edited with dataclasses.replace to an odd value: an InstanceError or a finite answer, never a bare
    exception."""
    assert run_edited_spec(*case) is None, case


class TestOracle:
    """The fuzzer's oracle and writers must themselves be right, or a green fuzz run means nothing."""

    @pytest.mark.parametrize(("argv", "expected"), [
        (["models"], None),
        (["frontier", "--model", "llama-3-8b", "--max-batch", "x"], None),
        (["explain", "--model", "llama-3-8b", "--tp", "3"], None),
    ])
    def test_allowed(self, argv, expected):
        assert run_cli(argv).failure is expected

    def test_escaping_exception_is_a_failure(self, monkeypatch):
        """An exception that escapes main is classified by its type."""
        from infecon.solver import api

        def boom(*args, **kwargs):
            raise OverflowError("Python int too large to convert to C long")

        monkeypatch.setattr(api, "frontier", boom)
        assert run_cli(["frontier", "--model", "llama-3-8b"]).failure == "exception OverflowError"

    def test_non_finite_output_is_a_failure(self, monkeypatch, capsys):
        from tests.cli_fuzz import Outcome

        bad = Outcome(("frontier",), 0, "tok/s 106.7 $/M inf", "", 0.1, None, ())
        assert bad.failure == "non-finite number in output"
        fine = Outcome(("frontier",), 0, "infecon information", "", 0.1, None, ())
        assert fine.failure is None

    def test_echoed_input_is_not_a_computed_nan(self, tmp_path):
        """validate echoes a model named 'inf' ("unknown model 'inf'"): the input's own word, not a result; a nan
        the input does not hold still fails."""
        from tests.cli_fuzz import Outcome, _input_echoes

        data = tmp_path / "m.csv"
        data.write_text("model,hardware\ninf,h100\n")
        echoes = _input_echoes(["validate", "--data", str(data)])
        assert echoes == frozenset({"inf"})
        echoed = Outcome(("validate",), 0, "row 2: unknown model 'inf'", "", 0.1, None, (), echoes)
        assert echoed.failure is None
        computed = Outcome(("validate",), 0, "row 2: unknown model 'inf'; bias nan", "", 0.1, None, (), echoes)
        assert computed.failure == "non-finite number in output"

    def test_huge_measurement_is_refused(self, tmp_path):
        """per_user_tok_s = 1e308 leaked a numpy overflow warning from validate; it is refused on read, naming row
        and column (a measured speed or time is at most 1e12)."""
        import csv

        from tests.cli_fuzz import MEASUREMENTS

        rows = list(csv.DictReader(MEASUREMENTS.open()))[:3]
        rows[0]["per_user_tok_s"] = "1e308"
        data = tmp_path / "m.csv"
        with data.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        outcome = run_cli(["validate", "--data", str(data)])
        assert outcome.failure is None and outcome.code == 2
        assert outcome.err.strip() == (f"infecon: error: {data}: row 2, column 'per_user_tok_s': must be a positive "
                                       "number <= 1e+12 (got '1e308')")

    def test_cap_oracle_sees_a_broken_cap(self):
        """A row over --max-gpus in the CSV is caught (the answer oracle can fail)."""
        from tests.cli_fuzz import Outcome

        csv = "tokens_per_second,usd_per_million_tokens,gpus,batch\n10,1,8,4\n"
        bad = Outcome(("frontier", "--format", "csv", "--max-gpus", "4"), 0, csv, "", 0.1, None, ())
        assert cap_failure(bad) == "cap max_gpus broken by an output row"
        good = Outcome(("frontier", "--format", "csv", "--max-gpus", "8"), 0, csv, "", 0.1, None, ())
        assert cap_failure(good) is None

    def test_output_oracle_sees_a_lost_file(self, tmp_path, monkeypatch):
        """Writing in place (as before issue 21) loses the old file on an interrupt: the oracle says so."""
        from infecon.solver import outputs

        monkeypatch.setattr(outputs, "write_atomically", lambda path, write: write(Path(path)))
        _, failure = run_with_existing_output(["frontier", "--model", "llama-3-8b", "--max-gpus", "1"], tmp_path,
                                              interrupt=True)
        assert failure == "output: an existing file lost in a failed or interrupted run"

    def test_api_oracle_sees_an_unvalidated_spec(self, monkeypatch):
        """With the API boundary's check switched off, a negative bandwidth escapes as a non-finite or bare error."""
        from infecon.solver import api

        monkeypatch.setattr(api, "check_hardware", lambda hw: hw)
        assert run_edited_spec("hardware", "hbm_bandwidth_bytes_per_s", -1.0) is not None

    def test_toml_writer_round_trips(self):
        """Every real file written back by the fuzzer's TOML writer parses to the same data."""
        import tomllib

        from infecon.instances.loader import HARDWARE_DIR, MODELS_DIR
        from tests.cli_fuzz import ENGINES_DIR, SCENARIOS_DIR

        for directory in (MODELS_DIR, HARDWARE_DIR, ENGINES_DIR, SCENARIOS_DIR):
            for path in directory.glob("*.toml"):
                data = tomllib.loads(path.read_text())
                assert tomllib.loads(toml_text(data)) == data, path

    @settings(max_examples=30, deadline=None)
    @given(data=st.data())
    def test_mutation_changes_something(self, data):
        """A mutated copy differs from its source (so every file case really is a broken file)."""
        base = {"a": 1, "b": {"value": 2.0, "source": "s"}, "c": {"d": "x"}}
        assert data.draw(mutated(base, allow_null=True)) != base
