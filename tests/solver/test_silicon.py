"""aiconfigurator's silicon sample read as it ships: column mapping, skipped rows counted, the shipped file."""

from __future__ import annotations

import pandas as pd
import pytest

from infecon.formulations.closed_loop import chunk_budget_tokens, wave_mean_passes
from infecon.formulations.errors import InstanceError
from infecon.instances.engines import get_engine
from infecon.solver import silicon, validation
from infecon.solver.cli import main

BASE = {"id": "x_c256_tp8_ep8_1", "silicon_data_source": "db; silicon_concurrency=256", "backend": "trtllm",
        "backend_version": "1.2.0", "model_path": "deepseek-ai/DeepSeek-R1", "system": "b200_sxm", "precision": "fp4",
        "mode": "agg", "isl": "1024", "osl": "1024", "gemm_quant_mode": "nvfp4", "moe_quant_mode": "nvfp4",
        "batch_size": "32", "tp_size": "1", "pp_size": "1", "attention_dp_size": "8", "moe_tp_size": "1",
        "moe_ep_size": "8", "silicon_ttft_ms": "900", "silicon_tpot_ms": "20"}
DISAGG = {**BASE, "mode": "disagg", "tp_size": "", "pp_size": "", "attention_dp_size": "", "moe_ep_size": "",
          "batch_size": "", "prefill_num_workers": "1", "prefill_tp_size": "4", "prefill_pp_size": "1",
          "prefill_attention_dp_size": "1", "prefill_moe_ep_size": "4", "decode_num_workers": "4",
          "decode_batch_size": "64", "decode_tp_size": "8", "decode_pp_size": "1", "decode_attention_dp_size": "1",
          "decode_moe_ep_size": "8"}


def write(tmp_path, rows) -> str:
    path = tmp_path / "silicon_sample.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


class TestMapping:
    def test_attention_dp_row(self, tmp_path):
        """tp_size 1 x attention_dp_size 8 is infecon's TP 8 with attention DP; EP 8; FP4 weights, FP8 KV;
        per-user speed is 1 / TPOT = 1000 / 20 ms = 50 tok/s; concurrency from the source (256 = 32 x 8)."""
        frame = validation.read_measurements(write(tmp_path, [BASE]))
        row = frame.iloc[0]
        assert (row["model"], row["hardware"], row["engine"], row["benchmark"]) == (
            "deepseek_v3", "b200", "trtllm-1.2.0", "closed_loop")
        assert [int(row[c]) for c in ("tp", "pp", "ep", "instances", "concurrency", "weight_bits", "kv_bits")] == [
            8, 1, 8, 1, 256, 4, 8]
        assert row["attention_dp"] == "True"
        assert float(row["per_user_tok_s"]) == pytest.approx(50.0)
        assert float(row["ttft_ms"]) == pytest.approx(900.0)
        assert frame.attrs["skipped"] == {}

    def test_disaggregated_with_workers(self, tmp_path):
        """4 decode workers of TP 8 and 1 prefill worker of TP 4: 4 instances, 4 x 8 + 4 = 36 GPUs."""
        frame = validation.read_measurements(write(tmp_path, [DISAGG]))
        row = frame.iloc[0]
        assert row["benchmark"] == "disaggregated"
        assert [int(row[c]) for c in ("tp", "ep", "instances", "n_gpu", "concurrency")] == [8, 8, 4, 36, 256]
        predicted = validation.predict_frame(frame)
        assert predicted["status"][0] == "ok"

    def test_unpredictable_rows_are_counted_not_errors(self, tmp_path):
        # x/not-a-model: a model the catalogue lacks (gpt-oss-120b, once the example, is in it since issue 20).
        rows = [BASE, {**BASE, "model_path": "x/not-a-model"}, {**BASE, "model_path": "x/not-a-model"},
                {**BASE, "system": "a30"}, {**BASE, "tp_size": "2"},
                {**DISAGG, "decode_num_workers": "", "prefill_num_workers": ""}]
        frame = validation.read_measurements(write(tmp_path, rows))
        assert len(frame) == 1
        assert frame.attrs["skipped"] == {
            "model not in the catalogue: x/not-a-model": 2, "system without a hardware file: a30": 1,
            "attention tensor parallel inside data parallel (no infecon layout)": 1,
            "disaggregated without worker counts": 1}

    def test_nothing_predictable_is_one_error(self, tmp_path):
        with pytest.raises(InstanceError, match="no row of the silicon sample can be predicted"):
            validation.read_measurements(write(tmp_path, [{**BASE, "model_path": "x/unknown-model"}]))

    def test_aliases_and_suffixes(self):
        assert silicon.catalogue_model("openai/gpt-oss-120b") == "gpt_oss_120b"
        assert silicon.catalogue_model("meta-llama/Llama-3.1-8B-Instruct") == "llama_3_8b"
        assert silicon.catalogue_model("nvidia/DeepSeek-R1-NVFP4") == "deepseek_v3"
        assert silicon.catalogue_model("meta-llama/Llama-3.1-70B") == "llama_3_70b"
        assert silicon.catalogue_model("x/not-a-model") is None

    def test_issue_17_models_and_gb300(self):
        """The sample's MiniMax-M2.5, Qwen3.5, Kimi-K2.5 and GLM-5 (zhipuai/ in the sample, zai-org/ on the hub) are
        catalogue files, and its gb300 system is the GB300 NVL72 rack (one 72-GPU NVLink domain)."""
        assert silicon.catalogue_model("MiniMaxAI/MiniMax-M2.5") == "minimax_m2_5"
        assert silicon.catalogue_model("Qwen/Qwen3.5-397B-A17B") == "qwen3_5_397b_a17b"
        assert silicon.catalogue_model("moonshotai/Kimi-K2.5") == "kimi_k2_5"
        assert silicon.catalogue_model("zhipuai/GLM-5") == "glm_5"
        assert silicon.SYSTEMS["gb300"] == "gb300_nvl72"

    def test_validate_cli_prints_the_skipped_count(self, tmp_path, capsys):
        path = write(tmp_path, [BASE, {**BASE, "model_path": "x/not-a-model"}])
        assert main(["validate", "--data", path]) == 0
        out = capsys.readouterr().out
        assert "skipped 1 silicon rows: 1 model not in the catalogue: x/not-a-model" in out


