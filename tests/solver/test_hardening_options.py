"""Issue 21, item 2: every accepted option is used or refused (an options x commands x modes table), and
``explain`` judges a configuration against every cap it is given."""

from __future__ import annotations

import argparse

import pandas as pd
import pytest

from infecon.solver import api
from infecon.solver.cli import build_parser, problem_kwargs
from tests.solver.test_cli import assert_one_line_error, run

BASE = ("--model", "llama-3-8b", "--hardware", "h100")

# Options x commands x modes: for each option frontier and explain share, a value that differs from its default,
# and per serving mode (paper's decode-only model, an engine's closed loop) whether the problem uses it ("used":
# the Problem built differs from the one without it) or refuses it (exit 2). Output and solver options, which
# never reach the Problem, are listed in OUTPUT_OPTIONS. A new option must be added here: test_every_option_is_listed.
PROBLEM_OPTIONS: dict[str, tuple[tuple[str, ...], str, str]] = {
    # option: (its arguments, paper decode-only, engine closed loop)
    "--model": (("--model", "llama-3-70b"), "used", "used"),
    "--model-file": (("--model-file", "instances/models/llama_3_70b.toml"), "used", "used"),
    "--hardware": (("--hardware", "h200"), "used", "used"),
    "--hardware-file": (("--hardware-file", "instances/hardware/h200.toml"), "used", "used"),
    "--isl": (("--isl", "2000"), "used", "used"),
    "--osl": (("--osl", "100"), "used", "used"),
    "--context": (("--context", "1800"), "used", "used"),  # within [isl, isl + osl] = [1024, 2048]
    "--weight-bits": (("--weight-bits", "8"), "used", "used"),
    "--activation-bits": (("--activation-bits", "8"), "used", "used"),
    "--weight-format": (("--weight-format", "mxfp4"), "used", "used"),  # issue 20 (w20cat)
    "--kv-bits": (("--kv-bits", "8"), "used", "used"),
    "--draft": (("--draft", "llama-3-8b"), "used", "used"),
    "--acceptance": (("--draft", "llama-3-8b", "--acceptance", "0.5"), "used", "used"),
    "--max-draft": (("--draft", "llama-3-8b", "--max-draft", "3"), "used", "used"),
    "--draft-tokens": (("--draft", "llama-3-8b", "--draft-tokens", "3"), "used", "used"),
    "--engine": (("--engine", "vllm"), "used", "used"),
    "--mode": (("--mode", "static_batch"), "used", "used"),
    "--ttft-max": (("--ttft-max", "1"), "refused", "used"),
    "--tpot-max": (("--tpot-max", "1"), "used", "used"),
    "--slo-percentile": (("--slo-percentile", "99"), "used", "used"),  # issue 22 (w22)
    "--price": (("--price", "3"), "used", "used"),
    "--flop-efficiency": (("--flop-efficiency", "0.5"), "used", "used"),
    "--bandwidth-efficiency": (("--bandwidth-efficiency", "0.5"), "used", "used"),
    "--demand": (("--demand", "10000"), "used", "used"),
    "--budget": (("--budget", "100"), "used", "used"),
    "--max-gpus": (("--max-gpus", "16"), "used", "used"),
    "--max-batch": (("--max-batch", "64"), "used", "used"),
    "--batch-sizes": (("--batch-sizes", "1,2"), "used", "used"),
    "--attention-dp": (("--attention-dp", "on"), "refused", "refused"),  # llama-3-8b is not MLA
    "--batch-ladder": (("--batch-ladder",), "used", "used"),
    "--all-batches": (("--all-batches",), "noop", "noop"),  # documented: the default, kept for old scripts
    # issue 18 (w18pp): engine limits; the paper's model has none of its own, so a limit given is one it obeys.
    "--memory-fraction": (("--memory-fraction", "0.5"), "used", "used"),
    "--max-seqs": (("--max-seqs", "64"), "used", "used"),
    "--max-pp": (("--max-pp", "1"), "used", "used"),
}
MODES = {"paper": ("--engine", "paper"), "engine": ("--engine", "generic")}
OUTPUT_OPTIONS = {"--help", "--debug", "--min-speed", "--max-cost", "--backend", "--time-limit", "--export-model",
                  "--csv", "--plot", "--format", "--all", "--tp", "--tp-grid", "--pp", "--ep", "--batch",
                  # issue 18/20 (w18band, w20recipe): error bands, table thinning and layout families shape the
                  # output or pick layouts after the Problem is built; their own tests check they are used.
                  "--confidence", "--exact", "--tolerance", "--gpus"}
EXPLAIN_REFUSES = {"--batch-ladder", "--all-batches"}


def _subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def _problem(argv: list[str]):
    args = build_parser().parse_args(["frontier", *argv])
    kwargs = problem_kwargs(args)
    model = args.model_file or args.model
    hardware = args.hardware_file or args.hardware or "h100"
    return api.build_problem(model, hardware, **kwargs)


