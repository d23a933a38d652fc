"""Issue 21, item 4: nothing lost. Every file the CLI writes goes to a temporary file in its folder and is renamed
into place; an output path equal to an input or to another output is refused before any work."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest

from infecon.solver import outputs, reports
from tests.cli_fuzz import MEASUREMENTS
from tests.solver.test_cli import assert_one_line_error, run

SMALL = ("--model", "llama-3-8b", "--hardware", "h100", "--max-gpus", "2")


def _interrupting_to_csv(self, path, *args, **kwargs):
    """Write half a file, then stop as Ctrl-C would."""
    Path(path).write_text("tokens_per_second,usd_per")
    raise KeyboardInterrupt


class TestInterruptedRuns:
    def test_existing_csv_survives_an_interrupt(self, tmp_path, capsys):
        """Ctrl-C in the middle of writing --csv leaves the previous file whole and no temporary file behind."""
        path = tmp_path / "f.csv"
        path.write_text("previous,run\n1,2\n")
        with mock.patch.object(pd.DataFrame, "to_csv", _interrupting_to_csv):
            code, _, _ = run(capsys, "frontier", *SMALL, "--csv", str(path))
        assert code == 130
        assert path.read_text() == "previous,run\n1,2\n"
        assert [p.name for p in tmp_path.iterdir()] == ["f.csv"]

    def test_existing_csv_survives_a_full_disk(self, tmp_path, capsys):
        path = tmp_path / "f.csv"
        path.write_text("previous\n")

        def full(self, target, *args, **kwargs):
            Path(target).write_text("trunc")
            raise OSError(28, "No space left on device")

        with mock.patch.object(pd.DataFrame, "to_csv", full):
            code, _, err = run(capsys, "frontier", *SMALL, "--csv", str(path))
        assert_one_line_error(code, err, "No space left on device")
        assert path.read_text() == "previous\n"
        assert [p.name for p in tmp_path.iterdir()] == ["f.csv"]

    def test_calibrate_out_survives(self, tmp_path, capsys):
        if not MEASUREMENTS.is_file():
            pytest.skip("the development measurements are not on this machine")
        path = tmp_path / "vllm.toml"
        path.write_text("old profile\n")
        with mock.patch.object(Path, "write_text", side_effect=OSError(28, "No space left on device")):
            code, _, err = run(capsys, "calibrate", "--data", str(MEASUREMENTS), "--engine", "vllm", "--no-held-out",
                               "--out", str(path))
        assert_one_line_error(code, err, "No space left on device")
        assert path.read_bytes() == b"old profile\n"

    def test_plot_is_renamed_into_place(self, tmp_path):
        """save_figure writes a temporary file of the same format and renames it: the suffix decides the format."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, _ = plt.subplots()
        path = reports.save_figure(fig, tmp_path / "p.pdf")
        assert path.read_bytes().startswith(b"%PDF")
        assert [p.name for p in tmp_path.iterdir()] == ["p.pdf"]


class TestClashes:
    def test_validate_out_is_its_data(self, tmp_path, capsys):
        if not MEASUREMENTS.is_file():
            pytest.skip("the development measurements are not on this machine")
        data = tmp_path / "d.csv"
        shutil.copy(MEASUREMENTS, data)
        before = data.read_bytes()
        code, _, err = run(capsys, "validate", "--data", str(data), "--out", str(data))
        assert_one_line_error(code, err, "--out", "is the input of --data")
        assert data.read_bytes() == before

    def test_csv_and_plot_one_file(self, tmp_path, capsys):
        path = tmp_path / "p.png"
        code, _, err = run(capsys, "frontier", *SMALL, "--csv", str(path), "--plot", str(path))
        assert_one_line_error(code, err, "--plot", "is also the output of --csv")
        assert not path.exists()

    def test_csv_over_the_model_file(self, tmp_path, capsys):
        from infecon.instances.loader import MODELS_DIR

        model = tmp_path / "m.toml"
        shutil.copy(MODELS_DIR / "llama_3_8b.toml", model)
        code, _, err = run(capsys, "frontier", "--model-file", str(model), "--csv", str(model))
        assert_one_line_error(code, err, "--csv", "is the input of --model-file")

    def test_refuse_clashes_through_links(self, tmp_path):
        """Two spellings of one file (a symlink, ./) are one file."""
        target = tmp_path / "a.csv"
        target.write_text("x")
        (tmp_path / "b.csv").symlink_to(target)
        with pytest.raises(outputs.InfeconError, match="is the input of --data"):
            outputs.refuse_clashes({"--out": tmp_path / "b.csv"}, {"--data": target})


class TestValidateEngine:
    def test_unknown_engine_is_refused(self, capsys):
        """validate --engine foo: refused, not silently replaced by generic."""
        if not MEASUREMENTS.is_file():
            pytest.skip("the development measurements are not on this machine")
        code, _, err = run(capsys, "validate", "--data", str(MEASUREMENTS), "--engine", "foo")
        assert_one_line_error(code, err, "unknown engine 'foo'")


class TestStandardOutput:
    """A closed or full standard output is one line on stderr and exit 2, never a traceback."""

    def _shell(self, redirect: str) -> subprocess.CompletedProcess:
        command = f"{shlex.quote(sys.executable)} -m infecon frontier --model llama-3-8b --max-gpus 1 {redirect}"
        return subprocess.run(["sh", "-c", command], capture_output=False, stderr=subprocess.PIPE, text=True,
                              timeout=300, check=False)

    def test_closed(self):
        done = self._shell(">&-")
        assert done.returncode == 2 and done.stderr.strip().splitlines() == [
            "infecon: error: standard output is closed; redirect it to a file or /dev/null"]

    @pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
    def test_full(self):
        done = self._shell("> /dev/full")
        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == ["infecon: error: cannot write the output: No space left on device"]


class TestWriteTogether:
    def test_all_files_or_none(self, tmp_path):
        """One failing writer: no file of the group is replaced, the old ones stay whole, no temporary file is left."""
        old = tmp_path / "plan.csv"
        old.write_text("old\n")

        def fail(path: Path) -> None:
            path.write_text("half")
            raise OSError("disk full")

        with pytest.raises(OSError, match="disk full"):
            outputs.write_together({old: lambda p: p.write_text("new\n"), tmp_path / "summary.json": fail})
        assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.csv"]
        assert old.read_text() == "old\n"

    def test_success_replaces_every_file(self, tmp_path):
        paths = outputs.write_together({tmp_path / name: (lambda p, n=name: p.write_text(n))
                                        for name in ("a.csv", "b.json")})
        assert [p.read_text() for p in paths] == ["a.csv", "b.json"]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.json"]
