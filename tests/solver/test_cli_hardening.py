"""Odd inputs found by trying the CLI as a new user (issue 11): each gets one clear line and the right exit code."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from infecon.formulations.errors import InstanceError
from infecon.instances.limits import KNOB_RANGES, check_knob
from infecon.instances.loader import HARDWARE_DIR, MODELS_DIR, get_hardware, get_model, load_model
from infecon.solver import api
from infecon.solver.cli import main, one_line_usage_error
from tests.cli_fuzz import MEASUREMENTS
from tests.solver.test_cli import assert_one_line_error, run
from tests.test_instances import LLAMA_3_8B_CONFIG

SMALL = ("--model", "llama-3-8b", "--hardware", "h100", "--max-gpus", "2")


class TestUsageErrors:
    def test_one_line_with_help_hint(self, capsys):
        """A bad option value is one line naming the option and the rule, with a pointer to --help, no usage block."""
        code, _, err = run(capsys, "frontier", *SMALL, "--max-batch", "x")
        assert err == ("infecon frontier: --max-batch must be a positive integer <= 1000000000000, got 'x' "
                       "(see: infecon frontier --help)\n")
        assert code == 2

    @pytest.mark.parametrize(("message", "expected"), [
        ("argument --max-batch: must be a positive integer, got 'x'",
         "--max-batch must be a positive integer, got 'x'"),
        ("argument --tp-grid: not allowed with argument --tp", "--tp-grid: not allowed with argument --tp"),
        ("unrecognized arguments: --foo", "unrecognized arguments: --foo"),
        ("line one\n  line two", "line one line two"),
    ])
    def test_rewording(self, message, expected):
        """argparse's 'argument --x: must ...' reads as '--x must ...'; anything else keeps its words on one line."""
        assert one_line_usage_error(message) == expected

    @pytest.mark.parametrize("argv", [["frontier", *SMALL, "--foo"], ["bogus"], ["frontier"],
                                      ["frontier", *SMALL, "--backend", "gurobi"]],
                             ids=["unknown-option", "unknown-command", "no-model", "bad-choice"])
    def test_other_argparse_errors(self, capsys, argv):
        """Unknown options, commands and choices are one line too."""
        code, _, err = run(capsys, *argv)
        assert_one_line_error(code, err, "--help")


