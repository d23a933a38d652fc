"""Tests for ``solver.cli``: the ``infecon`` command's outputs, its one-line errors and its console script."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from infecon.formulations.errors import InstanceError
from infecon.instances.engines import DEFAULT_ENGINE
from infecon.instances.loader import (
    HARDWARE_DIR,
    MODELS_DIR,
    builtin_hardware_names,
    builtin_model_names,
    get_hardware,
    get_model,
)
from infecon.solver import api
from infecon.solver.cli import main

INFECON = Path(sys.executable).parent / "infecon"
CONTRACT_HEADER = "tokens_per_second,usd_per_million_tokens,gpus,tp,pp,ep,batch,latency_ms,utilization"
LAYOUT_COLUMNS = ["gpus", "tp", "pp", "ep", "batch"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """``main(argv)`` as (exit code, stdout, stderr); an argparse exit counts as a return."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def frontier_csv(capsys, *argv: str) -> pd.DataFrame:
    code, out, err = run(capsys, "frontier", *argv, "--format", "csv")
    assert code == 0, err
    return pd.read_csv(io.StringIO(out))


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    """Exit 2, no traceback, one line: 'infecon: error: ...' or a usage error ending '(see: ... --help)'."""
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("infecon: error:") or (lines[0].startswith("infecon") and "--help)" in lines[0]), err
    for fragment in fragments:
        assert fragment in lines[0], err


@pytest.fixture(scope="module")
def llama_70b_frontier() -> pd.DataFrame:
    """The whole llama-3-70b / h100 frontier from the API at the CLI's default engine, the oracle for the queries."""
    return api.frontier("llama-3-70b", "h100", engine=DEFAULT_ENGINE).points


