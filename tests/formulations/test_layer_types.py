"""Layer types and weight formats of the 2025-26 models (issue 20) against hand calculations.

Sliding-window (gpt-oss), chunked (Llama 4) and linear-attention (Qwen3-Next) layers, DeepSeek sparse
attention (V3.2), attention sinks and the output gate, and MXFP4 / NVFP4 block-scaled weights: their KV,
state, FLOP and byte counts by hand, and that the decode step and the HBM rule read them. Counts are
integers far below 2^53, so the arithmetic is exact and the comparisons are equalities unless a division
by a bandwidth enters (then ``rel=1e-12``: float rounding only).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from infecon.formulations.errors import InstanceError
from infecon.formulations.params import (
    attention_flop_per_token,
    attention_parameters,
    kv_cache_elements_per_sequence,
    kv_cache_read_elements_per_sequence,
    kv_elements_per_sequence,
    kv_elements_per_token,
    linear_state_elements_per_layer,
    linear_state_elements_per_sequence,
    parameter_counts,
)
from infecon.formulations.perf import hbm_bytes_per_gpu_affine, step_structure
from infecon.formulations.specs import WEIGHT_FORMATS, Workload
from infecon.instances.loader import get_hardware, get_model, load_model
from infecon.solver import api


@pytest.fixture(scope="module")
def h100():
    return get_hardware("h100")


def layout(tp: int = 1, attention: str = "paper") -> dict:
    return dict(tp_rows=1, tp_cols=tp, pp=1, ep=1, attention=attention)


class TestSlidingWindow:
    """gpt-oss-120b: 36 layers alternating 128-token sliding windows and full attention, 8 KV heads of 64."""

    def test_kv_elements_by_hand(self):
        """At 8000 tokens the 18 full layers hold all of them and the 18 sliding layers only 128."""
        m = get_model("gpt_oss_120b")
        # Per layer and token: K and V, 8 heads x 64 = 2 x 8 x 64 = 1,024 elements.
        # Full: 18 x 1,024 x 8,000 = 147,456,000; sliding: 18 x 1,024 x 128 = 2,359,296; sum 149,815,296.
        assert kv_cache_elements_per_sequence(m, 8000) == 149_815_296
        # Within the window every layer holds every token: 36 x 1,024 x 100 = 3,686,400.
        assert kv_cache_elements_per_sequence(m, 100) == 3_686_400 == 100 * kv_elements_per_token(m)

    def test_kv_stops_growing_in_sliding_layers(self):
        """Beyond the window, each extra context token adds only the 18 full layers' 18,432 elements."""
        m = get_model("gpt_oss_120b")
        # 18 x 1,024 = 18,432 per token, against 36,864 for a model attending fully on all 36 layers.
        assert kv_cache_elements_per_sequence(m, 9000) - kv_cache_elements_per_sequence(m, 8000) == 18_432 * 1000

    def test_attention_flop_by_hand(self):
        """A decoded token's attention FLOP: 2 n_heads (d_qk + d_v) per layer per attended token."""
        m = get_model("gpt_oss_120b")
        # Per layer and context token: 2 x 64 x (64 + 64) = 16,384 FLOP.
        # Full: 18 x 16,384 x 8,000 = 2,359,296,000; sliding: 18 x 16,384 x 128 = 37,748,736.
        assert attention_flop_per_token(m, 8000) == 2_397_044_736

    def test_decode_step_reads_the_window(self, h100):
        """The step's KV read per sequence is the held cache's bytes over the GPU's achieved bandwidth."""
        m = get_model("gpt_oss_120b")
        workload = Workload(context_tokens=8000, weight_bits=4, weight_format="mxfp4")
        s = step_structure(m, h100, workload, **layout())
        expected_s = 149_815_296 * 2 / (h100.hbm_bandwidth_bytes_per_s * h100.bandwidth_efficiency)
        assert float(s.hbm_s_per_sequence) == pytest.approx(expected_s, rel=1e-12)

    def test_hbm_per_sequence_is_the_window(self):
        """The capacity rule stores the same 149,815,296 elements per sequence (2 bytes each, one GPU)."""
        m = get_model("gpt_oss_120b")
        workload = Workload(context_tokens=8000)
        _, per_sequence = hbm_bytes_per_gpu_affine(m, workload, tp=1, pp=1)
        activations = per_sequence - 149_815_296 * 2
        _, plain = hbm_bytes_per_gpu_affine(m, dataclasses.replace(workload, context_tokens=0), tp=1, pp=1)
        assert float(activations) == pytest.approx(float(plain), rel=1e-12)

    def test_sinks_add_one_parameter_per_head(self):
        """Learned sinks add 64 parameters per layer and no KV: without them the count drops by 36 x 64."""
        m = get_model("gpt_oss_120b")
        plain = dataclasses.replace(m, attention_sinks=False)
        assert parameter_counts(m).total - parameter_counts(plain).total == 36 * 64
        assert kv_cache_elements_per_sequence(m, 5000) == kv_cache_elements_per_sequence(plain, 5000)


