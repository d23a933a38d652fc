"""Deployment recipes: every flag comes from the engine's record, numbers from the deployment, refusals say why."""

import dataclasses
import shlex
from pathlib import Path

import pytest

from infecon.formulations.errors import InstanceError
from infecon.instances.loader import get_hardware, get_model
from infecon.instances.recipes import RECIPES_DIR, get_recipe_record, load_recipe_record, recipe_engine_names
from infecon.solver import api, recipes
from infecon.solver.cli import main
from infecon.solver.recipe_hooks import fleet_recipes, recipe_for_row
from infecon.solver.recipes import (
    Deployment,
    RecipeError,
    disaggregated_recipe,
    hf_model_id,
    max_tokens_per_step,
    recipe,
)

LLAMA = get_model("llama-3-70b")
DEEPSEEK = get_model("deepseek-v3")
H100, H200, MI300X = get_hardware("h100"), get_hardware("h200"), get_hardware("mi300x")


def llama(**changes) -> Deployment:
    return dataclasses.replace(Deployment(LLAMA, H100, tp_rows=1, tp_cols=8, pp=1, ep=1, batch=64), **changes)


def deepseek(**changes) -> Deployment:
    """DeepSeek-V3 on 8 H200s, attention DP with EP 8 (the frontier's cheap end), 8-bit weights, isl 8000 / osl 1000."""
    base = Deployment(DEEPSEEK, H200, tp_rows=1, tp_cols=8, pp=1, ep=8, batch=194, attention_dp=True, weight_bits=8,
                      isl=8000, osl=1000)
    return dataclasses.replace(base, **changes)


DEPLOYMENTS = {
    "llama-tp8": llama(),
    "llama-pp2-two-nodes-draft-kv8": llama(pp=2, drafter=get_model("llama-3-8b"), draft_tokens=4, kv_bits=8),
    "llama-fp8": llama(weight_bits=8, tp_cols=4, batch=100),
    "deepseek-attention-dp": deepseek(),
    "deepseek-heads-ep8": deepseek(attention_dp=False),
}


def allowed_tokens(*records) -> set[str]:
    """Every flag a recipe may emit: the records' flags, and the flags inside their launchers and values."""
    tokens = set()
    for record in records:
        tokens |= set(record.flags.values()) | ({record.model} if record.model else set())
        for text in (record.launcher, *record.values.values()):
            tokens |= {t for t in text.split() if t.startswith("-")}
    return tokens


def emitted_flags(commands) -> set[str]:
    """The flags a recipe's shell commands pass (comments and line continuations dropped)."""
    words = []
    for command in commands:
        text = "\n".join(line for line in command.splitlines() if not line.startswith("#"))
        words += shlex.split(text.replace("\\\n", " ").rstrip(" &"))
    return {w for w in words if w.startswith("-")}


class TestAgainstTheRecord:
    @pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
    @pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
    def test_every_flag_and_yaml_key_is_in_the_engines_record(self, engine, name):
        """No flag or extra-options key outside instances/engines/recipes/<engine>.toml (each with its source)."""
        record = get_recipe_record(engine)
        made = recipe(DEPLOYMENTS[name], engine)
        assert emitted_flags(made.commands) == set(made.flags)
        assert set(made.flags) <= allowed_tokens(record)
        assert set(made.options) <= set(record.options.values())
        for key in made.options:  # and the YAML written holds exactly those keys' leaves
            assert key.split(".")[-1] + ":" in "".join(made.files.values())

    @pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
    def test_disaggregated_pairs_use_only_recorded_flags(self, engine):
        made = disaggregated_recipe(llama(), llama(), engine, prefill_per_decode=0.61)
        records = [get_recipe_record(engine)] + ([] if engine == "sglang" else [get_recipe_record("dynamo")])
        assert emitted_flags(made.commands) == set(made.flags)
        assert set(made.flags) <= allowed_tokens(*records)
        assert set(made.options) <= {v for r in records for v in r.options.values()}
        assert "--disaggregation-mode" in made.flags
        assert "run 0.61 prefill instances per decode instance" in made.text()

    def test_every_record_entry_has_a_source(self):
        """The loader refuses an entry without its documentation; the shipped records all load."""
        assert set(recipe_engine_names()) == {"vllm", "sglang", "trtllm", "dynamo"}
        for name in recipe_engine_names():
            record = load_recipe_record(RECIPES_DIR / f"{name}.toml")
            assert record.version and all(record.source("flags", k) for k in record.flags)


