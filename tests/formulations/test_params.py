"""Parameter counts and per-token sizes of the built-in models against published figures (paper-notes sec. 2-4)."""

from __future__ import annotations

import pytest

from infecon.formulations.params import (
    attention_flop_per_context_token,
    kv_elements_per_token,
    parameter_counts,
)
from infecon.formulations.specs import ModelSpec
from infecon.instances.loader import builtin_model_names, get_model

# Published totals (and active counts for MoE models), in parameters. Every built-in model must
# appear here, so adding a model file without a published reference fails
# ``test_every_builtin_model_has_a_published_total``.
PUBLISHED_TOTAL = {
    "llama_3_8b": 8.03e9,
    "llama_3_70b": 70.6e9,
    "llama_3_1_405b": 405.9e9,
    "mixtral_8x7b": 46.7e9,
    "mixtral_8x22b": 141e9,
    "mistral_large_2": 123e9,
    "deepseek_v3": 671e9,
    "gpt_3_175b": 175e9,
    "palm_8b": 8.63e9,
    "palm_62b": 62.5e9,
    "palm_540b": 540e9,
    "gpt_4_rumoured": 1.8e12,
    # Safetensors totals, norms included: Llama 2 6,738,415,616 and 68,976,648,192; Falcon-180B 179.523e9.
    "llama_2_7b": 6.738e9,
    "llama_2_70b": 68.98e9,
    "falcon_180b": 179.52e9,
    # Model cards (2025): Qwen3 technical report table 1 and model cards; Mistral Small 3 "24B"; MiniMax-M2
    # "230B total, 10B active"; Kimi K2 "1T total, 32B activated"; GLM-4.5 "355B total, 32B active";
    # DeepSeek-V3.1 the V3 architecture (671B / 37B).
    "qwen3_8b": 8.2e9,
    "qwen3_32b": 32.8e9,
    "qwen3_30b_a3b": 30.5e9,
    "qwen3_235b_a22b": 235e9,
    "mistral_small_3": 23.6e9,
    "minimax_m2": 230e9,
    "kimi_k2": 1.0e12,
    "glm_4_5": 355e9,
    "deepseek_v3_1": 671e9,
    # gpt-oss model card (arXiv 2508.10925) table 1: 116.83B / 5.13B and 20.91B / 3.61B active. Llama 4 model card:
    # Scout 109B (vision encoder included; we count the text model) and Maverick 400B, 17B active. Qwen3-Next: "80B".
    "gpt_oss_20b": 20.91e9,
    "gpt_oss_120b": 116.83e9,
    "llama_4_scout": 109e9,
    "llama_4_maverick": 400e9,
    "qwen3_next_80b_a3b": 80e9,
    # DeepSeek-V3.2-Exp: 685B on its Hugging Face page, the MTP layer included (as V3's 685B there against 671B).
    "deepseek_v3_2": 685e9,
    # Issue 17: MiniMax-M2.5 is MiniMax-M2's architecture ("230B total, 10B active"); Kimi K2.5 "1T total, 32B
    # activated" (its model card; the vision encoder not counted); GLM-5 "744B (40B active)" (Z.ai's GLM-5 release);
    # Qwen3.5-397B-A17B "397B total, 17B activated" (its model card; the vision encoder not counted).
    "minimax_m2_5": 230e9,
    "kimi_k2_5": 1.0e12,
    "glm_5": 744e9,
    "qwen3_5_397b_a17b": 397e9,
}
PUBLISHED_ACTIVE = {
    "mixtral_8x7b": 12.9e9,
    "mixtral_8x22b": 39e9,
    "deepseek_v3": 37e9,
    "qwen3_30b_a3b": 3.3e9,
    "qwen3_235b_a22b": 22e9,
    "minimax_m2": 10e9,
    "kimi_k2": 32e9,
    "glm_4_5": 32e9,
    "deepseek_v3_1": 37e9,
    "gpt_oss_20b": 3.61e9,
    "gpt_oss_120b": 5.13e9,
    "llama_4_scout": 17e9,
    "llama_4_maverick": 17e9,
    "deepseek_v3_2": 37e9,
    "minimax_m2_5": 10e9,
    "kimi_k2_5": 32e9,
    "glm_5": 40e9,
    "qwen3_5_397b_a17b": 17e9,
}
# Published totals are rounded to 2-3 significant figures and some include or exclude the
# embeddings, so 1.5% is the tightest band all of them meet. The rumoured GPT-4 figure is itself
# only "~1.8T", and DeepSeek-V3's "37B activated" is two figures that may or may not count the
# 0.93e9 embedding rows our active count leaves out (36.6e9 without, 37.5e9 with): those get 3%.
DEFAULT_TOLERANCE = 0.015
# Kimi K2's "1T" is one significant figure (we count 1.026e12: 2.6 % over); "10B", "22B", "32B" and "3.3B"
# active are two, and whether they count the embedding rows (0.6e9 for MiniMax-M2's 200K vocabulary, 1.2e9
# for Kimi K2) is not said: 5 % covers both readings, and 3 % the MTP layer GLM-4.5's 355B includes. Qwen3-30B-A3B's
# "3.3B" counts the embedding rows our active count leaves out (3.04e9 + 0.31e9 = 3.35e9): 10 %; so does Llama 4's
# "17B" (16.14e9 + 1.03e9): 6 %. Qwen3-Next's "A3B" is a name, not a count (we count 3.56e9 active, 3.87e9 with
# the embedding rows): it has no active figure here; tests/formulations/test_layer_types.py counts it by hand.
# Qwen3.5's "17B" reads like Llama 4's: 16.33e9 without the embedding rows, 17.35e9 with them: 6 %.
TOLERANCE = {"gpt_4_rumoured": 0.03, "kimi_k2": 0.03, "kimi_k2_5": 0.03, "glm_4_5": 0.03, "deepseek_v3_2": 0.03}
ACTIVE_TOLERANCE = {"deepseek_v3": 0.03, "deepseek_v3_1": 0.03, "qwen3_30b_a3b": 0.1, "qwen3_235b_a22b": 0.03,
                    "minimax_m2": 0.05, "kimi_k2": 0.03, "glm_4_5": 0.05, "llama_4_scout": 0.06,
                    "llama_4_maverick": 0.06, "deepseek_v3_2": 0.03, "minimax_m2_5": 0.05, "kimi_k2_5": 0.03,
                    "glm_5": 0.05, "qwen3_5_397b_a17b": 0.06}