class TestHugeAndAbsurdNumbers:
    """Rows 1, 3 and 4: values that overflowed or priced tokens at $1e301 are refused, naming the option."""

    @pytest.mark.parametrize(("option", "value", "rule"), [
        ("--max-batch", "99999999999999999999", "a positive integer <= 1000000000000"),
        ("--batch-sizes", "1,99999999999999999999", "comma-separated batch sizes, each a positive integer <="),
        ("--max-gpus", "99999999999999999999", "a positive integer <= 1048576"),
        ("--context", "99999999999999999999", "an integer in [0, 100000000]"),
        ("--price", "1e308", "a positive number <= 1e+06"),
        ("--price", "nan", "a positive number <= 1e+06"),
        ("--bandwidth-efficiency", "1e-300", "a number in [0.01, 1]"),
        ("--flop-efficiency", "0.001", "a number in [0.01, 1]"),
        ("--demand", "inf", "a positive number <= 1e+12"),
        ("--time-limit", "1e300", "a positive number <= 2.592e+06"),
    ])
    def test_frontier_option(self, capsys, option, value, rule):
        """The option, its rule and the value given, in one line, exit 2."""
        code, _, err = run(capsys, "frontier", *SMALL, option, value)
        assert_one_line_error(code, err, f"{option} must be {rule}", f"got '{value}'")

    @pytest.mark.parametrize(("option", "value"), [("--tp", "99999999999999999999"), ("--batch", "1e3"),
                                                   ("--pp", "0"), ("--ep", "-1")])
    def test_explain_option(self, capsys, option, value):
        """explain's layout degrees and batch are bounded integers too."""
        code, _, err = run(capsys, "explain", "--model", "llama-3-8b", option, value)
        assert_one_line_error(code, err, f"{option} must be a positive integer <=", f"got '{value}'")

    def test_efficiency_floor_is_one_percent(self, capsys):
        """1% of peak, the floor, is accepted and gives a finite frontier."""
        code, out, err = run(capsys, "frontier", *SMALL, "--bandwidth-efficiency", "0.01", "--format", "csv")
        assert code == 0, err
        assert "inf" not in out and "nan" not in out

    @pytest.mark.parametrize(("field", "value"), [("price_usd_per_hour", "1e308"), ("bandwidth_efficiency", "1e-300")])
    def test_hardware_file(self, capsys, tmp_path, field, value):
        """The same ranges hold for a hardware file's price and efficiencies, naming file and field."""
        text = (HARDWARE_DIR / "h100_sxm.toml").read_text()
        path = tmp_path / "mine.toml"
        path.write_text(f"{field} = {value}\n" + "\n".join(line for line in text.splitlines()
                                                             if not line.startswith(f"{field} ")))
        code, _, err = run(capsys, "frontier", "--model", "llama-3-8b", "--hardware-file", str(path))
        assert_one_line_error(code, err, str(path), f"'{field}' must be")

    @pytest.mark.parametrize(("knob", "value"), [("max_batch", 10**20), ("price_usd_per_hour", 1e308),
                                                 ("bandwidth_efficiency", 1e-300), ("context_tokens", 10**20)])
    def test_api_refuses_too(self, knob, value):
        """The Python API checks the same ranges, so a script gets the same message, not an OverflowError."""
        with pytest.raises(InstanceError, match="must be"):
            api.build_problem("llama-3-8b", "h100", **{knob: value})

    @pytest.mark.parametrize("name", sorted(KNOB_RANGES))
    def test_every_range_accepts_its_bounds(self, name):
        """Both ends of each closed bound are accepted; just past the high end is not."""
        rule = KNOB_RANGES[name]
        high = int(rule.high) if rule.whole else rule.high
        check_knob(name, high)
        if not rule.low_open:
            check_knob(name, int(rule.low) if rule.whole else rule.low)
        with pytest.raises(InstanceError, match=name):
            check_knob(name, high * 2)

    def test_need_beyond_any_memory_is_not_a_fake_number(self, capsys):
        """10^12 sequences of 10^8 tokens need ~10^25 bytes, clipped at 2^53: say "exceeds any memory", not the
        clipped 9007199.25 GB the explanation used to print as if it were the need."""
        code, out, _ = run(capsys, "explain", "--model", "llama-3-8b", "--batch", "1000000000000",
                           "--context", "100000000", "--max-seqs", "1000000000000")  # the engine cap is not the point
        assert code == 1
        assert "9007199" not in out
        verdict, hbm = out.splitlines()[1], next(line for line in out.splitlines() if line.startswith("HBM:"))
        assert verdict.startswith("verdict: NOT A VALID DEPLOYMENT: hbm_capacity: needs more than 9 PB per GPU")
        assert "they exceed any memory" in verdict and "they exceed any memory" in hbm

    def test_need_below_the_ceiling_is_a_number(self):
        """Just under the ceiling the need is a real number: 2^53 - 2 bytes = 9007199.25 GB (2^53 = 9.007e15)."""
        assert api.hbm_need_text(2.0**53 - 2) == "9007199.25 GB per GPU"
        assert api.hbm_need_text(2.0**53).startswith("more than 9 PB per GPU")
        assert api.hbm_need_text(173.34e9) == "173.34 GB per GPU"



class TestDraftOptionsNeedDraft:
    """Row 5: speculative-decoding options without --draft were silently ignored."""

    @pytest.mark.parametrize(("option", "value"), [("--acceptance", "0.5"), ("--draft-tokens", "3"),
                                                   ("--max-draft", "4")])
    def test_refused(self, capsys, option, value):
        code, _, err = run(capsys, "frontier", *SMALL, option, value)
        assert_one_line_error(code, err, f"{option} needs --draft")

    def test_with_draft_accepted(self, capsys):
        """The same option with a drafter runs and prints the drafter's acceptance in the header."""
        code, out, err = run(capsys, "frontier", "--model", "llama-3-70b", "--max-gpus", "8", "--draft", "llama-3-8b",
                             "--acceptance", "0.5")
        assert code == 0, err
        assert "acceptance 0.5" in out

    def test_api_draft_tokens_without_draft(self):
        with pytest.raises(InstanceError, match="'draft_tokens' needs 'draft'"):
            api.build_problem("llama-3-8b", "h100", draft_tokens=3)


class TestMutuallyExclusive:
    """Row 12: two options for one thing, where one silently won."""

    @pytest.mark.parametrize(("argv", "fragment"), [
        (["explain", "--model", "llama-3-8b", "--tp", "8", "--tp-grid", "4x4"], "--tp-grid: not allowed with"),
        (["frontier", "--model", "llama-3-8b", "--hardware", "h100", "--hardware-file", "x.toml"],
         "--hardware-file: not allowed with"),
        (["frontier", "--model", "llama-3-8b", "--min-speed", "60", "--max-cost", "2"], "--max-cost: not allowed with"),
    ], ids=["tp-and-grid", "hardware-and-file", "speed-and-cost"])
    def test_refused(self, capsys, argv, fragment):
        code, _, err = run(capsys, *argv)
        assert_one_line_error(code, err, fragment)

    def test_default_hardware_still_h100(self, capsys):
        """With neither --hardware nor --hardware-file the default is still the H100."""
        code, out, _ = run(capsys, "frontier", "--model", "llama-3-8b", "--max-gpus", "1")
        assert code == 0
        assert "on NVIDIA H100 SXM" in out