class TestWhatACommandSays:
    def test_vllm_llama_70b_tp8_batch_64(self):
        """The issue's example: vllm serve with the model's HF id, TP 8, 64 sequences; a step carries 64 decode
        tokens plus one 1024-token prompt = 1088 tokens; the longest sequence is 1024 + 1024 = 2048."""
        text = recipe(llama(), "vllm").text()
        assert "vllm serve meta-llama/Meta-Llama-3-70B \\\n  --tensor-parallel-size 8 \\\n  --max-num-seqs 64" in text
        assert "--max-num-batched-tokens 1088" in text and "--max-model-len 2048" in text
        assert "--gpu-memory-utilization 0.9" in text and "--pipeline-parallel-size" not in text

    def test_sglang_and_trtllm_deepseek_attention_dp(self):
        """SGLang: --tp-size 8 --dp-size 8 --enable-dp-attention --ep-size 8; TensorRT-LLM: --ep_size 8 and
        enable_attention_dp in the YAML, 194 sequences over 8 ranks = ceil(24.25) = 25 per rank."""
        sglang = recipe(deepseek(), "sglang").text()
        for fragment in ("--tp-size 8", "--dp-size 8", "--enable-dp-attention", "--ep-size 8",
                         "--max-running-requests 194", "--quantization fp8", "--context-length 9000"):
            assert fragment in sglang
        trt = recipe(deepseek(), "trtllm")
        assert "--ep_size 8" in trt.text() and "--max_batch_size 25" in trt.text()
        assert trt.files["extra_llm_api_options.yaml"] == "enable_attention_dp: true\n"
        assert "--extra_llm_api_options extra_llm_api_options.yaml" in trt.text()
        vllm = recipe(deepseek(), "vllm").text()
        assert "--data-parallel-size 8" in vllm and "--tensor-parallel-size 1" in vllm
        assert "--enable-expert-parallel" in vllm and "--max-num-seqs 25" in vllm

    def test_speculative_decoding_and_kv_dtype_per_engine(self):
        d = DEPLOYMENTS["llama-pp2-two-nodes-draft-kv8"]
        assert '"num_speculative_tokens": 4' in recipe(d, "vllm").text()
        assert "--kv-cache-dtype fp8" in recipe(d, "vllm").text()
        sglang = recipe(d, "sglang")
        assert len(sglang.commands) == 2  # 16 GPUs: one command per 8-GPU node
        assert "--speculative-num-draft-tokens 5" in sglang.text() and "--node-rank 1" in sglang.commands[1]
        assert "--kv-cache-dtype fp8_e4m3" in sglang.text()
        trt = recipe(d, "trtllm")
        assert "max_draft_len: 4" in trt.files["extra_llm_api_options.yaml"]
        assert trt.commands[0].startswith("mpirun -n 16 trtllm-llmapi-launch trtllm-serve")

    def test_max_tokens_per_step_by_role(self):
        """Aggregated: 64 x (4 + 1) decode tokens + 1024 = 1344; prefill: one prompt, 1024; decode: 320."""
        d = llama(drafter=get_model("llama-3-8b"), draft_tokens=4)
        assert max_tokens_per_step(d) == 64 * 5 + 1024
        assert max_tokens_per_step(dataclasses.replace(d, role="prefill")) == 1024
        assert max_tokens_per_step(dataclasses.replace(d, role="decode")) == 320

    def test_a_set_context_lengthens_the_model_length(self):
        """--context 64000 with osl 1024: sequences reach 64000 + 512 tokens, past isl + osl."""
        assert llama(context_tokens=64000).max_model_len == 64512
        assert llama(context_tokens=100).max_model_len == 2048

    def test_model_ids_come_from_the_model_files(self):
        assert hf_model_id(LLAMA) == "meta-llama/Meta-Llama-3-70B"
        assert hf_model_id(DEEPSEEK) == "deepseek-ai/DeepSeek-V3"
        anonymous = dataclasses.replace(LLAMA, sources={})
        assert hf_model_id(anonymous) is None
        made = recipe(llama(model=anonymous), "vllm")
        assert 'vllm serve "$MODEL"' in made.text() and any("set MODEL" in n for n in made.notes)

    def test_an_engine_profiles_own_memory_fraction_wins_over_the_records_default(self):
        """When the engine profile sets the share of HBM the physics used, the recipe emits that share."""
        from infecon.solver.recipe_hooks import profile_memory

        profile = dataclasses.make_dataclass("P", ["name", "memory_fraction", "sources"])(
            "sglang", 0.85, {"memory_fraction": "SGLang server_args"})
        memory = profile_memory(profile)
        assert memory["memory_fraction"] == 0.85
        made = recipe(llama(), "sglang", **memory)
        assert "--mem-fraction-static 0.85" in made.text() and "engine profile sglang" in made.notes[0]
        unset = dataclasses.make_dataclass("Q", ["name", "memory_fraction", "sources"])("vllm", 1.0, {})
        assert profile_memory(unset) == {} and profile_memory(None, 0.7)["memory_fraction"] == 0.7

    def test_memory_fraction_given_or_the_documented_default(self):
        assert "--mem-fraction-static 0.85" in recipe(llama(), "sglang", memory_fraction=0.85).text()
        assert get_recipe_record("sglang").memory_fraction == 0.9
        with pytest.raises(RecipeError, match="memory fraction"):
            recipe(llama(), "vllm", memory_fraction=1.5)