class TestFrontier:
    def test_table_starts_with_fastest(self, capsys):
        """The default table exits 0 and its first data row is the run that starts at the fastest point."""
        points = frontier_csv(capsys, "--model", "llama-3-8b", "--hardware", "h100")
        code, out, _ = run(capsys, "frontier", "--model", "llama-3-8b", "--hardware", "h100")
        assert code == 0
        lines = out.splitlines()
        header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["tok/s/req"])
        first = lines[header + 1].split()
        fastest = float(first[0].split("-")[0])  # a run's speeds read "first-last"
        assert fastest == pytest.approx(points["tokens_per_second"].max(), abs=0.05)  # table rounds to 0.1
        assert int(first[2]) == points["gpus"].iloc[0]

    def test_table_shows_runs_and_all_shows_points(self, capsys):
        """--exact: one row per run of a layout: its batch span and point count add up to every point; --all has
        a row each."""
        points = frontier_csv(capsys, "--model", "llama-3-70b", "--hardware", "h100")
        code, out, _ = run(capsys, "frontier", "--model", "llama-3-70b", "--hardware", "h100", "--exact")
        assert code == 0
        lines = out.splitlines()
        assert f"{len(points)} Pareto-optimal configurations in " in lines[1]
        header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["tok/s/req"])
        columns = lines[header].replace("$/M tok", "$/M_tok").replace("MFU %", "MFU_%").split()
        rows = [line.split() for line in lines[header + 1:] if line.split() and line.split()[0][0].isdigit()]
        layout = points[["tp_rows", "tp_cols", "pp", "ep"]].to_numpy()
        runs = 1 + int((layout[1:] != layout[:-1]).any(axis=1).sum())
        assert len(rows) == runs < len(points)
        assert sum(int(row[columns.index("points")]) for row in rows) == len(points)
        first_batches = rows[0][columns.index("batch")].split("-")
        assert int(first_batches[0]) == points["batch"].iloc[0]
        code, out, _ = run(capsys, "frontier", "--model", "llama-3-70b", "--hardware", "h100", "--all")
        assert code == 0
        assert sum(1 for line in out.splitlines()[3:] if line.split() and line.split()[0][0].isdigit()) == len(points)

    def test_default_table_thins_near_ties_and_the_csv_keeps_them(self, capsys):
        """The default table prints the runs of the points the CSV marks shown; 'points' adds up to every point."""
        points = frontier_csv(capsys, "--model", "llama-3-70b", "--hardware", "h100")
        assert points["shown"].dtype == bool and 0 < points["shown"].sum() < len(points)
        code, out, _ = run(capsys, "frontier", "--model", "llama-3-70b", "--hardware", "h100")
        assert code == 0
        lines = out.splitlines()
        assert f"{len(points)} Pareto-optimal configurations in " in lines[1] and "within 1 %" in lines[1]
        header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["tok/s/req"])
        columns = lines[header].replace("$/M tok", "$/M_tok").replace("MFU %", "MFU_%").split()
        rows = [line.split() for line in lines[header + 1:] if line.split() and line.split()[0][0].isdigit()]
        kept = points[points["shown"]]
        layout = kept[["tp_rows", "tp_cols", "pp", "ep"]].to_numpy()
        assert len(rows) == 1 + int((layout[1:] != layout[:-1]).any(axis=1).sum())
        assert sum(int(row[columns.index("points")]) for row in rows) == len(points)
        looser = run(capsys, "frontier", "--model", "llama-3-70b", "--hardware", "h100", "--tolerance", "5")[1]
        assert len(looser.splitlines()) < len(lines)  # a looser tolerance folds more near-ties

    def test_tolerance_is_checked(self, capsys):
        """--tolerance is a percentage in [0, 50]; anything else is one line and exit 2."""
        code, _, err = run(capsys, "frontier", "--model", "llama-3-8b", "--tolerance", "80")
        assert code == 2 and "--tolerance must be a number in [0, 50]" in err
        code, _, err = run(capsys, "frontier", "--model", "llama-3-8b", "--tolerance", "2", "--min-speed", "60")
        assert code == 2 and "--tolerance is about a whole frontier's table" in err
        code, _, err = run(capsys, "frontier", "--model", "llama-3-8b", "--exact", "--max-cost", "2")
        assert code == 2 and "--exact is about a whole frontier's table" in err

    def test_batch_ladder_and_the_old_all_batches_flag(self, capsys):
        """--batch-ladder searches 1, 2, 3, 4, 6, 8, ...; --all-batches is accepted and changes nothing."""
        ladder = frontier_csv(capsys, "--model", "llama-3-70b", "--hardware", "h100", "--batch-ladder")
        steps = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072,
                 4096, 6144, 8192, 12288, 16384, 24576, 32768, 49152, 65536, 98304}
        assert set(ladder["batch"]) <= steps
        every = frontier_csv(capsys, "--model", "llama-3-70b", "--hardware", "h100")
        alias = frontier_csv(capsys, "--model", "llama-3-70b", "--hardware", "h100", "--all-batches")
        assert not set(every["batch"]) <= steps
        pd.testing.assert_frame_equal(every, alias)

    def test_csv_contract(self, capsys):
        """The CSV header starts with the stable contract columns; speed and cost both fall strictly down the rows."""
        code, out, _ = run(capsys, "frontier", "--model", "llama-3-8b", "--hardware", "h100", "--format", "csv")
        assert code == 0
        assert out.splitlines()[0].startswith(CONTRACT_HEADER + ",")
        points = pd.read_csv(io.StringIO(out))
        assert len(points) > 1
        assert points["tokens_per_second"].diff().iloc[1:].lt(0).all()
        assert points["usd_per_million_tokens"].diff().iloc[1:].lt(0).all()

    def test_csv_and_plot_files(self, capsys, tmp_path):
        """--csv writes the same contract CSV, and --plot a PNG, creating parent folders."""
        csv_path, png_path = tmp_path / "out" / "f.csv", tmp_path / "plots" / "f.png"
        code, out, _ = run(capsys, "frontier", "--model", "llama-3-8b", "--hardware", "h100",
                           "--csv", str(csv_path), "--plot", str(png_path))
        assert code == 0
        assert csv_path.read_text().startswith(CONTRACT_HEADER + ",")
        assert len(pd.read_csv(csv_path)) > 1
        assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"wrote {csv_path}" in out and f"wrote {png_path}" in out

    def test_min_speed(self, capsys, llama_70b_frontier):
        """--min-speed 60 returns one row: at least 60 tok/s, at the frontier's cheapest cost for that speed."""
        row = frontier_csv(capsys, "--model", "llama-3-70b", "--hardware", "h100", "--min-speed", "60")
        assert len(row) == 1
        assert row["tokens_per_second"].iloc[0] >= 60
        fast_enough = llama_70b_frontier[llama_70b_frontier["tokens_per_second"] >= 60]
        assert row["usd_per_million_tokens"].iloc[0] == pytest.approx(fast_enough["usd_per_million_tokens"].min(),
                                                                      rel=1e-12)

    def test_max_cost(self, capsys, llama_70b_frontier):
        """--max-cost 2.0 returns one row: at most $2/M tokens, at the frontier's top speed for that cost."""
        row = frontier_csv(capsys, "--model", "llama-3-70b", "--hardware", "h100", "--max-cost", "2.0")
        assert len(row) == 1
        assert row["usd_per_million_tokens"].iloc[0] <= 2.0
        cheap_enough = llama_70b_frontier[llama_70b_frontier["usd_per_million_tokens"] <= 2.0]
        assert row["tokens_per_second"].iloc[0] == pytest.approx(cheap_enough["tokens_per_second"].max(), rel=1e-12)

    def test_model_file(self, capsys, tmp_path):
        """--model-file alone (no --model) serves a user's file, and gives the built-in's frontier for its copy."""
        path = tmp_path / "mine.toml"
        path.write_text((MODELS_DIR / "llama_3_8b.toml").read_text())
        mine = frontier_csv(capsys, "--model-file", str(path), "--max-gpus", "8")
        builtin = frontier_csv(capsys, "--model", "llama-3-8b", "--max-gpus", "8")
        pd.testing.assert_frame_equal(mine[LAYOUT_COLUMNS], builtin[LAYOUT_COLUMNS])

    @pytest.mark.parametrize("backend", ["cpsat", "milp"])
    def test_backends_agree(self, capsys, backend):
        """cpsat and milp give the default backend's rows, layout for layout (the paper's model, which they encode)."""
        args = ("--model", "llama-3-8b", "--hardware", "h100", "--max-gpus", "16", "--engine", "paper",
                "--max-batch", "512")
        default = frontier_csv(capsys, *args)
        other = frontier_csv(capsys, *args, "--backend", backend)
        pd.testing.assert_frame_equal(other[LAYOUT_COLUMNS], default[LAYOUT_COLUMNS])

    @pytest.mark.parametrize("backend", ["cpsat", "milp"])
    def test_backends_agree_on_the_default_serving_model(self, capsys, backend):
        """Under the default engine and mode (closed loop) with TTFT/TPOT caps, cpsat and milp give the same rows."""
        args = ("--model", "llama-3-8b", "--hardware", "h100", "--max-gpus", "8", "--isl", "2000", "--osl", "500",
                "--ttft-max", "0.2", "--tpot-max", "0.02", "--max-batch", "256")
        default = frontier_csv(capsys, *args)
        other = frontier_csv(capsys, *args, "--backend", backend)
        assert len(default) > 0
        pd.testing.assert_frame_equal(other[LAYOUT_COLUMNS], default[LAYOUT_COLUMNS])