class TestShippedSample:
    """The sample as aiconfigurator-core 0.12.0 ships it (the kernels extra, which CI installs)."""

    def test_every_row_is_read_or_counted(self):
        path = silicon.shipped_sample_path()
        raw = pd.read_csv(path)
        frame = validation.read_measurements(path)
        assert len(frame) + sum(frame.attrs["skipped"].values()) == len(raw) == 5221
        # Catalogue models in the sample: at least DeepSeek-R1/V3 (V3's architecture) and Llama 3.1 8B/70B; models
        # added to the catalogue later join them, and only models the catalogue lacks are skipped as such.
        assert {"deepseek_v3", "llama_3_70b", "llama_3_8b"} <= set(frame["model"])
        for why in frame.attrs["skipped"]:
            if why.startswith("model not in the catalogue: "):
                assert silicon.catalogue_model(why.removeprefix("model not in the catalogue: ")) is None
        # Since issue 17 every model and system of the sample is in the catalogue.
        assert not [why for why in frame.attrs["skipped"] if why.startswith(("model not", "system without"))]
        assert {"minimax_m2_5", "qwen3_5_397b_a17b", "kimi_k2_5", "glm_5"} <= set(frame["model"])
        assert "gb300_nvl72" in set(frame["hardware"])
        gpt_oss = (raw["model_path"] == "openai/gpt-oss-120b").sum()
        assert gpt_oss == 485
        assert frame.attrs["skipped"].get("model not in the catalogue: openai/gpt-oss-120b", gpt_oss) == gpt_oss


def test_tp_size_that_disagrees_with_the_id_is_questioned(tmp_path):
    """An id naming tp8 with tp_size 64 (= moe_tp 8 x moe_ep 8 on an 8-GPU node) is skipped, counted."""
    row = {**BASE, "id": "r1_b200_sxm_trtllm_fp8_agg_1024x1024_c16_tp8_ep8_921", "tp_size": "64",
           "attention_dp_size": "1", "moe_tp_size": "8"}
    frame = validation.read_measurements(write(tmp_path, [BASE, row]))
    assert frame.attrs["skipped"] == {"tp_size disagrees with the run id's tp (questioned)": 1}