class TestChunkedAttention:
    """Llama 4 Scout: chunked attention (8192-token chunks) on 36 of 48 layers, global on every 4th."""

    def test_kv_elements_by_hand(self):
        """At 20,000 tokens the 12 global layers hold all of them, the 36 chunked layers at most 8,192."""
        m = get_model("llama_4_scout")
        # Per layer and token: 2 x 8 x 128 = 2,048. Global: 12 x 2,048 x 20,000 = 491,520,000;
        # chunked (bounded by the chunk): 36 x 2,048 x 8,192 = 603,979,776; sum 1,095,499,776.
        assert kv_cache_elements_per_sequence(m, 20_000) == 1_095_499_776
        assert m.window_kind == "chunked" and m.n_full_attention_layers == 12

    def test_short_context_is_full(self):
        """Below the chunk every layer attends to everything: 48 x 2,048 x 4,000 = 393,216,000."""
        m = get_model("llama_4_scout")
        assert kv_cache_elements_per_sequence(m, 4000) == 393_216_000


class TestHybridLinearAttention:
    """Qwen3-Next-80B-A3B: 36 Gated DeltaNet layers with a constant state, 12 gated full-attention layers."""

    def test_state_by_hand(self):
        """One layer's state: 32 value heads x 128 x 128 delta-rule matrix plus 3 conv inputs of 8,192 channels."""
        m = get_model("qwen3_next_80b_a3b")
        # 32 x 128 x 128 = 524,288; conv channels 2 x 16 x 128 + 32 x 128 = 8,192, kernel 4 keeps 3: 24,576.
        assert linear_state_elements_per_layer(m) == 548_864
        assert linear_state_elements_per_sequence(m) == 36 * 548_864 == 19_759_104

    def test_sequence_by_hand(self):
        """At 8,000 tokens: the 12 full layers' KV (2 x 2 x 256 = 1,024 per layer and token) plus the state."""
        m = get_model("qwen3_next_80b_a3b")
        # 12 x 1,024 x 8,000 = 98,304,000 + 19,759,104 = 118,063,104.
        assert kv_elements_per_sequence(m, 8000) == 118_063_104
        # The state does not grow with the context: 100,000 more tokens add only the full layers' KV.
        assert kv_elements_per_sequence(m, 108_000) - kv_elements_per_sequence(m, 8000) == 12 * 1024 * 100_000

    def test_decode_step_reads_and_writes_the_state(self, h100):
        """A step reads the KV once and the state twice (read, then written back): 137,822,208 elements."""
        m = get_model("qwen3_next_80b_a3b")
        s = step_structure(m, h100, Workload(context_tokens=8000), **layout())
        # 98,304,000 + 2 x 19,759,104 = 137,822,208 elements of 2 bytes.
        expected_s = 137_822_208 * 2 / (h100.hbm_bandwidth_bytes_per_s * h100.bandwidth_efficiency)
        assert float(s.hbm_s_per_sequence) == pytest.approx(expected_s, rel=1e-12)

    def test_state_splits_by_value_heads(self, h100):
        """Under heads sharding with TP 8 the 2 KV heads are replicated 4x, the 32 value heads' state splits 8 ways."""
        m = get_model("qwen3_next_80b_a3b")
        _, per_sequence = hbm_bytes_per_gpu_affine(m, Workload(context_tokens=8000), tp=8, pp=1, attention="heads")
        _, plain = hbm_bytes_per_gpu_affine(m, Workload(context_tokens=0), tp=8, pp=1, attention="heads")
        # KV over min(8, 2) = 2 ranks: 98,304,000 x 2 / 2 = 98,304,000 bytes; state over 8: 19,759,104 x 2 / 8 =
        # 4,939,776 bytes; the state is there at context 0 too, so the difference is the KV alone.
        assert float(per_sequence - plain) == pytest.approx(98_304_000, rel=1e-12)
        zero_state = dataclasses.replace(m, n_linear_layers=0, linear_key_heads=0, linear_value_heads=0,
                                         linear_key_head_dim=0, linear_value_head_dim=0, linear_conv_kernel=0)
        _, no_state = hbm_bytes_per_gpu_affine(zero_state, Workload(context_tokens=0), tp=8, pp=1, attention="heads")
        assert float(plain - no_state) == pytest.approx(4_939_776, rel=1e-12)

    def test_attention_parameters_by_hand(self):
        """Gated DeltaNet and gated-attention weights, counted matrix by matrix."""
        m = get_model("qwen3_next_80b_a3b")
        # Linear layer, K = 16 x 128 = 2,048 and V = 32 x 128 = 4,096: in_proj_qkvz 2,048 x (2K + 2V) = 25,165,824;
        # in_proj_ba 2,048 x 64 = 131,072; out_proj 4,096 x 2,048 = 8,388,608; conv 8,192 x 4 = 32,768; A and dt 64;
        # norm 128: 33,718,464. Full layer: q and gate 2 x 2,048 x 4,096 = 16,777,216; k, v 2 x 2,048 x 512 =
        # 2,097,152; o 4,096 x 2,048 = 8,388,608: 27,262,976. All: 36 x 33,718,464 + 12 x 27,262,976.
        assert attention_parameters(m) == 36 * 33_718_464 + 12 * 27_262_976 == 1_541_020_416

    def test_total_matches_the_checkpoint(self):
        """79,674,088,192 parameters: the checkpoint's 79,674,391,296 less 303,104 norm and gate vectors."""
        # Remainder: 48 x 2 x 2,048 layer norms + 2,048 final norm + 12 x 2 x 256 QK norms + 48 x 2,048 shared-expert
        # gates = 196,608 + 2,048 + 6,144 + 98,304 = 303,104 (the checkpoint's count: the safetensors total Hugging Face
        # shows for Qwen/Qwen3-Next-80B-A3B-Instruct).
        assert parameter_counts(get_model("qwen3_next_80b_a3b")).total == 79_674_391_296 - 303_104

    def test_constant_flop(self):
        """Linear layers' FLOP do not grow with the context; only the 12 full layers' do."""
        m = get_model("qwen3_next_80b_a3b")
        # Full layers: 2 x 16 heads x (256 + 256) = 16,384 FLOP per layer and context token, 12 layers: 196,608.
        assert attention_flop_per_token(m, 9000) - attention_flop_per_token(m, 8000) == 196_608 * 1000