class TestExplain:
    def test_breakdown(self, capsys):
        """explain prints the terms, which one binds, and HBM use."""
        code, out, _ = run(capsys, "explain", "--model", "llama-3-70b", "--hardware", "h100", "--tp", "8", "--pp", "1",
                           "--batch", "64", "--isl", "7500", "--osl", "1000")
        assert code == 0
        assert "binding" in out and "HBM" in out
        assert "hbm_read_ms" in out and "compute_ms" in out
        assert "DOES NOT FIT" not in out

    def test_overflow(self, capsys):
        """A batch that overflows HBM says DOES NOT FIT and by how many GB."""
        code, out, _ = run(capsys, "explain", "--model", "llama-3-70b", "--hardware", "h100", "--tp", "8",
                           "--batch", "4096", "--isl", "7500", "--osl", "1000")
        assert code == 1  # explained, but not deployable
        assert "DOES NOT FIT" in out
        assert "over by" in out and "GB" in out

    def test_invalid_layout(self, capsys):
        """A layout that breaks a deployment rule is still explained, flagged as invalid."""
        code, out, _ = run(capsys, "explain", "--model", "llama-3-8b", "--tp", "3")
        assert code == 1
        assert "NOT A VALID DEPLOYMENT" in out


class TestErrors:
    @pytest.mark.parametrize(("argv", "fragments"), [
        (["frontier", "--model", "gpt-5-ultra"], ["unknown model 'gpt-5-ultra'", "llama_3_8b"]),
        (["frontier", "--model", "llama-3-8b", "--hardware", "h1000"], ["unknown hardware 'h1000'"]),
        (["frontier", "--model", "llama-3-8b", "--context", "-5"], ["--context"]),
        (["frontier", "--model", "llama-3-8b", "--backend", "gurobi"], ["--backend"]),
        (["frontier", "--model", "llama-3-8b", "--max-batch", "0"], ["--max-batch"]),
        (["frontier", "--model", "llama-3-1-405b", "--hardware", "groq", "--max-gpus", "8"], ["hbm_capacity"]),
        (["frontier", "--model", "llama-3-70b", "--min-speed", "60", "--max-cost", "2"], ["--min-speed"]),
        (["explain", "--model", "llama-3-8b", "--tp-grid", "4by8"], ["--tp-grid"]),
        (["frontier"], ["--model"]),
        (["frontier", "--model", "llama-3-8b", "--model-file", "x.toml"], ["--model"]),
    ], ids=["unknown-model", "unknown-hardware", "negative-context", "unknown-backend", "zero-batch", "fits-nowhere",
            "both-queries", "bad-grid", "no-model", "two-models"])
    def test_bad_input(self, capsys, argv, fragments):
        """Bad input exits 2 with one error line naming the problem, never a traceback."""
        code, _, err = run(capsys, *argv)
        assert_one_line_error(code, err, *fragments)

    def test_min_speed_above_maximum(self, capsys):
        """A --min-speed just above the frontier's fastest point is an expected error."""
        fastest = frontier_csv(capsys, "--model", "llama-3-8b")["tokens_per_second"].max()
        code, _, err = run(capsys, "frontier", "--model", "llama-3-8b", "--min-speed", f"{fastest * 1.01:.1f}")
        assert_one_line_error(code, err, "no configuration reaches")

    def test_malformed_model_file(self, capsys, tmp_path):
        """A malformed --model-file names the file."""
        path = tmp_path / "mine.toml"
        path.write_text('name = "x"\nn_layers = = 3\n')
        code, _, err = run(capsys, "frontier", "--model-file", str(path))
        assert_one_line_error(code, err, str(path), "malformed TOML")

    def test_binary_model_file(self, capsys, tmp_path):
        """A binary file passed as the model is one error line, not a UnicodeDecodeError."""
        path = tmp_path / "model.safetensors"
        path.write_bytes(b"\x89\xff\xfe\x00" * 8)
        code, _, err = run(capsys, "frontier", "--model", str(path))
        assert_one_line_error(code, err, str(path))

    def test_bad_hardware_file(self, capsys, tmp_path):
        """A hardware file with an unknown protocol names file and protocol."""
        path = tmp_path / "mine.toml"
        path.write_text((HARDWARE_DIR / "h100_sxm.toml").read_text().replace("[protocols.LL128]", "[protocols.NVLS]"))
        code, _, err = run(capsys, "frontier", "--model", "llama-3-8b", "--hardware-file", str(path))
        assert_one_line_error(code, err, str(path), "NVLS")

    @pytest.mark.parametrize("option", ["--csv", "--plot"])
    def test_unwritable_output(self, capsys, tmp_path, option):
        """An output path under a regular file is one error line, not an OSError traceback."""
        blocker = tmp_path / "file"
        blocker.write_text("")
        code, _, err = run(capsys, "frontier", "--model", "llama-3-8b", option, str(blocker / "out.png"))
        assert_one_line_error(code, err, option, "is a file, not a folder")

    def test_unknown_plot_format(self, capsys, tmp_path):
        """A plot suffix matplotlib cannot write is one error line."""
        code, _, err = run(capsys, "frontier", "--model", "llama-3-8b", "--plot", str(tmp_path / "f.xyz"))
        assert_one_line_error(code, err, "xyz")

    @pytest.mark.parametrize("argv", [["--debug", "frontier", "--model", "gpt-5-ultra"],
                                      ["frontier", "--model", "gpt-5-ultra", "--debug"]],
                             ids=["before-command", "after-command"])
    def test_debug_raises(self, capsys, argv):
        """--debug, before or after the command, lets the error propagate with its traceback."""
        with pytest.raises(InstanceError, match="gpt-5-ultra"):
            main(argv)


