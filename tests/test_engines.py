"""Engine profiles: loading, validation, family mapping, and the paper profile reproducing the paper's model."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from infecon.formulations.errors import InstanceError
from infecon.formulations.serving import pipelined_prefill_factor
from infecon.formulations.specs import Requests
from infecon.instances.engines import (
    ENGINES_DIR,
    builtin_engine_names,
    engine_family,
    get_engine,
    load_engine,
    resolve_engine,
)
from infecon.solver import api
from infecon.solver.cli import main

ROOT = Path(__file__).resolve().parents[1]


class TestEngineFiles:
    def test_builtin_profiles_load(self):
        """Every shipped profile loads, and each of its values has a source."""
        names = builtin_engine_names()
        assert {"generic", "paper"} <= set(names)
        for name in names:
            profile = get_engine(name)
            assert profile.name == name
            assert "name" in profile.sources

    def test_family(self):
        """The family is the text before the first '-': vllm-0.10-rocm is vllm."""
        assert engine_family("vllm-0.10-rocm") == "vllm"
        assert engine_family("SGLang") == "sglang"

    def test_a_wrapper_maps_to_the_engine_it_runs(self):
        """NIM serves through TensorRT-LLM (or the backend its variant names), and says so."""
        assert engine_family("nim-1.8-trtllm") == "trtllm"
        assert engine_family("nim-1.8-vllm") == "vllm"
        assert engine_family("nim-2.0") == "trtllm"  # the wrapper's default backend
        profile, note = resolve_engine("nim-1.8-trtllm")
        assert profile.name == "trtllm" and note == "nim runs trtllm: used trtllm"

    def test_unknown_family_falls_back_to_generic_and_says_so(self):
        profile, note = resolve_engine("mystery-1.0")
        assert profile.name == "generic"
        assert "mystery" in note and "generic" in note

    def test_bad_value_names_file_field_and_value(self, tmp_path):
        path = tmp_path / "bad.toml"
        path.write_text('name = "bad"\nflop_efficiency = 1.5\n')
        with pytest.raises(InstanceError, match=r"bad.toml: 'flop_efficiency' must be <= 1.0 \(got 1.5\)"):
            load_engine(path)

    def test_unknown_key(self, tmp_path):
        path = tmp_path / "typo.toml"
        path.write_text('name = "typo"\nkernel_us = 4\n')
        with pytest.raises(InstanceError, match="unknown field 'kernel_us'"):
            load_engine(path)

    def test_unknown_engine_name(self):
        with pytest.raises(InstanceError, match="unknown engine 'nope'"):
            get_engine("nope")


class TestPaperEngine:
    def test_paper_frontier_point_for_point(self):
        """engine='paper' gives the frontier of the paper's model (no engine), point for point."""
        plain = api.frontier("llama-3-70b", "h100", context_tokens=8000).points
        paper = api.frontier("llama-3-70b", "h100", context_tokens=8000, engine="paper").points
        assert len(plain) == len(paper)
        for column in plain.columns:  # Series.equals: exact, with missing values (extrapolated) equal where both are
            assert plain[column].equals(paper[column]), column

    def test_serving_slo_constraints(self):
        """--ttft-max and --tpot-max bind: every frontier point meets them."""
        points = api.frontier("llama-3-70b", "h100", isl=2000, osl=500, engine="generic", ttft_max_s=0.2,
                              tpot_max_s=0.05).points
        assert len(points) > 0
        assert (points["ttft_ms"] <= 200).all() and (points["tpot_ms"] <= 50).all()

    def test_slo_needs_an_engine(self):
        with pytest.raises(InstanceError, match="need a serving engine"):
            api.build_problem("llama-3-70b", "h100", ttft_max_s=1.0)


class TestOneChunkSetting:
    """Issue 21: the engine's token budget per step is one key, ``chunk_tokens``, read through ``prefill_chunk``."""

    def test_the_old_key_is_refused_with_its_new_name(self, tmp_path):
        path = tmp_path / "old.toml"
        path.write_text((ENGINES_DIR / "vllm.toml").read_text().split("\n[")[0]
                        + "\nprefill_chunk_tokens = { value = 4096, source = \"mine\" }\n")
        with pytest.raises(InstanceError, match=r"old.toml: field 'prefill_chunk_tokens' is now 'chunk_tokens'.*"
                                                r"keep one of the two"):
            load_engine(path)
        path.write_text('name = "x"\npaper = true\nprefill_chunk_tokens = 4096\n')
        with pytest.raises(InstanceError, match=r"'prefill_chunk_tokens' is now 'chunk_tokens'.*rename it$"):
            load_engine(path)

    def test_the_cli_says_so_in_one_line(self, tmp_path, capsys):
        path = tmp_path / "old.toml"
        path.write_text('name = "x"\npaper = true\nprefill_chunk_tokens = 4096\n')
        assert main(["frontier", "--model", "llama-3-8b", "--hardware", "h100", "--engine", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "'prefill_chunk_tokens' is now 'chunk_tokens'" in err

    def test_one_value_drives_pipelined_prefill_and_the_step_budget(self):
        """Halving chunk_tokens doubles a 128K prompt's chunks (16 -> 32): over 4 stages (32 + 3) / 128 of the
        pass; without chunked prefill, or with the paper's model, there is no chunk."""
        engine = dataclasses.replace(get_engine("vllm"), chunk_tokens=4096)
        assert engine.prefill_chunk() == 4096
        assert pipelined_prefill_factor(Requests(131072, 1), engine, [4]) == pytest.approx([35 / 128], rel=1e-15)
        assert dataclasses.replace(engine, chunked_prefill=False).prefill_chunk() is None
        assert get_engine("paper").prefill_chunk() is None

    def test_only_the_accessor_reads_the_field(self):
        """No module reads ``.chunk_tokens`` of a profile but ``EngineProfile.prefill_chunk`` (and the files' own
        loading, validation and writing), so the two uses cannot drift apart again."""
        allowed = {"specs.py", "engines.py", "calibration.py"}
        readers = []
        for path in [*ROOT.glob("formulations/**/*.py"), *ROOT.glob("solver/**/*.py"), *ROOT.glob("instances/*.py")]:
            tree = ast.parse(path.read_text())
            if any(isinstance(node, ast.Attribute) and node.attr == "chunk_tokens" for node in ast.walk(tree)):
                readers.append(path.name)
        assert set(readers) <= allowed, readers