class TestOutputsCheckedFirst:
    """Rows 7, 8 and 15: output paths are checked before any solve, and the printed path is the real one."""

    def test_plot_without_suffix_gets_png(self, capsys, tmp_path):
        """--plot out/noext writes out/noext.png and says so (matplotlib appends .png to a bare name)."""
        code, out, _ = run(capsys, "frontier", *SMALL, "--plot", str(tmp_path / "noext"))
        assert code == 0
        assert (tmp_path / "noext.png").read_bytes()[:4] == b"\x89PNG"
        assert f"wrote {tmp_path / 'noext.png'}" in out

    def test_bad_plot_suffix_fails_before_csv(self, capsys, tmp_path, monkeypatch):
        """--plot f.txt fails naming --plot before solving, so --csv is not written either."""
        def no_solve(*args, **kwargs):
            raise AssertionError("solved before checking the outputs")

        monkeypatch.setattr(api, "frontier", no_solve)
        code, _, err = run(capsys, "frontier", *SMALL, "--plot", str(tmp_path / "f.txt"),
                           "--csv", str(tmp_path / "b.csv"))
        assert_one_line_error(code, err, "--plot", "'.txt'", "png")
        assert not (tmp_path / "b.csv").exists()

    @pytest.mark.parametrize("option", ["--csv", "--plot"])
    def test_folder_as_file(self, capsys, tmp_path, option):
        code, _, err = run(capsys, "frontier", *SMALL, option, str(tmp_path))
        assert_one_line_error(code, err, option, "is a folder")

    @pytest.mark.parametrize("command", [["sweep", "instances/scenarios/sweep_bandwidth.toml"],
                                         ["plan", "instances/scenarios/plan_example.toml"]])
    def test_out_is_a_file(self, capsys, tmp_path, monkeypatch, command):
        """sweep/plan --out naming an existing file fail at once, naming --out (the sweep used to run first)."""
        from infecon.solver import planning, sweeps

        def no_run(*args, **kwargs):
            raise AssertionError("ran before checking --out")

        monkeypatch.setattr(sweeps, "run_sweep", no_run)
        monkeypatch.setattr(planning, "run_plan", no_run)
        blocker = tmp_path / "file"
        blocker.write_text("")
        code, _, err = run(capsys, *command, "--out", str(blocker))
        assert_one_line_error(code, err, "--out", "exists and is not a folder")


class TestExplainVerdict:
    """Row 13: explain says the same 'verdict:' line in every case and exits 1 for an invalid deployment."""

    @pytest.mark.parametrize(("argv", "reason"), [
        (["--model", "llama-3-70b", "--tp", "3"], "tp_divides_heads"),
        (["--model", "llama-3-70b", "--tp", "8", "--pp", "160"], "pp_divides_layers"),
        (["--model", "llama-3-70b", "--tp", "8", "--ep", "2"], "ep_divides_experts"),
        (["--model", "llama-3-70b", "--tp", "1", "--batch", "64"], "hbm_capacity"),
    ], ids=["tp-3", "pp-over-layers", "ep-dense", "does-not-fit"])
    def test_invalid(self, capsys, argv, reason):
        code, out, _ = run(capsys, "explain", *argv)
        assert code == 1
        assert out.splitlines()[1].startswith(f"verdict: NOT A VALID DEPLOYMENT: {reason}")
        assert "step_ms" in out  # the breakdown is still printed

    def test_ep_on_a_dense_model_says_dense(self, capsys):
        """A dense model has no experts to split: the verdict says so (it said "0 experts do not split over 2")."""
        code, out, _ = run(capsys, "explain", "--model", "llama-3-8b", "--ep", "2")
        assert code == 1
        assert out.splitlines()[1] == ("verdict: NOT A VALID DEPLOYMENT: ep_divides_experts: Llama 3 8B is dense "
                                       "(no experts), so EP must be 1 (got 2)")

    def test_ep_on_a_moe_model_names_the_experts(self, capsys):
        """Mixtral's 8 experts do not split over 3 ranks: the count and the degree are named."""
        code, out, _ = run(capsys, "explain", "--model", "mixtral-8x7b", "--tp", "2", "--ep", "3")
        assert code == 1
        assert out.splitlines()[1] == ("verdict: NOT A VALID DEPLOYMENT: ep_divides_experts: 8 experts do not split "
                                       "over 3 ranks")

    def test_valid(self, capsys):
        code, out, _ = run(capsys, "explain", "--model", "llama-3-70b", "--tp", "8", "--batch", "64")
        assert code == 0
        assert out.splitlines()[1] == "verdict: valid deployment (breaks no rule, fits in HBM)"