class TestRefusals:
    def test_two_d_tensor_parallelism(self):
        with pytest.raises(RecipeError, match="no 2-D tensor parallelism"):
            recipe(llama(tp_rows=2, tp_cols=4), "vllm")

    def test_attention_dp_on_a_non_mla_model(self):
        with pytest.raises(RecipeError, match="applies to MLA models"):
            recipe(llama(attention_dp=True), "sglang")

    def test_expert_parallelism_inside_part_of_a_tp_group_where_only_all_or_nothing_exists(self):
        """vLLM's EP spans every DP x TP rank: EP 2 of TP 8 is not a vLLM deployment; TensorRT-LLM and SGLang
        split experts over EP groups of TP ranks."""
        with pytest.raises(RecipeError, match="cannot run EP 2 inside a TP group of 8"):
            recipe(deepseek(ep=2), "vllm")
        assert "--ep_size 2" in recipe(deepseek(ep=2), "trtllm").text()

    def test_an_engine_without_pipeline_parallelism(self):
        """A record without PP (an older engine version) refuses PP 2 instead of inventing a flag."""
        record = get_recipe_record("vllm")
        no_pp = dataclasses.replace(record, supports={**record.supports, "pipeline_parallel": False})
        with pytest.raises(RecipeError, match="no pipeline parallelism"):
            recipes._check(llama(pp=2), no_pp)

    def test_speculative_decoding_an_engine_version_lacks(self):
        record = get_recipe_record("sglang")
        older = dataclasses.replace(record, supports={**record.supports, "speculative_draft_model": False})
        with pytest.raises(RecipeError, match="no speculative decoding with a separate draft model"):
            recipes._check(DEPLOYMENTS["llama-pp2-two-nodes-draft-kv8"], older)
        recipes._check(llama(drafter=get_model("llama-3-8b"), draft_tokens=0), older)  # draft length 0: no flag

    def test_hardware_the_engine_does_not_run_on(self):
        with pytest.raises(RecipeError, match="does not run on AMD Instinct MI300X"):
            recipe(llama(hardware=MI300X), "trtllm")
        assert recipe(llama(hardware=MI300X), "vllm").commands

    def test_a_4_bit_kv_cache_only_where_documented(self):
        with pytest.raises(RecipeError, match="no 4-bit KV cache"):
            recipe(llama(kv_bits=4), "vllm")
        assert "--kv-cache-dtype fp4_e2m1" in recipe(llama(kv_bits=4), "sglang").text()

    def test_unknown_engine(self):
        with pytest.raises(InstanceError, match="no launch recipe for engine 'generic'"):
            recipe(llama(), "generic")