class TestParameterCounts:
    def test_every_builtin_model_has_a_published_total(self):
        """Each built-in model file has a published total to compare with."""
        assert set(builtin_model_names()) == set(PUBLISHED_TOTAL)

    @pytest.mark.parametrize("name", sorted(PUBLISHED_TOTAL))
    def test_total_matches_published(self, name):
        """The stored parameter count of each built-in model is within tolerance of its published total."""
        total = parameter_counts(get_model(name)).total
        tolerance = TOLERANCE.get(name, DEFAULT_TOLERANCE)
        assert total == pytest.approx(PUBLISHED_TOTAL[name], rel=tolerance)

    @pytest.mark.parametrize("name", sorted(PUBLISHED_ACTIVE))
    def test_moe_active_matches_published(self, name):
        """Active (per-token multiplied) parameters of each MoE model are within tolerance of the published figure."""
        counts = parameter_counts(get_model(name))
        tolerance = ACTIVE_TOLERANCE.get(name, DEFAULT_TOLERANCE)
        assert counts.active == pytest.approx(PUBLISHED_ACTIVE[name], rel=tolerance)
        # An MoE model multiplies far fewer parameters than it stores.
        assert counts.active < 0.3 * counts.total

    @pytest.mark.parametrize("name", ["llama_3_70b", "gpt_3_175b", "palm_540b"])
    def test_dense_active_is_total_minus_embedding(self, name):
        """A dense model multiplies every stored parameter except the embedding rows."""
        counts = parameter_counts(get_model(name))
        assert counts.routed == 0
        assert counts.active == counts.total - counts.embedding