class TestTimeLimit:
    """Row 14: a solver stopped before its first point says so in one line (no empty DataFrame) and exits 3."""

    # On the batch ladder: at every integer batch (104 million at context 0) the epsilon loop's set-up takes
    # over a minute before the time limit is first checked (epsilon.KnownLayouts counts each layout's batches).
    def test_no_point_proven(self, capsys):
        code, out, err = run(capsys, "frontier", "--model", "llama-3-8b", "--engine", "paper", "--backend", "cpsat",
                             "--time-limit", "1e-6", "--batch-ladder")
        assert code == 3
        assert "Empty DataFrame" not in out
        assert err.strip() == ("infecon: error: no point proven before the time limit (cpsat backend, --time-limit "
                               "1e-06 s); raise --time-limit")

    def test_single_point_query(self, capsys):
        """--min-speed under a time limit that cuts the solve short also exits 3, in one line."""
        code, _, err = run(capsys, "frontier", "--model", "llama-3-8b", "--engine", "paper", "--backend", "cpsat",
                           "--time-limit", "1e-6", "--min-speed", "10", "--batch-ladder")
        assert code == 3
        assert len(err.strip().splitlines()) == 1 and "raise --time-limit" in err


def test_main_returns_codes_not_exits(capsys):
    """main() returns the code (SystemExit only from argparse), so in-process callers and tests can read it."""
    assert main(["frontier", *SMALL, "--format", "csv"]) == 0


class TestHuggingFaceConfigs:
    """Rows 9-11: config.json files that loaded as something they are not."""

    @staticmethod
    def frontier_of(capsys, tmp_path, config: dict) -> tuple[int, str, Path]:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        code, _, err = run(capsys, "frontier", "--model-file", str(path), "--max-gpus", "2")
        return code, err, path

    @pytest.mark.parametrize(("changes", "fragment"), [
        ({"architectures": ["BertForMaskedLM"], "model_type": "llama"}, "'architectures' must name a decoder-only"),
        ({"architectures": ["BertForMaskedLM"], "model_type": "bert"}, "'model_type' 'bert' is not a decoder-only"),
        ({"architectures": ["T5ForConditionalGeneration"], "is_encoder_decoder": True}, "'is_encoder_decoder' is true"),
    ], ids=["bert-arch", "bert-type", "t5"])
    def test_encoder_models_refused(self, capsys, tmp_path, changes, fragment):
        """Row 9: an encoder or encoder-decoder has no decode step to model; the message names the field."""
        code, err, path = self.frontier_of(capsys, tmp_path, {**LLAMA_3_8B_CONFIG, **changes})
        assert_one_line_error(code, err, str(path), fragment)

    @pytest.mark.parametrize(("key", "value", "shown"), [
        ("hidden_size", "4096", "'4096'"), ("hidden_size", None, "None"), ("num_hidden_layers", 32.7, "32.7"),
        ("num_key_value_heads", "8", "'8'"), ("num_attention_heads", True, "True"), ("vocab_size", -5, None),
    ])
    def test_mistyped_fields(self, capsys, tmp_path, key, value, shown):
        """Row 10: a field of the wrong type is named with its value, not reported as missing."""
        code, err, _ = self.frontier_of(capsys, tmp_path, {**LLAMA_3_8B_CONFIG, key: value})
        if shown is None:
            assert_one_line_error(code, err, f"'{key}' must be >= 1 (got {value})")
        else:
            assert_one_line_error(code, err, f"'{key}' must be an integer (got {shown})")

    def test_heads_do_not_divide_width(self, capsys, tmp_path):
        """Row 11: hidden 4001 over 32 heads and no head_dim would give a silent d_head of 125."""
        code, err, _ = self.frontier_of(capsys, tmp_path, {**LLAMA_3_8B_CONFIG, "hidden_size": 4001})
        assert_one_line_error(code, err, "'hidden_size' (4001) must be a multiple of 'num_attention_heads' (32)")

    def test_explicit_head_dim_allows_any_width(self, capsys, tmp_path):
        """With head_dim given, the width need not divide (as in Gemma): the config loads and solves."""
        code, err, _ = self.frontier_of(capsys, tmp_path, {**LLAMA_3_8B_CONFIG, "hidden_size": 4001, "head_dim": 128})
        assert code == 0, err

    def test_null_optional_field_is_absent(self, capsys, tmp_path):
        """"head_dim": null, as some configs write it, means 'not given' (4096 / 32 = 128)."""
        path = tmp_path / "config.json"
        path.write_text(json.dumps({**LLAMA_3_8B_CONFIG, "head_dim": None}))
        assert load_model(path).d_head == 128