class TestRecordLoader:
    def test_an_entry_without_source_is_refused(self, tmp_path):
        text = (RECIPES_DIR / "vllm.toml").read_text().replace(
            'tensor_parallel = { value = "--tensor-parallel-size", source',
            'tensor_parallel = "--tensor-parallel-size"\nunused_ = { value = "--x", source')
        path = tmp_path / "vllm.toml"
        path.write_text(text)
        with pytest.raises(InstanceError, match=r"'flags\.tensor_parallel' needs a source"):
            load_recipe_record(path)

    def test_a_flag_must_look_like_one(self, tmp_path):
        text = (RECIPES_DIR / "vllm.toml").read_text().replace('value = "--max-num-seqs"', 'value = "max-num-seqs"')
        path = tmp_path / "vllm.toml"
        path.write_text(text)
        with pytest.raises(InstanceError, match=r"flags\.max_running' must be a command-line flag"):
            load_recipe_record(path)


class TestFromResults:
    def test_a_frontier_row_under_disaggregated_serving_gives_a_sized_pair(self):
        """The prefill/decode ratio is batch / (osl x TPOT) x P1 / 0.7, from the row's own columns."""
        front = api.frontier("llama-3-70b", "h100", engine="sglang", mode="disaggregated", max_gpus=8)
        row = front.points.iloc[len(front) // 2].to_dict()
        ratio = row["batch"] / (1024 * row["tpot_ms"] / 1e3) * (row["prefill_ms"] / 1e3) / 0.7
        text = recipe_for_row(front.problem, row, "sglang").text()
        assert f"run {ratio:.2f} prefill instances per decode instance" in text
        assert "--disaggregation-mode prefill" in text and "sglang_router.launch_router" in text

    def test_the_papers_decode_only_model_has_no_recipe(self):
        problem = api.build_problem("llama-3-70b", "h100", engine="paper")
        with pytest.raises(Exception, match="needs requests to serve"):
            recipe_for_row(problem, {"tp_rows": 1, "tp_cols": 8, "pp": 1, "ep": 1, "batch": 8}, "vllm")

    def test_fleet_rows_become_recipes_with_mixed_pools(self):
        """A fleet plan's aggregated rows and its disaggregated pool (several GPU types) each get a recipe."""
        from infecon.solver.fleet.plan import FleetPlan

        class Pool:
            def __init__(self, key, hardware):
                self.key, self.hardware = key, hardware

        class Workload:
            name, model, isl, osl, weight_bits, kv_bits, engine = "chat", LLAMA, 2000, 400, 8, None, None

        import pandas as pd

        table = pd.DataFrame([
            {"workload": "chat", "hardware": "h100", "mode": "closed_loop", "tp_rows": 1, "tp_cols": 4, "pp": 1,
             "ep": 1, "batch": 32, "attention_dp": False, "replicas": 2},
            {"workload": "chat", "hardware": "h100", "mode": "disaggregated_prefill", "tp_rows": 1, "tp_cols": 2,
             "pp": 1, "ep": 1, "batch": 1, "attention_dp": False, "replicas": 3},
            {"workload": "chat", "hardware": "h200", "mode": "disaggregated_decode", "tp_rows": 1, "tp_cols": 2,
             "pp": 1, "ep": 1, "batch": 96, "attention_dp": False, "replicas": 1}])
        scenario = dataclasses.make_dataclass("S", ["gpus", "workloads"])(
            (Pool("h100", H100), Pool("h200", H200)), (Workload(),))
        plan = FleetPlan("optimal", table, {}, pd.DataFrame(), None, None, scenario)
        items = fleet_recipes(plan, "sglang")
        assert [label for label, _ in items] == ["chat: 2 x aggregated on h100, TP 4 PP 1 EP 1 batch 32",
                                                 "chat: disaggregated, 3 prefill + 1 decode replicas"]
        pair = items[1][1].text()
        assert "prefill server x 3 (2 x NVIDIA H100 SXM each" in pair and "decode server (2 x NVIDIA H200" in pair
        assert "--max-running-requests 96" in pair


class TestPythonApi:
    def test_infecon_recipe(self):
        import infecon

        made = infecon.recipe("llama-3-70b", "h100", engine="sglang", tp=8, batch=64)
        assert isinstance(made, infecon.Recipe) and made.commands[0].startswith("python -m sglang.launch_server")
        with pytest.raises(infecon.NoFeasibleLayoutError, match="hbm_capacity"):
            infecon.recipe("llama-3-70b", "h100", engine="vllm", tp=1, batch=64)
        with pytest.raises(infecon.InstanceError, match="'engine' must be one of vllm, sglang, trtllm"):
            infecon.recipe("llama-3-70b", "h100", engine="generic", tp=8, batch=64)


class TestCommands:
    def run(self, capsys, *argv):
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code
        out = capsys.readouterr()
        return code, out.out, out.err

    def test_recipe_command_for_each_engine(self, capsys, tmp_path):
        args = ["recipe", "--model", "llama-3-70b", "--hardware", "h100", "--tp", "8", "--batch", "64"]
        code, out, _ = self.run(capsys, *args, "--engine", "vllm")
        assert code == 0 and "vllm serve meta-llama/Meta-Llama-3-70B" in out
        code, out, _ = self.run(capsys, *args, "--engine", "sglang", "--out", str(tmp_path / "r.sh"))
        assert code == 0 and "python -m sglang.launch_server" in out
        assert (tmp_path / "r.sh").read_text().startswith("#!/bin/sh\n# SGLang")
        code, out, _ = self.run(capsys, *args, "--engine", "trtllm")
        assert code == 0 and out.count("trtllm-serve meta-llama/Meta-Llama-3-70B") == 1
        code, out, _ = self.run(capsys, *args, "--engine", "vllm", "--mode", "disaggregated")
        assert code == 0 and "python -m dynamo.frontend" in out and "--disaggregation-mode decode" in out

    def test_recipe_command_refusals(self, capsys):
        args = ["recipe", "--model", "llama-3-70b", "--hardware", "h100", "--batch", "64"]
        code, _, err = self.run(capsys, *args, "--tp", "8")
        assert code == 2 and "--engine must name an engine to launch" in err  # generic models, it does not launch
        code, _, err = self.run(capsys, *args, "--tp", "1", "--engine", "vllm")
        assert code == 1 and "NOT A VALID DEPLOYMENT: hbm_capacity" in err
        code, _, err = self.run(capsys, *args, "--tp-grid", "2x4", "--engine", "vllm")
        assert code == 2 and "no 2-D tensor parallelism" in err

    def test_fleet_recipe_prints_and_writes_every_deployment(self, capsys, tmp_path):
        """fleet --recipe: each workload's deployments as recipes, scripts under DIR/recipes/; not with --frontier."""
        from tests.solver.test_fleet import small

        path = small(tmp_path)
        code, out, _ = self.run(capsys, "fleet", str(path), "--out", str(tmp_path / "out"), "--jobs", "1",
                                "--recipe", "vllm")
        assert code == 0
        labels = [line for line in out.splitlines() if line.startswith("## ")]
        assert {label.split(":")[0] for label in labels} == {"## chat-8b", "## docs-70b"}
        scripts = sorted((tmp_path / "out" / "recipes").glob("*.vllm.sh"))
        assert len(scripts) == sum("no recipe" not in block for block in out.split("## ")[1:]) > 0
        code, _, err = self.run(capsys, "fleet", str(path), "--frontier", "--recipe", "vllm")
        assert code == 2 and "does not apply to --frontier" in err

    def test_plan_recipe_writes_one_script_per_scenario(self, capsys, tmp_path):
        plan = tmp_path / "plan.toml"
        plan.write_text('[[scenario]]\nname = "chat"\nmodel = "llama-3-8b"\nhardware = "h100"\nmin_speed = 50\n')
        code, out, _ = self.run(capsys, "plan", str(plan), "--out", str(tmp_path / "out"), "--jobs", "1",
                                "--recipe", "vllm")
        assert code == 0 and "## chat\n# vLLM" in out and "vllm serve meta-llama/Meta-Llama-3-8B" in out
        script = Path(tmp_path / "out" / "recipes" / "chat.vllm.sh").read_text()
        assert "--max-num-seqs" in script
        code, _, err = self.run(capsys, "plan", str(plan), "--out", str(tmp_path / "out"), "--recipe", "generic")
        assert code == 2 and "--recipe must be one of vllm, sglang, trtllm" in err