class TestOptionTable:
    @pytest.mark.parametrize("command", ["frontier", "explain"])
    def test_every_option_is_listed(self, command):
        """Each option of the command is in the table (used or refused per mode) or is an output/layout option."""
        options = {s for a in _subparser(command)._actions for s in a.option_strings if s.startswith("--")}
        unlisted = options - set(PROBLEM_OPTIONS) - OUTPUT_OPTIONS
        assert not unlisted, f"add {sorted(unlisted)} to PROBLEM_OPTIONS (used or refused per mode)"

    @pytest.mark.parametrize("mode", sorted(MODES))
    @pytest.mark.parametrize("option", sorted(PROBLEM_OPTIONS))
    def test_used_or_refused(self, option, mode, capsys):
        """A used option changes the Problem; a refused one exits 2 in one line naming it; none is silently dropped."""
        argv, *verdicts = PROBLEM_OPTIONS[option]
        verdict = verdicts[list(MODES).index(mode)]
        base = [*BASE, *MODES[mode]]
        with_option = [a for a in base if a not in ("llama-3-8b", "h100", "--model", "--hardware")] \
            if option in ("--model-file", "--hardware-file") else base
        if option == "--model-file":
            with_option = [*with_option, "--hardware", "h100"]
        if option == "--hardware-file":
            with_option = [*with_option, "--model", "llama-3-8b"]
        if option == "--engine":
            with_option = [a for a in base if a not in MODES[mode]]
        full = [*with_option, *argv]
        if verdict == "refused":
            code, _, err = run(capsys, "frontier", *full, "--max-gpus", "1", "--max-batch", "1")
            assert_one_line_error(code, err, option.lstrip("-").replace("-", "_")
                                  if option != "--ttft-max" else "ttft_max")
            return
        if verdict == "noop":
            assert _problem(full) == _problem(base)
            return
        assert _problem(full) != _problem(base), f"{option} was accepted and changed nothing under {mode}"

    @pytest.mark.parametrize("option", sorted(EXPLAIN_REFUSES))
    def test_explain_refuses_search_options(self, option, capsys):
        code, _, err = run(capsys, "explain", *BASE, option)
        assert_one_line_error(code, err, f"{option} does not apply to explain")


class TestExplainJudgesEveryCap:
    def test_issue_example(self, capsys):
        """The issue's run: 8 GPUs, TTFT 181 ms and $16/h against caps of 4 GPUs, 1 ms and $1/h: exit 1, each named."""
        code, out, _ = run(capsys, "explain", "--model", "llama-3-70b", "--tp", "8", "--batch", "64", "--ttft-max",
                           "0.001", "--tpot-max", "0.001", "--budget", "1", "--max-gpus", "4")
        verdict = out.splitlines()[1]
        assert code == 1
        assert verdict.startswith("verdict: NOT A VALID DEPLOYMENT")
        for rule in ("max_gpus: 8 GPUs exceed the maximum of 4", "ttft_max: TTFT", "tpot_max: TPOT",
                     "budget: 8 GPUs x $2/h = $16/h > the budget $1/h"):
            assert rule in verdict, verdict

    def test_demand_and_batch_caps(self, capsys):
        code, out, _ = run(capsys, "explain", *BASE, "--batch", "64", "--demand", "10", "--max-batch", "8")
        assert code == 1
        assert "demand_cap:" in out.splitlines()[1] and "max_batch: batch 64 > 8" in out.splitlines()[1]
        code, out, _ = run(capsys, "explain", *BASE, "--batch", "64", "--batch-sizes", "1,2")
        assert code == 1 and "batch_sizes: batch 64 is not one of 1, 2" in out.splitlines()[1]

    def test_caps_met_is_valid(self, capsys):
        """The same configuration under loose caps is valid (exit 0): the caps are compared, not just present."""
        code, out, _ = run(capsys, "explain", "--model", "llama-3-70b", "--tp", "8", "--batch", "64", "--ttft-max",
                           "1", "--tpot-max", "0.1", "--budget", "16", "--max-gpus", "8", "--demand", "1e6")
        assert code == 0, out
        assert out.splitlines()[1].startswith("verdict: valid deployment")

    def test_explain_without_max_gpus_takes_the_layout(self, capsys):
        """No --max-gpus: a 64-GPU layout is judged on its rules only (the CLI's --max-gpus default is unset)."""
        code, out, _ = run(capsys, "explain", "--model", "llama-3-1-405b", "--tp", "32", "--pp", "2", "--batch", "64")
        assert code == 0 and "max_gpus" not in out.splitlines()[1]


class TestOptionsNotIgnored:
    def test_max_batch_with_batch_sizes(self, capsys):
        code, _, err = run(capsys, "frontier", *BASE, "--max-batch", "4", "--batch-sizes", "1,2,8")
        assert_one_line_error(code, err, "'max_batch' or 'batch_sizes', not both")

    def test_fixed_draft_length_is_kept(self, capsys, tmp_path):
        """--draft-tokens 5 under an engine: every row drafts 5 (it fell back to 0 where speculation was slower)."""
        path = tmp_path / "f.csv"
        code, _, _ = run(capsys, "frontier", "--model", "llama-3-70b", "--draft", "llama-3-8b", "--draft-tokens", "5",
                         "--max-gpus", "8", "--csv", str(path))
        assert code == 0
        assert set(pd.read_csv(path)["draft_tokens"]) == {5}

    def test_demand_below_one_request(self, capsys):
        """--demand 8: the reason is that one request alone is faster than 8 tok/s, not memory."""
        code, _, err = run(capsys, "frontier", *BASE, "--demand", "8")
        assert_one_line_error(code, err, "demand_cap: every configuration that fits serves more than the demand of 8",
                              "the least is")

    def test_ttft_cap_with_the_paper_model(self, capsys):
        """A TTFT cap on the paper's decode-only model (no prompt): refused by name, not an evaluation budget."""
        code, _, err = run(capsys, "frontier", *BASE, "--engine", "paper", "--ttft-max", "1")
        assert_one_line_error(code, err, "'ttft_max_s' needs a prompt to time")
        assert "evaluate more than" not in err


def test_all_batches_is_a_note(capsys):
    """--all-batches changes nothing (documented): it says so in one line on stderr, and the run succeeds."""
    code, _, err = run(capsys, "frontier", *BASE, "--max-gpus", "1", "--max-batch", "8", "--all-batches")
    assert code == 0
    assert err.strip().splitlines() == ["infecon: note: --all-batches is the default now (every integer batch) and "
                                        "changes nothing"]