class TestListingsSaySpellings:
    """The listings say that the README's spellings and the file stems are the same names."""

    def test_models(self, capsys):
        code, out, _ = run(capsys, "models")
        assert code == 0
        assert "llama-3-70b = llama_3_70b" in out
        assert get_model("Llama-3-70B") == get_model("llama_3_70b")

    def test_hardware_short_names(self, capsys):
        """`infecon hardware` shows h100 next to h100_sxm, and the short name resolves to it."""
        code, out, _ = run(capsys, "hardware")
        assert code == 0
        row = next(line.split() for line in out.splitlines() if line.split()[:1] == ["h100_sxm"])
        assert row[1] == "h100"
        assert get_hardware("h100") == get_hardware("h100_sxm")


class TestNoNanInReports:
    """Found by the fuzzer: decode-only serving (--engine paper) printed NaN for TTFT and the input price."""

    def test_frontier_table(self, capsys):
        code, out, _ = run(capsys, "frontier", *SMALL, "--engine", "paper")
        assert code == 0
        assert "nan" not in out.lower()
        assert "TTFT" not in out and "TPOT ms" in out  # no prefill to time; the decode step still is

    def test_explain(self, capsys):
        code, out, _ = run(capsys, "explain", "--model", "llama-3-8b", "--engine", "paper")
        assert code == 0
        assert "nan" not in out.lower()
        assert "TTFT none (decode only)" in out

    def test_sweep_row_where_nothing_fits(self):
        """A swept value where nothing fits shows '-' (with its note), not NaN; the CSV keeps the empty cells."""
        from infecon.solver.sweeps import format_sweep, run_sweep

        table = run_sweep({"base": {"model": "llama-3-8b", "hardware": "h100", "max_gpus": 1},
                           "sweep": {"parameter": "context", "values": [0, 10_000_000]}})
        assert table["max_tokens_per_second"].isna().iloc[1]  # 10M tokens of KV cache do not fit on one H100
        text = format_sweep(table)
        assert "nan" not in text.lower()
        assert text.splitlines()[-1].split()[1] == "-"

    def test_plan_summary_with_a_failed_scenario(self, capsys, tmp_path):
        """A failed plan scenario shows '-' for its speed, not NaN, and the plan exits 1 naming it."""
        plan = tmp_path / "plan.toml"
        plan.write_text('[[scenario]]\nname = "ok"\nmodel = "llama-3-8b"\nmax_gpus = 2\n'
                        '[[scenario]]\nname = "bad"\nmodel = "gpt-5-ultra"\n')
        code, out, _ = run(capsys, "plan", str(plan), "--out", str(tmp_path / "out"), "--jobs", "1")
        assert code == 1
        assert "nan" not in out.lower()
        assert next(line for line in out.splitlines() if line.split()[:2] == ["bad", "failed"]).split()[2] == "-"
        assert "FAILED bad: unknown model 'gpt-5-ultra'" in out


class TestSpeculationNeverWorse:
    """Row 6 at the CLI: draft length 0 (plain decoding) is a choice, under the paper's model and an engine's."""

    @pytest.mark.parametrize("engine", ["paper", "generic"])
    @pytest.mark.parametrize(("draft", "acceptance"), [("llama-3-70b", "0"), ("llama-3-70b", "0.8")],
                             ids=["acceptance-0", "target-as-drafter"])
    def test_fastest_point_at_least_plain(self, capsys, engine, draft, acceptance):
        """With a useless drafter the fastest speculative point is as fast as the plain one (was 80.6 vs 106.7).

        Under ``generic`` it was 77.3 vs 81.6 tok/s: the speculative latency ignored the engine's
        per-hardware efficiencies, so even gamma 0 differed from plain decoding.
        """
        common = ["frontier", "--model", "llama-3-70b", "--max-gpus", "8", "--engine", engine, "--format", "csv"]
        code, plain, _ = run(capsys, *common)
        assert code == 0
        code, spec, err = run(capsys, *common, "--draft", draft, "--acceptance", acceptance)
        assert code == 0, err
        plain_max = pd.read_csv(io.StringIO(plain))["tokens_per_second"].max()
        spec_points = pd.read_csv(io.StringIO(spec))
        assert spec_points["tokens_per_second"].max() >= plain_max * (1 - 1e-12)
        if acceptance == "0":
            assert (spec_points["draft_tokens"] == 0).all()  # every draft would be rejected


