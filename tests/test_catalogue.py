"""The 2025-26 model catalogue (issue 20): each model's file, its Hugging Face config and id, and a frontier.

``tests/data/hf_configs/<stem>.json`` holds the model-relevant fields of each model's published
``config.json`` (its ``_source`` key gives the address); importing it must give the built-in file's numbers.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from infecon.formulations.errors import InstanceError
from infecon.instances.loader import MODELS_DIR, builtin_model_names, get_model, load_model
from infecon.solver import api
from infecon.solver.api import frontier
from infecon.solver.cli import main
from infecon.solver.epsilon import trace_frontier
from tests.solver.backend_contract import assert_same_frontier

HF_CONFIGS = Path(__file__).resolve().parent / "data" / "hf_configs"
CATALOGUE_2025 = tuple(sorted(p.stem for p in HF_CONFIGS.glob("*.json")))
HF_IDS = {stem: get_model(stem).hf_id for stem in CATALOGUE_2025}


def import_config(tmp_path: Path, stem: str) -> Path:
    """The stored config copied to ``<tmp>/<stem>/config.json``, as a user would have it."""
    folder = tmp_path / stem
    folder.mkdir()
    shutil.copy(HF_CONFIGS / f"{stem}.json", folder / "config.json")
    return folder / "config.json"


class TestCatalogue:
    def test_issue_models_are_listed(self):
        """Every model issue 20 names is a built-in file with a stored config."""
        wanted = {"qwen3_8b", "qwen3_32b", "qwen3_30b_a3b", "qwen3_235b_a22b", "kimi_k2", "deepseek_v3_1",
                  "deepseek_v3_2", "glm_4_5", "minimax_m2", "mistral_small_3", "gpt_oss_20b", "gpt_oss_120b",
                  "llama_4_scout", "llama_4_maverick"}
        assert wanted <= set(CATALOGUE_2025) <= set(builtin_model_names())

    @pytest.mark.parametrize("stem", CATALOGUE_2025)
    def test_config_json_imports_to_the_builtin(self, tmp_path, stem):
        """The published config.json maps to exactly the built-in file's numbers (the name aside)."""
        imported = load_model(import_config(tmp_path, stem))
        builtin = get_model(stem)
        assert dataclasses.replace(imported, name=builtin.name) == builtin

    @pytest.mark.parametrize("stem", CATALOGUE_2025)
    def test_stored_config_cites_the_builtin_repository(self, stem):
        """The stored config copy names the same Hugging Face repository as the built-in file's hf_id."""
        source = json.loads((HF_CONFIGS / f"{stem}.json").read_text())["_source"]
        assert f"huggingface.co/{HF_IDS[stem]}/" in source

    @pytest.mark.parametrize("stem", CATALOGUE_2025)
    def test_hugging_face_id_resolves(self, stem):
        """``--model Qwen/Qwen3-32B`` (any case) selects the built-in file of that repository."""
        hf_id = HF_IDS[stem]
        assert get_model(hf_id) == load_model(MODELS_DIR / f"{stem}.toml")
        assert get_model(hf_id.upper()) == get_model(stem)

    def test_kimi_k2_5_is_kimi_k2s_language_model(self):
        """Kimi K2.5's text model is Kimi K2's architecture: every number equal, only the names differ."""
        k2, k25 = get_model("kimi_k2"), get_model("kimi_k2_5")
        assert dataclasses.replace(k25, name=k2.name, hf_id=k2.hf_id) == k2

    def test_unknown_hugging_face_id(self):
        """An id no built-in file declares is an unknown model, listing the built-ins."""
        with pytest.raises(InstanceError, match="unknown model 'Qwen/Qwen9-1T'"):
            get_model("Qwen/Qwen9-1T")

    @pytest.mark.parametrize("stem", CATALOGUE_2025)
    def test_frontier_runs(self, stem):
        """A frontier of each new model (serving model, isl 2048 / osl 512) on H200s has points, fastest first and
        cheaper down the rows."""
        points = frontier(stem, "h200", engine="generic", weight_bits=8, isl=2048, osl=512, max_gpus=16).points
        assert len(points) >= 1
        assert points["usd_per_million_tokens"].is_monotonic_decreasing
        assert (points["tokens_per_second"].diff().dropna() <= 0).all()


class TestCommandLine:
    def run(self, capsys, *argv: str) -> tuple[int, str, str]:
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    def test_models_lists_ids_and_layer_mix(self, capsys):
        """`infecon models` shows each new model's Hugging Face id and its attention layer mix."""
        code, out, _ = self.run(capsys, "models")
        assert code == 0
        for stem in CATALOGUE_2025:
            assert stem in out and HF_IDS[stem] in out
        assert "18 full + 18 sliding-128" in out  # gpt-oss-120b
        assert "12 full + 36 chunked-8192" in out  # Llama 4
        assert "12 full + 36 linear" in out  # Qwen3-Next
        assert "15 full + 45 linear" in out  # Qwen3.5-397B-A17B

    def test_frontier_by_hugging_face_id_with_mxfp4(self, capsys):
        """`infecon frontier --model openai/gpt-oss-20b --weight-format mxfp4` prints a table naming the format."""
        code, out, err = self.run(capsys, "frontier", "--model", "openai/gpt-oss-20b", "--hardware", "h100",
                                  "--weight-format", "mxfp4", "--max-gpus", "2")
        assert code == 0, err
        assert "gpt-oss-20b on NVIDIA H100 SXM" in out and "weights mxfp4" in out

    def test_conflicting_weight_bits(self, capsys):
        """--weight-bits 8 with --weight-format mxfp4 is one line naming both, exit 2."""
        code, _, err = self.run(capsys, "frontier", "--model", "gpt-oss-20b", "--weight-bits", "8",
                                "--weight-format", "mxfp4")
        assert code == 2
        assert "'weight_bits' 8 conflicts with 'weight_format' mxfp4" in err


# One model per new piece of physics: MXFP4 with sliding windows, linear attention, sparse attention, chunked.
NEW_PHYSICS = [("gpt_oss_20b", {"weight_format": "mxfp4"}), ("qwen3_next_80b_a3b", {"weight_bits": 8}),
               ("deepseek_v3_2", {"weight_bits": 8}), ("llama_4_scout", {"weight_bits": 8})]


@pytest.mark.parametrize(("stem", "knobs"), NEW_PHYSICS, ids=[stem for stem, _ in NEW_PHYSICS])
def test_backends_agree_under_the_serving_model(stem, knobs):
    """Under the default engine (prefill, closed loop) CP-SAT and MILP equal the enumeration on the new layer types.

    ``tests/solver/test_builtin_agreement.py`` checks every built-in model, these included, on the paper's
    decode-only model; this adds the serving model's prefill pass, where the windows and the sparse selection
    also shape the prompt's attention.
    """
    problem = api.build_problem(stem, "h200", engine="generic", isl=4000, osl=500, max_gpus=8, batch_mode="ladder",
                                **knobs)
    assert problem.workload.context_tokens == 4250  # isl + osl/2: the windows and the sparse selection bind
    expected = trace_frontier(problem, "enumerate")
    assert len(expected) > 0
    for backend in ("cpsat", "milp"):
        assert_same_frontier(expected, trace_frontier(problem, backend))