class TestBlockScaledWeights:
    def test_bits_per_weight(self):
        """MXFP4: 4 + 8/32 = 4.25 bits; NVFP4: 4 + 8/16 = 4.5 bits; plain 4-bit: 4."""
        assert Workload(weight_bits=4, weight_format="mxfp4").weight_storage_bits == 4.25
        assert Workload(weight_bits=4, weight_format="nvfp4").weight_storage_bits == 4.5
        assert Workload(weight_bits=4).weight_bytes == 0.5
        assert set(WEIGHT_FORMATS) == {"mxfp4", "nvfp4"}

    def test_gpt_oss_120b_fits_one_h100_in_mxfp4(self):
        """116,788,840,704 weights x 4.25 / 8 = 62,044,071,624 bytes: one 80 GB GPU holds them (16-bit: 234 GB)."""
        m = get_model("gpt_oss_120b")
        fixed, _ = hbm_bytes_per_gpu_affine(m, Workload(weight_bits=4, weight_format="mxfp4"), tp=1, pp=1)
        assert float(fixed) == 62_044_071_624
        assert float(fixed) < get_hardware("h100").hbm_capacity_bytes

    def test_weight_reads_carry_the_scales(self, h100):
        """A step's fixed and routed reads scale with 4.5 / 4 from plain 4-bit to NVFP4."""
        m = get_model("gpt_oss_120b")
        plain = step_structure(m, h100, Workload(weight_bits=4), **layout())
        nvfp4 = step_structure(m, h100, Workload(weight_bits=4, weight_format="nvfp4"), **layout())
        assert float(nvfp4.hbm_fixed_s) == pytest.approx(float(plain.hbm_fixed_s) * 4.5 / 4, rel=1e-12)
        assert float(nvfp4.hbm_routed_s) == pytest.approx(float(plain.hbm_routed_s) * 4.5 / 4, rel=1e-12)
        assert float(nvfp4.compute_s_per_token) == float(plain.compute_s_per_token)  # same 4-bit tensor-core rate

    def test_format_needs_its_element_width(self):
        """A format with other element bits is a ValueError; the API names both knobs."""
        with pytest.raises(ValueError, match="4-bit elements"):
            Workload(weight_bits=8, weight_format="mxfp4")
        with pytest.raises(InstanceError, match="'weight_bits' 8 conflicts with 'weight_format' mxfp4"):
            api.build_problem("gpt_oss_20b", "h100", weight_bits=8, weight_format="mxfp4")
        with pytest.raises(InstanceError, match="'weight_format' must be one of"):
            api.build_problem("gpt_oss_20b", "h100", weight_format="fp4")

    def test_api_defaults_to_the_element_width(self):
        """weight_format alone sets 4-bit elements; no format keeps 16-bit weights."""
        assert api.build_problem("gpt_oss_20b", "h100", weight_format="mxfp4").workload.weight_bits == 4
        assert api.build_problem("gpt_oss_20b", "h100").workload.weight_bits == 16