class TestFoundByHand:
    """Odd inputs found while fixing the table: each was a traceback or a misleading line."""

    @pytest.mark.parametrize("grid", ["99999999999999999999x2", "4x8x2", "0x4", "-2x-2", "4by8"])
    def test_tp_grid(self, capsys, grid):
        """--tp-grid with a huge, zero, negative or malformed axis (the huge one was an OverflowError)."""
        code, _, err = run(capsys, "explain", "--model", "llama-3-8b", f"--tp-grid={grid}")
        assert_one_line_error(code, err, "--tp-grid must be ROWSxCOLS such as 4x8", f"got '{grid}'")

    def test_model_file_is_a_folder(self, capsys, tmp_path):
        code, _, err = run(capsys, "frontier", "--model-file", str(tmp_path))
        assert_one_line_error(code, err, str(tmp_path), "is a folder")

    def test_hardware_file_is_always_a_path(self, capsys, tmp_path):
        """--hardware-file names a file even without .toml: a missing one is 'file not found', not 'unknown'."""
        missing = tmp_path / "my_gpu.json"
        code, _, err = run(capsys, "frontier", "--model", "llama-3-8b", "--hardware-file", str(missing))
        assert_one_line_error(code, err, str(missing), "file not found")

    def test_api_explain_bounds(self):
        """The API's explain refuses a degree that would overflow, naming it."""
        with pytest.raises(InstanceError, match="'tp_rows' must be a positive integer <= 1048576"):
            api.explain("llama-3-8b", "h100", tp_rows=10**20, tp_cols=2)

    def test_calibrate_error_names_the_data_file(self, capsys, tmp_path):
        """A calibrate error about the data (too few rows to fit) names the CSV."""
        rows = MEASUREMENTS.read_text().splitlines()[:3]
        data = tmp_path / "few.csv"
        data.write_text("\n".join(rows) + "\n")
        code, _, err = run(capsys, "calibrate", "--data", str(data), "--engine", "generic", "--no-held-out")
        assert_one_line_error(code, err, str(data))

    @pytest.mark.parametrize("command", [["validate"], ["calibrate", "--engine", "generic"]])
    def test_out_checked_before_work(self, capsys, tmp_path, command):
        """validate/calibrate --out that cannot be written fail before reading the data, naming --out."""
        code, _, err = run(capsys, *command, "--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path))
        assert_one_line_error(code, err, "--out", "is a folder")

    @pytest.mark.parametrize("field", ["d_model", "n_layers", "vocab_size"])
    def test_model_dimension_too_large(self, capsys, tmp_path, field):
        """Found by the fuzzer: a model field scaled by 1e300 was an OverflowError; now it names the field."""
        text = (MODELS_DIR / "llama_3_8b.toml").read_text()
        path = tmp_path / "huge.toml"
        path.write_text(re.sub(rf"^{field} = {{ value = \d+", f"{field} = {{ value = {4096 * 10**300}", text,
                               flags=re.MULTILINE))
        code, _, err = run(capsys, "frontier", "--model-file", str(path), "--max-gpus", "2")
        assert_one_line_error(code, err, str(path), f"'{field}' must be <= 16777216")


class TestWorkerCounts:
    """Item 4 of issue 11's follow-up: --jobs was unbounded (100000 workers fork until memory runs out)."""

    @pytest.mark.parametrize("value", ["0", "9999", "1.5"])
    def test_fleet_jobs(self, capsys, value):
        """fleet --jobs takes 1 to 4 per core, refused in one line naming --jobs before the scenario is read."""
        from infecon.solver.parallel import max_jobs

        code, _, err = run(capsys, "fleet", "instances/scenarios/fleet_example.toml", "--jobs", value)
        assert_one_line_error(code, err, f"--jobs must be an integer in [1, {max_jobs()}]", f"got '{value}'")

    def test_api_checks_too(self):
        """run_tasks (plan and fleet candidates) refuses the same values from Python."""
        from infecon.solver.parallel import max_jobs, run_tasks

        assert max_jobs() == 4 * (os.cpu_count() or 1)
        with pytest.raises(InstanceError, match=r"'jobs' must be an integer in \[1, "):
            run_tasks(abs, [1, 2], jobs=max_jobs() + 1)
        assert run_tasks(abs, [-1, -2], jobs=1) == [("ok", 1), ("ok", 2)]


class TestFoundAsNewUser:
    """Found by trying the product as a demanding new user (issue 11 follow-up): each was wrong or unclear."""

    def test_version(self, capsys):
        """infecon --version printed "unrecognized arguments"; now the package version, exit 0."""
        import infecon

        code, out, _ = run(capsys, "--version")
        assert (code, out) == (0, f"infecon {infecon.__version__}\n")

    @pytest.mark.parametrize("command", [["validate"], ["calibrate", "--engine", "vllm"]])
    def test_data_is_a_folder(self, capsys, tmp_path, command):
        """--data naming a folder was an IsADirectoryError traceback."""
        code, _, err = run(capsys, *command, "--data", str(tmp_path))
        assert_one_line_error(code, err, str(tmp_path), "is a folder; give a measurement CSV file")

    def test_single_point_query_says_what_it_answers(self, capsys):
        """--min-speed printed "1 Pareto-optimal configurations"; it names the question instead."""
        code, out, _ = run(capsys, "frontier", *SMALL, "--min-speed", "60")
        assert code == 0
        assert out.splitlines()[1].startswith("the cheapest configuration at >= 60 tok/s per request, backend ")
        code, out, _ = run(capsys, "frontier", *SMALL, "--max-cost", "2")
        assert out.splitlines()[1].startswith("the fastest configuration at <= $2 per million output tokens, ")

    def test_one_point_is_singular(self, capsys):
        """A one-point frontier reads "1 Pareto-optimal configuration" (one GPU, one batch: a single point)."""
        code, out, _ = run(capsys, "frontier", *SMALL, "--max-gpus", "1", "--batch-sizes", "1")
        assert code == 0
        assert out.splitlines()[1].startswith("1 Pareto-optimal configuration, backend")

    def test_header_names_the_caps(self, capsys):
        """The header listed context, bits and price but not the caps that cut the frontier; now it does."""
        code, out, _ = run(capsys, "frontier", *SMALL, "--demand", "10000", "--budget", "50", "--ttft-max", "1",
                           "--tpot-max", "0.05")
        assert code == 0
        assert out.splitlines()[0].endswith("; caps: demand <= 10000 tok/s per instance, budget <= $50/hour per "
                                            "instance, TTFT <= 1 s, TPOT <= 0.05 s (mean over requests)")
        code, out, _ = run(capsys, "frontier", *SMALL, "--ttft-max", "1", "--slo-percentile", "99")
        assert code == 0
        assert out.splitlines()[0].endswith("; caps: TTFT <= 1 s (at p99 of requests, Poisson arrivals)")
        assert "TTFT p99 ms" in out and "req/s" in out
        code, out, _ = run(capsys, "frontier", *SMALL)
        assert "caps:" not in out.splitlines()[0]

    @pytest.mark.parametrize(("command", "file", "kind"), [
        (["sweep"], "plan_example.toml", "a plan file (infecon plan FILE)"),
        (["plan"], "sweep_bandwidth.toml", "a sweep file (infecon sweep FILE)"),
        (["fleet"], "plan_example.toml", "a plan file (infecon plan FILE)"),
        (["frontier", "--model"], "fleet_example.toml", "a fleet file (infecon fleet FILE)"),
    ])
    def test_file_for_another_command_says_so(self, capsys, tmp_path, command, file, kind):
        """A scenario file given to the wrong command said only "unknown field"; it now says what the file is."""
        path = str(Path("instances/scenarios") / file)
        extra = ["--out", str(tmp_path / "out")] if command == ["plan"] else []
        code, _, err = run(capsys, *command, path, *extra)
        assert_one_line_error(code, err, path, f"; this looks like {kind}")

    def test_hardware_file_given_as_model(self, capsys):
        path = str(HARDWARE_DIR / "h100_sxm.toml")
        code, _, err = run(capsys, "frontier", "--model-file", path)
        assert_one_line_error(code, err, path, "this looks like a hardware file (--hardware FILE)")

    def test_fleet_time_limit_is_bounded(self, capsys):
        """fleet --time-limit took any positive float (1e308); it has frontier's bound of 30 days."""
        code, _, err = run(capsys, "fleet", "instances/scenarios/fleet_example.toml", "--time-limit", "1e308")
        assert_one_line_error(code, err, "--time-limit must be a positive number <= 2.592e+06", "got '1e308'")

    @pytest.mark.parametrize("value", ["1e308", "0", "nan"])
    def test_fleet_tpot_scale_max_is_bounded(self, capsys, value):
        """fleet --tpot-scale-max took any positive float; past 1,000x every TPOT limit means nothing."""
        code, _, err = run(capsys, "fleet", "instances/scenarios/fleet_example.toml", "--frontier",
                           "--tpot-scale-max", value)
        assert_one_line_error(code, err, "--tpot-scale-max must be a positive number <= 1000", f"got '{value}'")

    @pytest.mark.parametrize(("value", "message"), [
        ("0.5,,1", "--tpot-scales: a comma-separated list of scales"),
        ("0.5,2000", "--tpot-scales must be a positive number <= 1000"),
        ("0.5,x", "--tpot-scales must be a positive number <= 1000"),
    ])
    def test_fleet_tpot_scales_is_checked(self, capsys, value, message):
        code, _, err = run(capsys, "fleet", "instances/scenarios/fleet_example.toml", "--frontier",
                           "--tpot-scales", value)
        assert_one_line_error(code, err, message)

    def test_osl_zero_names_the_option(self, capsys):
        """--osl 0 passed argparse and failed later as "'osl' must be ..." without naming --osl."""
        code, _, err = run(capsys, "frontier", *SMALL, "--osl", "0")
        assert_one_line_error(code, err, "--osl must be a positive integer <= 100000000 (e.g. 500 or 1k), got '0'")


class TestFleetFileBounds:
    """A fleet file's numbers get the CLI's plausible ranges on load (requests_per_s = 1e300 was an OverflowError
    traceback from the integer program; isl = 10^14 and [fleet] max_gpus = 8000000 (found by the fuzzer) failed
    late, once per GPU type, inside the candidates, without the file's name)."""

    EXAMPLE = Path("instances/scenarios/fleet_example.toml")

    @pytest.mark.parametrize(("old", "new", "message"), [
        ("requests_per_s = 12.0", "requests_per_s = 1e300",
         "workload 'chat-70b': 'requests_per_s' x 'osl' must be a positive number <= 1e+12 (tokens/s), got 4e+302"),
        ("isl = 2000", "isl = 99999999999999",
         "workload 'chat-70b': 'isl' must be an integer in [0, 100000000] (tokens), got 99999999999999"),
        ("ttft_max_s = 1.5", "ttft_max_s = 1e300",
         "workload 'chat-70b': 'ttft_max_s' must be a positive number <= 86400 (seconds), got 1e+300"),
        ("available = 32 ", "available = 99999999999 ",
         "gpu #1: 'available' must be a positive integer <= 1048576 (GPUs), got 99999999999"),
        ("price_usd_per_hour = 2.1 ", "price_usd_per_hour = 1e300 ",
         "gpu #1: 'price_usd_per_hour' must be a positive number <= 1e+06 (USD per GPU-hour), got 1e+300"),
        ("whole_nodes = false", "max_gpus = 8000000\nwhole_nodes = false",
         "[fleet]: 'max_gpus' must be a positive integer <= 1048576 (GPUs), got 8000000"),
        ("whole_nodes = false", "budget_usd_per_hour = 1e300\nwhole_nodes = false",
         "[fleet]: 'budget_usd_per_hour' must be a positive number <= 1e+12 (USD per hour), got 1e+300"),
    ], ids=["requests", "isl", "ttft", "available", "price", "max-gpus", "budget"])
    def test_refused_on_load(self, capsys, tmp_path, old, new, message):
        """One line naming file, table and field, exit 2, before any candidate is generated.

        2000 + 400: the chat workload's osl is 400, so 1e300 requests/s are 4e302 output tokens/s.
        """
        text = self.EXAMPLE.read_text()
        assert old in text
        path = tmp_path / "fleet.toml"
        path.write_text(text.replace(old, new, 1))
        code, _, err = run(capsys, "fleet", str(path), "--jobs", "1")
        assert_one_line_error(code, err, f"{path}: {message}")

    def test_available_zero_is_still_allowed(self, tmp_path):
        """0 GPUs of a type (none to be had) stays valid: the bound applies to positive counts only."""
        from infecon.instances.fleet_scenario import load_fleet_scenario

        path = tmp_path / "fleet.toml"
        path.write_text(self.EXAMPLE.read_text().replace("available = 32 ", "available = 0 ", 1))
        assert load_fleet_scenario(path).gpus[0].available == 0


class TestDegenerateWorkload:
    def test_static_batch_with_nothing_to_time_is_refused(self, capsys):
        """isl 0 and osl 1 in a static batch: no prefill and no decode step, so no time; once an infinite speed."""
        code, _, err = run(capsys, "frontier", *SMALL, "--mode", "static_batch", "--isl", "0", "--osl", "1")
        assert_one_line_error(code, err, "static_batch with isl 0 and osl 1 times nothing")

    def test_one_more_token_is_timed(self, capsys):
        code, out, _ = run(capsys, "frontier", *SMALL, "--mode", "static_batch", "--isl", "0", "--osl", "2")
        assert code == 0 and "Pareto-optimal" in out