class TestListings:
    def test_models(self, capsys):
        """`infecon models` lists every built-in model."""
        code, out, _ = run(capsys, "models")
        assert code == 0
        for name in builtin_model_names():
            assert name in out and get_model(name).name in out

    def test_hardware(self, capsys):
        """`infecon hardware` lists every built-in accelerator."""
        code, out, _ = run(capsys, "hardware")
        assert code == 0
        for name in builtin_hardware_names():
            assert name in out and get_hardware(name).name in out

    @pytest.mark.parametrize("argv", [["--help"], ["frontier", "--help"], ["explain", "--help"]],
                             ids=["top", "frontier", "explain"])
    def test_help_shows_examples(self, capsys, argv):
        """Help exits 0 and shows the worked examples."""
        code, out, _ = run(capsys, *argv)
        assert code == 0
        assert "examples:" in out
        assert "infecon frontier --model llama-3-70b --hardware h100" in out

    def test_no_command(self, capsys):
        """No command prints the help and exits 2."""
        code, out, _ = run(capsys)
        assert code == 2
        assert "frontier" in out


class TestConsoleScript:
    def test_installed_script(self, tmp_path):
        """The installed `infecon` script writes the contract CSV, and exits 2 with one line on bad input."""
        ok = subprocess.run([str(INFECON), "frontier", "--model", "llama-3-8b", "--format", "csv"],
                            capture_output=True, text=True, timeout=60, check=False)
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.startswith(CONTRACT_HEADER + ",")
        assert len(pd.read_csv(io.StringIO(ok.stdout))) > 1
        bad = subprocess.run([str(INFECON), "frontier", "--model", "gpt-5-ultra"],
                             capture_output=True, text=True, timeout=60, check=False)
        assert_one_line_error(bad.returncode, bad.stderr, "unknown model")

    def test_milp_stdout_is_pure_csv(self):
        """With --backend milp, stdout is still exactly the CSV (the solver's banner must not reach it)."""
        result = subprocess.run([str(INFECON), "frontier", "--model", "llama-3-8b", "--max-gpus", "16",
                                 "--engine", "paper", "--max-batch", "512", "--backend", "milp", "--format", "csv"],
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(CONTRACT_HEADER + ",")

    def test_closed_pipe(self):
        """A reader that stops early (`infecon ... | head -1`) gets no traceback."""
        process = subprocess.Popen([str(INFECON), "frontier", "--model", "llama-3-8b", "--all-batches",
                                    "--max-batch", "8192", "--format", "csv"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = process.stdout.readline()
        process.stdout.close()  # ~1.7 MB remain unread: more than a pipe buffer, so the writer meets EPIPE
        stderr = process.stderr.read().decode()
        process.wait(timeout=60)
        assert first.decode().startswith(CONTRACT_HEADER)
        assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr


class TestBatchCapNote:
    """The table says when --max-batch, not the physics, ends the frontier's cheap side."""

    def test_note_when_cheapest_point_uses_the_largest_batch(self, capsys):
        """With --max-batch 16 the cheapest Llama 3 8B point uses batch 16, and the output says so."""
        assert main(["frontier", "--model", "llama-3-8b", "--hardware", "h100", "--max-batch", "16"]) == 0
        assert "largest batch searched (16)" in capsys.readouterr().out

    def test_no_note_when_memory_or_cost_ends_the_frontier(self, capsys):
        """At 100K context HBM capacity, not --max-batch, limits the batch: no note."""
        assert main(["frontier", "--model", "llama-3-70b", "--isl", "99500", "--osl", "1000"]) == 0
        assert "largest batch searched" not in capsys.readouterr().out


class TestAbsurdBatches:
    """Issue 11 row 2: activations count in HBM, so a huge --max-batch is capped by memory, not accepted."""

    def test_huge_max_batch_stops_at_what_fits(self, tmp_path):
        """--max-batch 1e11 at context 0, on the ladder: no point with more sequences than HBM holds (was 68.7e9)."""
        out = tmp_path / "f.csv"
        assert main(["frontier", "--model", "llama-3-70b", "--hardware", "h100", "--engine", "paper",
                     "--max-batch", "100000000000", "--batch-ladder", "--csv", str(out)]) == 0
        points = pd.read_csv(out)
        # 2 GPUs hold 70.55 GB of weights each; 9.45 GB left / 144,640 B of activations per sequence
        # (2 B x (2 x 8192 + 128,256 logits) over PP 2) = about 65,300 sequences; the ladder's last below is 49,152.
        assert points["batch"].max() == 49_152
        assert (points["hbm_used_gb_per_gpu"] <= 80.0).all()

    def test_huge_max_batch_at_every_integer_ends_at_the_last_batch_that_fits(self, tmp_path):
        """The same at integer resolution: the cheapest point is the largest batch that fits, the next one does not."""
        out = tmp_path / "f.csv"
        assert main(["frontier", "--model", "llama-3-70b", "--hardware", "h100", "--engine", "paper",
                     "--max-batch", "100000000000", "--csv", str(out)]) == 0
        last = pd.read_csv(out).iloc[-1]
        assert 65_000 < last["batch"] < 65_400  # about 65,300 sequences (the hand count above)
        layout = dict(tp_rows=int(last["tp_rows"]), tp_cols=int(last["tp_cols"]), pp=int(last["pp"]),
                      ep=int(last["ep"]), engine="paper")
        assert api.explain("llama-3-70b", "h100", batch=int(last["batch"]), **layout).fits
        assert not api.explain("llama-3-70b", "h100", batch=int(last["batch"]) + int(last["pp"]), **layout).fits