def test_disaggregated_id_names_the_prefill_worker(tmp_path):
    """A disaggregated id's _tp4_0_ep4_0_ is its prefill worker's layout (TP 4, EP 4), not the decode worker's TP 32
    (= decode moe_tp 8 x moe_ep 4): read, not questioned; an id matching neither worker stays questioned."""
    row = {**DISAGG, "id": "2026_03_25_deepseek_r1_gb200_trtllm_fp4_disagg_1024x8192_c2048_tp4_0_ep4_0_352",
           "decode_tp_size": "32", "decode_moe_tp_size": "8", "decode_moe_ep_size": "4", "system": "gb200"}
    neither = {**row, "id": row["id"].replace("_tp4_0_", "_tp2_0_")}
    frame = validation.read_measurements(write(tmp_path, [row, neither]))
    assert len(frame) == 1 and int(frame.iloc[0]["tp"]) == 32
    assert frame.attrs["skipped"] == {"tp_size disagrees with the run id's tp (questioned)": 1}


def test_zero_means_none(tmp_path):
    """attention_dp_size 0 and moe_ep_size 0 (some rows' 'none') are 1."""
    frame = validation.read_measurements(write(tmp_path, [{**BASE, "tp_size": "8", "attention_dp_size": "0",
                                                            "moe_ep_size": "0"}]))
    assert [frame.iloc[0][c] for c in ("tp", "ep", "attention_dp")] == ["8", "1", "False"]


class TestClosedLoopBenchmark:
    """The sample's runs are closed-loop benchmarks (fixed concurrency, isl, osl): validation predicts their TTFT
    as runs in waves (formulations/closed_loop.py); files without a ``waves`` column keep open-loop arrivals."""

    def test_silicon_rows_are_predicted_as_closed_loop_runs(self, tmp_path):
        frame = validation.read_measurements(write(tmp_path, [BASE]))
        assert float(frame.iloc[0]["waves"]) == silicon.SILICON_WAVES
        row = validation.prepare_row(0, frame.iloc[0])
        assert row.passes.waves == silicon.SILICON_WAVES
        assert float(row.passes.wave_requests) == 256.0  # all 256 prompts in flight on the one instance
        open_loop = validation.prepare_row(0, {**frame.iloc[0].to_dict(), "waves": ""})
        assert open_loop.passes.waves is None
        engine = get_engine("trtllm")
        closed_ttft = validation.predict_prepared(row, engine)["ttft_s"]
        open_ttft = validation.predict_prepared(open_loop, engine)["ttft_s"]
        # 256 prompts of 1,024 tokens in chunks of 8,192: the first wave waits 16.5 passes on average, later waves
        # 1.5; the open-loop queue waits for about one prompt's pass.
        assert closed_ttft > 3 * open_ttft
        passes = wave_mean_passes(256, 1024, chunk_budget_tokens(engine, 1024))
        assert passes == pytest.approx(16.5)

    def test_disaggregated_waves_are_per_prefill_worker(self, tmp_path):
        """4 decode workers of 64 requests; one prefill worker of TP 4 / EP 4 takes all 256 prompts of a wave, on its
        own layout: half the GPUs of a decode worker's TP 8 / EP 8, so twice the arithmetic time per GPU."""
        frame = validation.read_measurements(write(tmp_path, [DISAGG]))
        row = validation.prepare_row(0, frame.iloc[0])
        assert row.passes.waves == silicon.SILICON_WAVES
        assert row.prefill_instances == pytest.approx(0.25)
        assert float(row.passes.wave_requests) == 256.0
        decode_layout = validation.prepare_row(0, {**frame.iloc[0].to_dict(), "prefill_tp": "", "prefill_pp": "",
                                                   "prefill_ep": "", "prefill_attention_dp": ""})
        assert decode_layout.prefill_instances == pytest.approx(0.125)
        assert float(row.passes.prefill_one.compute_s) == pytest.approx(
            2 * float(decode_layout.passes.prefill_one.compute_s))

    def test_waves_below_one_are_one_clear_error(self, tmp_path):
        frame = validation.read_measurements(write(tmp_path, [BASE]))
        path = tmp_path / "measured.csv"
        frame.assign(waves="0.5").to_csv(path, index=False)
        with pytest.raises(InstanceError, match=r"row 2, column 'waves': must be a number >= 1"):
            validation.read_measurements(path)


def test_a_first_token_after_a_whole_decode_is_questioned(tmp_path):
    """TTFT 30 s with osl 1,024 at 20 ms a token (20.5 s of decode): the requests queued for a running slot."""
    frame = validation.read_measurements(write(tmp_path, [BASE, {**BASE, "silicon_ttft_ms": "30000"}]))
    assert len(frame) == 1
    assert frame.attrs["skipped"] == {
        "TTFT longer than a whole request's decode: requests queued for a running slot (questioned)": 1}
