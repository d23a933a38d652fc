"""Engine profiles: loading, validation, family mapping, and the paper profile reproducing the paper's model."""

from __future__ import annotations

import pytest

from infecon.formulations.errors import InstanceError
from infecon.instances.engines import builtin_engine_names, engine_family, get_engine, load_engine, resolve_engine
from infecon.solver import api


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