class TestKvElementsPerToken:
    def test_mistral_large_2_is_360_kb_at_16_bit(self):
        """Mistral Large 2 caches 360,448 bytes per context token at 16 bits (paper sec. 4.3: ≈360 KB)."""
        # 88 layers x 2 (K and V) x 8 KV heads x 128 d_head x 2 bytes = 360,448 B. Integer arithmetic: exact.
        kv_bytes = kv_elements_per_token(get_model("mistral-large-2")) * 2
        assert kv_bytes == 88 * 2 * 8 * 128 * 2 == 360_448

    def test_deepseek_v3_mla_caches_latent_plus_rope_key(self):
        """DeepSeek-V3 caches (512 latent + 64 RoPE key) x 61 layers x 2 B = 70,272 B, within 20% of the paper's 60 KB.

        The paper's ≈60 KB counts only the 512-wide latent (512 x 61 x 2 = 62,464 B); MLA also caches
        the decoupled 64-wide RoPE key shared by all heads: 576 / 512 = 12.5% more.
        """
        kv_bytes = kv_elements_per_token(get_model("deepseek-v3")) * 2
        # (512 + 64) x 61 x 2 = 70,272 B. Exact.
        assert kv_bytes == (512 + 64) * 61 * 2 == 70_272
        # 70,272 / 60,000 = 1.17 = 1.125 (RoPE key) x 1.041 (the paper rounding 62,464 B down to "60 KB").
        assert kv_bytes == pytest.approx(60e3, rel=0.20)

    def test_mla_is_about_five_times_smaller_than_mistral_large_2(self):
        """MLA's per-token cache is ≈5x smaller than Mistral Large 2's GQA cache (paper: "≈6x cheaper")."""
        # 360,448 / 70,272 = 5.13; with the paper's 60 KB it is 6.0. Band [4, 7] keeps the claim's sense.
        ratio = kv_elements_per_token(get_model("mistral-large-2")) / kv_elements_per_token(get_model("deepseek-v3"))
        assert 4 < ratio < 7


class TestAttentionFlop:
    @pytest.mark.parametrize("name", ["llama_3_8b", "llama_3_70b", "mistral_large_2", "gpt_3_175b"])
    def test_standard_attention_is_4_layers_heads_d_head(self, name):
        """Standard attention costs 4 n_layers n_heads d_head FLOP per context token (paper sec. 4.3)."""
        m = get_model(name)
        assert attention_flop_per_context_token(m) == 4 * m.n_layers * m.n_heads * m.d_head

    def test_llama_3_70b_value(self):
        """Llama 3 70B's attention costs 4 x 80 x 64 x 128 = 2,621,440 FLOP per context token."""
        assert attention_flop_per_context_token(get_model("llama-3-70b")) == 2_621_440

    def test_does_not_depend_on_kv_heads(self):
        """GQA shrinks the cache but not the attention arithmetic: every query head still attends."""
        mha = ModelSpec(name="mha", n_layers=2, d_model=256, n_heads=4, n_kv_heads=4, d_head=64, d_ff=512,
                        vocab_size=1000)
        mqa = ModelSpec(name="mqa", n_layers=2, d_model=256, n_heads=4, n_kv_heads=1, d_head=64, d_ff=512,
                        vocab_size=1000)
        assert attention_flop_per_context_token(mha) == attention_flop_per_context_token(mqa) == 4 * 2 * 4 * 64
        # 2 layers x 2 (K, V) x 4 heads x 64 = 1024 elements for MHA, 4x fewer for MQA.
        assert kv_elements_per_token(mha) == 4 * kv_elements_per_token(mqa) == 1024