class TestManySmallExperts:
    def test_qwen3_30b_a3b_by_hand(self):
        """Router, top-8 of 128 experts of 768, no shared expert: stored and active parameters matrix by matrix."""
        m = get_model("qwen3_30b_a3b")
        counts = parameter_counts(m)
        # Expert: 3 x 2,048 x 768 = 4,718,592; routed: 48 x 128 x 4,718,592 = 28,991,029,248; active 48 x 8 x ... =
        # 1,811,939,328. Router 48 x 2,048 x 128 = 12,582,912. Attention per layer: q, o 2 x 2,048 x 4,096 =
        # 16,777,216; k, v 2 x 2,048 x 512 = 2,097,152; x 48 = 905,969,664.
        assert counts.routed == 28_991_029_248
        assert counts.routed_active == 1_811_939_328
        assert counts.always_read == 905_969_664 + 12_582_912

    def test_llama_4_maverick_interleaves(self):
        """Maverick: 24 MoE layers (128 routed top-1 + 1 shared, 8,192 wide), 24 dense layers of 16,384."""
        m = get_model("llama_4_maverick")
        counts = parameter_counts(m)
        expert = 3 * 5120 * 8192  # 125,829,120
        assert (m.n_moe_layers, m.n_dense_ffn_layers) == (24, 24)
        assert counts.routed == 24 * 128 * expert
        # Always read: attention 48 x 62,914,560 + routers 24 x 5,120 x 128 + dense 24 x 3 x 5,120 x 16,384
        # + shared experts 24 x 125,829,120.
        assert counts.always_read == 48 * 62_914_560 + 24 * 5120 * 128 + 24 * 3 * 5120 * 16384 + 24 * expert


