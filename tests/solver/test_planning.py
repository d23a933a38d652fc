"""Tests for ``solver.planning``: plan format, recommendations, failures, resumption and ``infecon plan``."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from infecon.formulations.errors import InstanceError
from infecon.instances.loader import INSTANCES_DIR
from infecon.solver import api, planning
from infecon.solver.cli import main
from infecon.solver.frontier import CONTRACT_COLUMNS
from infecon.solver.planning import load_plan, run_plan

EXAMPLE = INSTANCES_DIR / "scenarios" / "plan_example.toml"

GOOD = """\
[defaults]
hardware = "h100"
alpha = 3

[[scenario]]
name = "chat-70b"
model = "llama-3-70b"
isl = 7500
osl = 1000
min_speed = 50

[[scenario]]
name = "cheap-8b"
model = "llama-3-8b"
alpha = 1.5
"""


def plan_file(tmp_path: Path, text: str, name: str = "plan.toml") -> Path:
    """Write a plan file and return its path."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def rows(table: pd.DataFrame, name: str) -> pd.DataFrame:
    return table[table["scenario"] == name].reset_index(drop=True)


class TestPlanFormat:
    """Reading a plan: defaults, overrides and every validation error."""

    def test_defaults_apply_and_scenarios_override(self, tmp_path):
        """[defaults] fill in every scenario; a scenario's own value wins; min_speed beats alpha."""
        chat, cheap = load_plan(plan_file(tmp_path, GOOD))
        assert chat.kwargs["hardware"] == cheap.kwargs["hardware"] == "h100"
        assert chat.rule == {"rule": "min_speed", "min_speed": 50}
        assert cheap.rule == {"rule": "alpha", "alpha": 1.5}
        assert chat.kwargs["isl"] == 7500 and "isl" not in cheap.kwargs

    def test_default_alpha_is_the_papers(self, tmp_path):
        """With neither min_speed nor alpha the recommendation uses the paper's alpha = 3."""
        (only,) = load_plan(plan_file(tmp_path, '[[scenario]]\nname = "a"\nmodel = "llama-3-8b"\n'))
        assert only.rule == {"rule": "alpha", "alpha": planning.DEFAULT_ALPHA} and planning.DEFAULT_ALPHA == 3

    def test_scenario_model_file_replaces_default_model(self, tmp_path):
        """A scenario's model_file replaces a default model name instead of clashing with it."""
        model = INSTANCES_DIR / "models" / "llama_3_8b.toml"
        path = plan_file(tmp_path, f'[defaults]\nmodel = "llama-3-70b"\n[[scenario]]\nname = "a"\n'
                                   f'model_file = "{model}"\n')
        (only,) = load_plan(path)
        assert only.kwargs["model"] == str(model)

    @pytest.mark.parametrize(("text", "expected"), [
        ('[[scenario]]\nname = "a"\nmodel = "llama-3-8b"\ncontxt = 8000\n', "scenario 'a': unknown field 'contxt'"),
        ('[[scenario]]\nname = "a"\nmodel = "llama-3-8b"\ncontext = "8k"\n',
         "scenario 'a': 'context' must be an integer (got '8k')"),
        ('[[scenario]]\nname = "a"\nmodel = "llama-3-8b"\nprice = "cheap"\n', "'price' must be a number"),
        ('[[scenario]]\nname = "a"\nmodel = "llama-3-8b"\nweight_bits = 8.0\n', "'weight_bits' must be an integer"),
        ('[[scenario]]\nname = "a"\nmodel = 70\n', "'model' must be a non-empty string"),
        ('[[scenario]]\nname = "a"\nmodel = "llama-3-8b"\nmin_speed = 0\n', "'min_speed' must be a number > 0"),
        ('[[scenario]]\nname = "a"\nmodel = "llama-3-8b"\nalpha = -1\n', "'alpha' must be a number >= 0"),
        ('[[scenario]]\nname = "a"\nmodel = "llama-3-8b"\n[[scenario]]\nname = "a"\nmodel = "llama-3-8b"\n',
         "scenario 'a': duplicate name (scenarios #1 and #2)"),
        ('[[scenario]]\nname = "a/b"\nmodel = "llama-3-8b"\n', "'name' must be 1-100 letters"),
        ('[[scenario]]\nmodel = "llama-3-8b"\n', "scenario #1: missing required field 'name'"),
        ('[[scenario]]\nname = "a"\n', "scenario 'a': missing required field 'model'"),
        ('[[scenario]]\nname = "a"\nmodel = "llama-3-8b"\nacceptance = 0.7\n', "'acceptance' needs 'draft'"),
        ('[defaults]\nhardwre = "h100"\n[[scenario]]\nname = "a"\nmodel = "llama-3-8b"\n',
         "[defaults]: unknown field 'hardwre'"),
        ('[defaults]\nname = "x"\n[[scenario]]\nname = "a"\nmodel = "llama-3-8b"\n', "cannot set 'name'"),
        ('[default]\nhardware = "h100"\n[[scenario]]\nname = "a"\nmodel = "llama-3-8b"\n', "unknown field 'default'"),
        ('[defaults]\nhardware = "h100"\n', "expected at least one [[scenario]] table"),
    ])
    def test_malformed_plan_is_rejected(self, tmp_path, text, expected):
        """Each malformed plan raises an InstanceError naming the file, the scenario and the field."""
        path = plan_file(tmp_path, text)
        with pytest.raises(InstanceError) as info:
            load_plan(path)
        assert str(info.value).startswith(str(path))
        assert expected in str(info.value)

    def test_malformed_plan_exits_2(self, tmp_path, capsys):
        """The command turns a malformed plan into exit code 2 and one line on stderr."""
        path = plan_file(tmp_path, '[[scenario]]\nname = "a"\nmodel = "llama-3-8b"\ncontxt = 1\n')
        assert main(["plan", str(path), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "contxt" in err


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> tuple[pd.DataFrame, Path]:
    """The GOOD plan solved once in-process: the returned table and the output folder."""
    folder = tmp_path_factory.mktemp("plan")
    return run_plan(plan_file(folder, GOOD), folder / "out", jobs=1), folder / "out"


@pytest.fixture
def table(good_run) -> pd.DataFrame:
    return good_run[0]


class TestRecommendation:
    """The recommended point of each rule, checked against the frontier itself."""

    def test_one_recommended_point_per_scenario(self, table):
        """Each scenario's rows are its whole frontier, exactly one of them recommended."""
        assert list(table.columns[:len(CONTRACT_COLUMNS) + 1]) == ["scenario", *CONTRACT_COLUMNS]
        assert list(table.columns[-3:]) == ["recommended", "status", "error"]
        for name, kwargs in (("chat-70b", {"model": "llama-3-70b", "isl": 7500, "osl": 1000}),
                             ("cheap-8b", {"model": "llama-3-8b"})):
            group = rows(table, name)
            assert group["recommended"].sum() == 1
            assert (group["status"] == "ok").all() and group["error"].isna().all()
            frontier = api.frontier(hardware="h100", engine="generic", **kwargs).points  # the plan's default
            np.testing.assert_allclose(group["usd_per_million_tokens"], frontier["usd_per_million_tokens"])

    def test_speed_target_gives_the_cheapest_point_meeting_it(self, table):
        """With min_speed 50 the recommended point is the cheapest frontier point at >= 50 tok/s."""
        frontier = api.frontier("llama-3-70b", "h100", isl=7500, osl=1000, engine="generic").points
        meeting = frontier[frontier["tokens_per_second"] >= 50]
        best = meeting.loc[meeting["usd_per_million_tokens"].idxmin()]
        chosen = rows(table, "chat-70b").query("recommended").iloc[0]
        assert chosen["tokens_per_second"] >= 50
        assert chosen["usd_per_million_tokens"] == pytest.approx(best["usd_per_million_tokens"])
        assert chosen["config_index"] == best["config_index"]
        # The target binds: the next cheaper frontier point is slower than 50 tok/s.
        assert frontier[frontier["usd_per_million_tokens"] < best["usd_per_million_tokens"]][
            "tokens_per_second"].max() < 50

    def test_alpha_gives_the_preference_maximizer(self, table):
        """With alpha 1.5 the recommended point maximizes tok/s^1.5 / cost over the frontier (paper eq. 45)."""
        group = rows(table, "cheap-8b")
        score = group["tokens_per_second"] ** 1.5 / group["usd_per_million_tokens"]
        assert group.loc[score.idxmax(), "recommended"]
        assert score[group["recommended"]].iloc[0] == score.max()

    def test_parquet_and_csv_are_written_and_equal(self, good_run):
        """plan.parquet and plan.csv hold the same table as the one returned."""
        table, out = good_run
        parquet = pd.read_parquet(out / "plan.parquet")
        csv = pd.read_csv(out / "plan.csv")
        pd.testing.assert_frame_equal(parquet, csv, check_dtype=False)
        pd.testing.assert_frame_equal(parquet, table, check_dtype=False)
        assert not list(out.glob(".*.tmp"))


class TestFailures:
    """A failing scenario is reported and never stops the others."""

    BAD = GOOD + """
[[scenario]]
name = "typo"
model = "llama-3-7b"

[[scenario]]
name = "too-fast"
model = "llama-3-70b"
min_speed = 100000

[[scenario]]
name = "no-fit"
model = "llama-3-1-405b"
max_gpus = 1
"""

    @pytest.mark.parametrize("jobs", [1, 2])
    def test_failed_scenarios_among_good_ones(self, tmp_path, jobs):
        """Good scenarios keep all their rows; each failed one is one row with status failed and its reason."""
        table = run_plan(plan_file(tmp_path, self.BAD), tmp_path / "out", jobs=jobs)
        assert list(dict.fromkeys(table["scenario"])) == ["chat-70b", "cheap-8b", "typo", "too-fast", "no-fit"]
        for name in ("chat-70b", "cheap-8b"):
            assert len(rows(table, name)) > 5 and (rows(table, name)["status"] == "ok").all()
        reasons = {"typo": "unknown model 'llama-3-7b'", "too-fast": "target speed unreachable",
                   "no-fit": "hbm_capacity"}
        for name, reason in reasons.items():
            row = rows(table, name)
            assert len(row) == 1
            assert row["status"].iloc[0] == "failed" and not row["recommended"].iloc[0]
            assert reason in row["error"].iloc[0]
            assert np.isnan(row["tokens_per_second"].iloc[0])
            assert reason in table.attrs["failed"][name]
        assert not (tmp_path / "out" / "scenarios" / "typo.parquet").exists()

    def test_command_exit_code_and_summary(self, tmp_path, capsys):
        """The command exits 1 and prints one FAILED line per failed scenario, 0 when all succeed."""
        assert main(["plan", str(plan_file(tmp_path, self.BAD)), "--out", str(tmp_path / "bad"), "--jobs", "1"]) == 1
        out = capsys.readouterr().out
        assert sum(line.startswith("FAILED ") for line in out.splitlines()) == 3
        assert "FAILED typo: unknown model 'llama-3-7b'" in out
        assert main(["plan", str(plan_file(tmp_path, GOOD, "good.toml")), "--out", str(tmp_path / "good")]) == 0


class TestResume:
    """Finished scenarios are stored with their settings hash and skipped when unchanged."""

    def test_second_run_skips_everything(self, tmp_path, monkeypatch):
        """A re-run loads every scenario from the store without solving, and returns the same table."""
        path = plan_file(tmp_path, GOOD)
        first = run_plan(path, tmp_path / "out", jobs=1)
        assert first.attrs["skipped"] == 0 and first.attrs["ran"] == ["chat-70b", "cheap-8b"]
        stored = tmp_path / "out" / "scenarios" / "chat-70b.parquet"
        mtime = stored.stat().st_mtime_ns

        def fail(scenario):
            raise AssertionError(f"{scenario.name} was recomputed")

        monkeypatch.setattr(planning, "solve_scenario", fail)
        second = run_plan(path, tmp_path / "out", jobs=1)
        assert second.attrs["skipped"] == 2 and second.attrs["ran"] == []
        assert stored.stat().st_mtime_ns == mtime
        pd.testing.assert_frame_equal(second, first)

    def test_changed_scenario_reruns_alone(self, tmp_path, monkeypatch):
        """Editing one scenario's settings recomputes that scenario only."""
        path = plan_file(tmp_path, GOOD)
        run_plan(path, tmp_path / "out", jobs=1)
        path.write_text(GOOD.replace("isl = 7500", "isl = 15500"))
        calls = []
        original = planning.solve_scenario
        monkeypatch.setattr(planning, "solve_scenario", lambda s: calls.append(s.name) or original(s))
        table = run_plan(path, tmp_path / "out", jobs=1)
        assert calls == ["chat-70b"]
        assert table.attrs["skipped"] == 1
        expected = api.frontier("llama-3-70b", "h100", isl=15500, osl=1000, engine="generic").points
        np.testing.assert_allclose(rows(table, "chat-70b")["tokens_per_second"], expected["tokens_per_second"])

    def test_changed_default_alpha_reruns_only_alpha_scenarios(self, tmp_path):
        """The hash covers the rule actually used, so a new default alpha leaves a min_speed scenario alone."""
        path = plan_file(tmp_path, GOOD.replace("alpha = 1.5\n", ""))
        run_plan(path, tmp_path / "out", jobs=1)
        path.write_text(GOOD.replace("alpha = 1.5\n", "").replace("alpha = 3", "alpha = 2"))
        table = run_plan(path, tmp_path / "out", jobs=1)
        assert table.attrs["ran"] == ["cheap-8b"] and table.attrs["skipped"] == 1

    def test_no_resume_recomputes_all(self, tmp_path, capsys):
        """--no-resume recomputes every scenario; a plain re-run prints how many it skipped."""
        path = str(plan_file(tmp_path, GOOD))
        out = str(tmp_path / "out")
        assert main(["plan", path, "--out", out, "--jobs", "1"]) == 0
        assert main(["plan", path, "--out", out, "--jobs", "1"]) == 0
        assert "skipped 2 done" in capsys.readouterr().out
        assert main(["plan", path, "--out", out, "--jobs", "1", "--no-resume"]) == 0
        assert "2 scenarios computed, skipped 0 done" in capsys.readouterr().out

    def test_corrupt_store_file_is_recomputed(self, tmp_path):
        """A truncated scenario file is not trusted: the scenario is solved again."""
        path = plan_file(tmp_path, GOOD)
        run_plan(path, tmp_path / "out", jobs=1)
        (tmp_path / "out" / "scenarios" / "cheap-8b.parquet").write_bytes(b"PAR1 truncated")
        table = run_plan(path, tmp_path / "out", jobs=1)
        assert table.attrs["ran"] == ["cheap-8b"]


class TestExample:
    """The shipped example plan."""

    def test_example_plan_runs_in_parallel(self, tmp_path):
        """Every scenario of plan_example.toml succeeds with two workers, and it covers each kind of scenario."""
        scenarios = load_plan(EXAMPLE)
        assert 4 <= len(scenarios) <= 6
        assert any(s.min_speed is not None for s in scenarios)
        assert any(s.min_speed is None for s in scenarios)
        assert any("demand_tokens_per_s" in s.kwargs for s in scenarios)
        assert any("draft" in s.kwargs for s in scenarios)
        table = run_plan(EXAMPLE, tmp_path / "out", jobs=2)
        assert not table.attrs["failed"]
        assert (table.groupby("scenario")["recommended"].sum() == 1).all()
        assert sorted(os.listdir(tmp_path / "out" / "scenarios")) == sorted(f"{s.name}.parquet" for s in scenarios)

    @pytest.mark.parametrize("jobs", [0, -1, 10**6, 2.0, True])
    def test_jobs_must_be_bounded(self, tmp_path, jobs):
        """jobs outside 1..4 per core (or not an integer) is refused before any work, naming the bound."""
        with pytest.raises(InstanceError, match=r"'jobs' must be an integer in \[1, \d+\] \(at most 4 worker"):
            run_plan(EXAMPLE, tmp_path / "out", jobs=jobs)
        assert not (tmp_path / "out").exists()

    @pytest.mark.parametrize("value", ["0", "100000", "x"])
    def test_cli_jobs_is_bounded(self, tmp_path, capsys, value):
        """--jobs 100000 used to fork until memory ran out; now one line naming --jobs and its bound, exit 2."""
        with pytest.raises(SystemExit) as exit_info:
            main(["plan", str(EXAMPLE), "--out", str(tmp_path / "out"), "--jobs", value])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        limit = 4 * (os.cpu_count() or 1)
        assert err == (f"infecon plan: --jobs must be an integer in [1, {limit}] (at most 4 worker processes per "
                       f"core on this machine), got '{value}' (see: infecon plan --help)\n")


class TestProgressBar:
    """A progress bar belongs on a terminal: in a log (stderr not a TTY) it is noise, unless asked for."""

    ONE = '[[scenario]]\nname = "tiny"\nmodel = "llama-3-8b"\nmax_gpus = 1\n'

    def test_no_bar_when_stderr_is_not_a_terminal(self, tmp_path, capsys):
        """plan forced tqdm on (progress=True) and wrote "scenarios: 100%|..." into every captured log."""
        path = tmp_path / "plan.toml"
        path.write_text(self.ONE)
        assert main(["plan", str(path), "--out", str(tmp_path / "out"), "--jobs", "1"]) == 0
        assert capsys.readouterr().err == ""

    def test_bar_when_asked(self, tmp_path, capsys):
        """--progress shows it even when stderr is not a terminal."""
        path = tmp_path / "plan.toml"
        path.write_text(self.ONE)
        assert main(["plan", str(path), "--out", str(tmp_path / "out"), "--jobs", "1", "--progress"]) == 0
        assert "scenarios" in capsys.readouterr().err


class TestServingModelKeys:
    """A plan selects each scenario's serving model as 'infecon frontier' does, and its output says which one."""

    SERVING = """\
    [defaults]
    engine = "paper"

    [[scenario]]
    name = "paper-8b"
    model = "llama-3-8b"
    max_gpus = 2
    context = 4000

    [[scenario]]
    name = "vllm-8b"
    model = "llama-3-8b"
    max_gpus = 2
    engine = "vllm"
    mode = "static_batch"
    isl = 2000
    osl = 500
    ttft_max_s = 5
    tpot_max_s = 0.5
    """

    def test_each_scenario_uses_its_own(self, tmp_path):
        """The defaults' engine applies unless a scenario sets its own; each row names engine, mode, isl, osl."""
        table = run_plan(plan_file(tmp_path, self.SERVING), tmp_path / "out", jobs=1)
        assert not table.attrs["failed"]
        paper, vllm = rows(table, "paper-8b").iloc[0], rows(table, "vllm-8b").iloc[0]
        assert (paper["engine"], paper["mode"], paper["context"]) == ("paper", "decode_only", 4000)
        # 2000-in / 500-out requests decode at the mean context 2000 + 500/2 = 2250 tokens.
        assert (vllm["engine"], vllm["mode"], vllm["isl"], vllm["osl"], vllm["context"]) == (
            "vllm", "static_batch", 2000, 500, 2250)
        expected = api.frontier("llama-3-8b", "h100", max_gpus=2, engine="vllm", mode="static_batch", isl=2000,
                                osl=500, ttft_max_s=5, tpot_max_s=0.5).points
        np.testing.assert_allclose(rows(table, "vllm-8b")["tokens_per_second"], expected["tokens_per_second"])

    def test_default_is_the_frontier_commands_and_is_shown(self, tmp_path, capsys):
        """No engine anywhere: generic closed_loop 1024/1024 (infecon frontier's default), printed per scenario."""
        path = plan_file(tmp_path, '[[scenario]]\nname = "plain"\nmodel = "llama-3-8b"\nmax_gpus = 1\n')
        assert main(["plan", str(path), "--out", str(tmp_path / "out"), "--jobs", "1"]) == 0
        out = capsys.readouterr().out
        assert "generic closed_loop 1024/1024 ctx 1536" in out.splitlines()[1]
        expected = api.frontier("llama-3-8b", "h100", max_gpus=1, engine="generic").points
        table = pd.read_csv(tmp_path / "out" / "plan.csv")
        np.testing.assert_allclose(table["usd_per_million_tokens"], expected["usd_per_million_tokens"])

    @pytest.mark.parametrize(("line", "message"), [
        ('mode = "turbo"', "'mode' must be one of decode_only, static_batch, closed_loop, disaggregated"),
        ("isl = 1.5", "'isl' must be an integer (got 1.5)"),
        ('ttft_max_s = "1"', "'ttft_max_s' must be a number (got '1')"),
    ])
    def test_bad_values_name_file_scenario_and_key(self, tmp_path, line, message):
        """A wrongly typed serving key fails the file on load, naming the file, the scenario and the key."""
        path = plan_file(tmp_path, f'[[scenario]]\nname = "s"\nmodel = "llama-3-8b"\n{line}\n')
        with pytest.raises(InstanceError, match=re.escape(f"{path}: scenario 's': {message}")):
            load_plan(path)


def test_plan_scenarios_search_every_integer_batch():
    """A plan's frontiers are 'infecon frontier''s: every integer batch (recommended points are exact)."""
    scenarios = load_plan(INSTANCES_DIR / "scenarios" / "plan_example.toml")
    assert {scenario.problem().space.batch_mode for scenario in scenarios} == {"all"}