class TestHuggingFaceLayerTypes:
    """How config.json layer encodings map onto the counts (the stored configs are in tests/data/hf_configs)."""

    def write(self, tmp_path, config):
        path = tmp_path / "config.json"
        path.write_text(json.dumps({"architectures": ["XForCausalLM"], "hidden_size": 64, "num_hidden_layers": 4,
                                    "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100, **config}))
        return path

    def test_qwen_style_window_from_max_window_layers(self, tmp_path):
        """use_sliding_window true windows the layers from max_window_layers on."""
        m = load_model(self.write(tmp_path, {"sliding_window": 32, "use_sliding_window": True, "max_window_layers": 1}))
        assert (m.n_window_layers, m.attention_window_tokens) == (3, 32)

    def test_qwen_style_window_off(self, tmp_path):
        """use_sliding_window false ignores sliding_window (Qwen3 ships it so)."""
        m = load_model(self.write(tmp_path, {"sliding_window": 32, "use_sliding_window": False}))
        assert m.n_window_layers == 0

    def test_mistral_style_window_on_every_layer(self, tmp_path):
        """A bare sliding_window windows every layer (Mistral 7B v0.1)."""
        m = load_model(self.write(tmp_path, {"sliding_window": 4096}))
        assert (m.n_window_layers, m.attention_window_tokens) == (4, 4096)

    @pytest.mark.parametrize(("config", "message"), [
        ({"layer_types": ["full_attention"] * 3}, "'layer_types' must list"),
        ({"layer_types": ["sliding_attention"] * 4}, "'sliding_window' is not set"),
        ({"layer_types": ["mamba"] * 4}, "'layer_types' must list"),
        ({"attn_type_list": [0, 1, 1, 1]}, "lightning"),
        ({"index_topk": 2048, "kv_lora_rank": 16}, "index_n_heads"),
        ({"index_topk": 2048, "kv_lora_rank": 16, "index_n_heads": 4, "index_head_dim": 8, "index_topk_freq": 4},
         "shared between layers"),
        ({"index_topk": 2048, "index_n_heads": 4, "index_head_dim": 8}, "sparse attention needs"),
        ({"layer_types": ["linear_attention"] * 4}, "linear_num_key_heads"),
    ])
    def test_unmodelled_or_inconsistent(self, tmp_path, config, message):
        """Encodings the physics does not model, or that contradict themselves, fail naming the key."""
        with pytest.raises(InstanceError, match=message):
            load_model(self.write(tmp_path, config))


class TestOldModelsUnchanged:
    @pytest.mark.parametrize("name", ["llama_3_70b", "deepseek_v3", "mixtral_8x22b"])
    def test_sequence_kv_is_context_times_token_kv(self, name):
        """Models without windows or linear layers keep eq. 34: context x per-token KV, exactly."""
        m = get_model(name)
        for context in (0, 1, 8000, 100_000):
            assert kv_elements_per_sequence(m, context) == context * kv_elements_per_token(m)
        assert np.all(np.asarray(attention_flop_per_token(m, 8000)) > 0)


class TestSparseAttention:
    """DeepSeek-V3.2-Exp: a lightning indexer (64 heads of 128) over every cached key, MLA over the top 2048."""

    def test_held_by_hand(self):
        """Each token keeps its 576-element latent and RoPE key plus a 128-element indexer key in all 61 layers."""
        m = get_model("deepseek_v3_2")
        # 61 x (512 + 64 + 128) x 100,000 = 61 x 70,400,000 = 4,294,400,000.
        assert kv_cache_elements_per_sequence(m, 100_000) == 4_294_400_000

    def test_read_by_hand(self):
        """A step reads every indexer key but only the 2048 selected latents."""
        m = get_model("deepseek_v3_2")
        # 61 x (128 x 100,000 + 576 x 2,048) = 61 x (12,800,000 + 1,179,648) = 852,758,528: 5x less than held.
        assert kv_cache_read_elements_per_sequence(m, 100_000) == 852_758_528
        # Below the top-k everything is read: 61 x 704 x 1,000 = 42,944,000.
        assert kv_cache_read_elements_per_sequence(m, 1000) == kv_cache_elements_per_sequence(m, 1000) == 42_944_000

    def test_flop_by_hand(self):
        """Indexer dot products over the whole context plus absorbed-MLA attention over the 2048 selected tokens."""
        m = get_model("deepseek_v3_2")
        # MLA decode per layer and attended token: 2 x 128 x (576 + 512) = 278,528; x 2,048 = 570,425,344.
        # Indexer: 2 x 64 x 128 x 100,000 = 1,638,400,000. Sum 2,208,825,344 x 61 layers = 134,738,345,984
        # (dense MLA: 278,528 x 100,000 x 61 = 1.699e12, 12.6x more).
        assert attention_flop_per_token(m, 100_000) == 134_738_345_984

    def test_indexer_parameters_by_hand(self):
        """Indexer weights per layer: 1536 x 64 x 128 + 7168 x 128 + 2 x 128 + 7168 x 64 = 13,959,424."""
        m = get_model("deepseek_v3_2")
        dense = dataclasses.replace(m, sparse_attention_topk=0, indexer_heads=0, indexer_head_dim=0)
        assert parameter_counts(m).total - parameter_counts(dense).total == 61 * 13_959_424
        assert dense == dataclasses.replace(get_model("deepseek_v3_1"), name=dense.name)

    def test_decode_step_reads_the_selection(self, h100):
        """The step's KV read per sequence is the 852,758,528 elements (2 bytes), not the 4.29e9 held."""
        m = get_model("deepseek_v3_2")
        s = step_structure(m, h100, Workload(context_tokens=100_000), **layout())
        expected_s = 852_758_528 * 2 / (h100.hbm_bandwidth_bytes_per_s * h100.bandwidth_efficiency)
        assert float(s.hbm_s_per_sequence) == pytest.approx(expected_s, rel=1e-12)
