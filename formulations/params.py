"""Parameter counts and per-token sizes derived from a model's architecture (paper eq. 20-22, 34-35).

Kept apart from the step-time physics because the counts are also what tests compare against
published totals, and what the HBM-capacity rule stores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infecon.formulations.specs import ModelSpec


@dataclass(frozen=True)
class ParameterCounts:
    """Parameters by how often a decode step must read them.

    ``always_read`` is attention, routers, dense FFN layers and shared experts (paper eq. 20's
    N_attention plus the non-routed FFN); ``routed`` is every routed expert, read only when a
    token in the micro-batch is routed to it (eq. 22); ``unembedding`` is read every step;
    ``embedding`` is stored but only b rows are read, which we neglect.
    """

    always_read: float
    routed: float
    routed_active: float
    unembedding: float
    embedding: float

    @property
    def total(self) -> float:
        """Everything stored in HBM."""
        return self.always_read + self.routed + self.unembedding + self.embedding

    @property
    def active(self) -> float:
        """Parameters multiplied per token: 2 FLOP each (eq. 21)."""
        return self.always_read + self.routed_active + self.unembedding


def attention_parameters_per_layer(m: ModelSpec) -> float:
    """Parameters of one softmax-attention layer (full or windowed): Q, K, V and output projections.

    An output gate (Qwen3-Next) widens the query projection by another ``n_heads d_head`` outputs;
    learned attention sinks (gpt-oss) add one logit per head.
    """
    if m.attention == "mla":
        qk_dim = m.d_head + m.qk_rope_head_dim
        if m.q_lora_rank:
            q = m.d_model * m.q_lora_rank + m.q_lora_rank * m.n_heads * qk_dim
        else:
            q = m.d_model * m.n_heads * qk_dim
        kv = m.d_model * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank * m.n_heads * (m.d_head + m.v_head_dim)
        return q + kv + m.n_heads * m.v_head_dim * m.d_model + _sinks_and_gate(m) + indexer_parameters_per_layer(m)
    q_and_o = 2 * m.d_model * m.n_heads * m.d_head
    k_and_v = 2 * m.d_model * m.n_kv_heads * m.d_head
    return q_and_o + k_and_v + _sinks_and_gate(m)


def indexer_parameters_per_layer(m: ModelSpec) -> int:
    """DeepSeek sparse attention's lightning indexer (DeepSeek-V3.2-Exp report, sec. 2.1): indexer queries from
    the compressed query (q_lora_rank x heads x dim), one key from the hidden state (d_model x dim) with its
    LayerNorm (2 x dim), and a per-head weight (d_model x heads)."""
    if not m.sparse_attention_topk:
        return 0
    q_input = m.q_lora_rank or m.d_model
    return (q_input * m.indexer_heads * m.indexer_head_dim + m.d_model * m.indexer_head_dim
            + 2 * m.indexer_head_dim + m.d_model * m.indexer_heads)


def _sinks_and_gate(m: ModelSpec) -> int:
    gate = m.d_model * m.n_heads * m.d_head if m.attention_output_gate else 0
    return gate + (m.n_heads if m.attention_sinks else 0)


def linear_attention_parameters_per_layer(m: ModelSpec) -> float:
    """Parameters of one Gated DeltaNet layer (Qwen3-Next's linear attention; arXiv 2412.06464).

    With key width K = key heads x key head dim and value width V = value heads x value head dim: the
    input projection to q, k, v and the output gate z (d_model x (2K + 2V)), to the per-head decay and
    step size (d_model x 2 value heads), a depthwise causal convolution over the q, k, v channels
    ((2K + V) x kernel), the output projection (V x d_model), and per-head A and dt biases (2 value
    heads) plus the gated output norm (value head dim).
    """
    if not m.n_linear_layers:
        return 0.0
    key, value = m.linear_key_heads * m.linear_key_head_dim, m.linear_value_heads * m.linear_value_head_dim
    projections = m.d_model * (2 * key + 2 * value) + m.d_model * 2 * m.linear_value_heads + value * m.d_model
    return float(projections + (2 * key + value) * m.linear_conv_kernel + 2 * m.linear_value_heads
                 + m.linear_value_head_dim)


def attention_parameters(m: ModelSpec) -> float:
    """Attention parameters of all layers: softmax attention layers plus linear-attention layers."""
    if not m.n_linear_layers:
        return float(m.n_layers * attention_parameters_per_layer(m))
    return float(m.n_softmax_attention_layers * attention_parameters_per_layer(m)
                 + m.n_linear_layers * linear_attention_parameters_per_layer(m))


def ffn_matrices(m: ModelSpec) -> int:
    """Gated FFNs (SwiGLU) have up, gate and down projections; plain ones up and down."""
    return 3 if m.ffn_gated else 2


def parameter_counts(m: ModelSpec) -> ParameterCounts:
    mats = ffn_matrices(m)
    expert = mats * m.d_model * m.d_ff_expert
    attention = attention_parameters(m)
    routers = m.n_moe_layers * m.d_model * m.n_routed_experts
    dense_ffn = m.n_dense_ffn_layers * mats * m.d_model * m.d_ff
    shared = m.n_moe_layers * m.n_shared_experts * expert
    routed = m.n_moe_layers * m.n_routed_experts * expert
    routed_active = m.n_moe_layers * m.n_active_experts * expert
    unembedding = m.vocab_size * m.d_model
    embedding = 0.0 if m.tied_embeddings else m.vocab_size * m.d_model
    return ParameterCounts(
        always_read=float(attention + routers + dense_ffn + shared),
        routed=float(routed),
        routed_active=float(routed_active),
        unembedding=float(unembedding),
        embedding=float(embedding),
    )


def kv_elements_per_token_per_layer(m: ModelSpec) -> int:
    """KV-cache elements one context token occupies in one softmax-attention layer.

    Standard attention caches a K and a V vector per KV head; MLA caches one compressed latent
    plus the decoupled RoPE key, shared by all heads (paper sec. 3.1); with sparse attention also one
    indexer key (DeepSeek-V3.2: 128 elements beside the 576 of the latent and RoPE key).
    """
    if m.attention == "mla":
        return m.kv_lora_rank + m.qk_rope_head_dim + (m.indexer_head_dim if m.sparse_attention_topk else 0)
    return 2 * m.n_kv_heads * m.d_head


def kv_elements_per_token(m: ModelSpec) -> float:
    """KV-cache elements one context token occupies across all layers with a KV cache (paper eq. 34).

    For a model with windowed layers this is the size of a token still inside every window (a
    context of at most ``attention_window_tokens``); ``kv_cache_elements_per_sequence`` gives a
    sequence's cache at any context. Linear-attention layers keep no per-token cache.
    """
    return float(m.n_softmax_attention_layers * kv_elements_per_token_per_layer(m))


def _windowed(m: ModelSpec) -> bool:
    return bool(m.n_window_layers or m.n_linear_layers or m.sparse_attention_topk)


def kv_cache_elements_per_sequence(m: ModelSpec, context_tokens):
    """KV-cache elements one sequence holds, and a decode step reads, at ``context_tokens`` of context.

    A full-attention layer caches every context token; a windowed layer only the last
    ``min(context, W)`` (sliding window: Beltagy et al. 2020, as gpt-oss's 128-token layers), since
    engines free or overwrite what falls out of the window (vLLM's hybrid KV-cache manager, TRT-LLM's
    cyclic window cache). A chunked layer (Llama 4, chunk W) attends to the tokens of its current
    chunk, between 1 and W of them: ``min(context, W)`` is exact below W and an upper bound above (the
    mean over a long decode is about W/2). Affine (here constant) in the batch: each sequence's own size.
    """
    if not _windowed(m):
        return context_tokens * kv_elements_per_token(m)
    width = kv_elements_per_token_per_layer(m)
    window = np.minimum(context_tokens, m.attention_window_tokens)
    return m.n_full_attention_layers * width * context_tokens + m.n_window_layers * width * window


def kv_cache_read_elements_per_sequence(m: ModelSpec, context_tokens):
    """KV-cache elements a decode step reads per sequence: what it holds, except under sparse attention.

    DeepSeek sparse attention (V3.2) reads every cached indexer key to score the context, then only the
    ``min(context, top-k)`` selected latents (DeepSeek-V3.2-Exp report, sec. 2.1: the main attention's cost
    falls from O(L^2) to O(L k); the indexer's stays O(L^2) but is small: 128 elements against 576).
    """
    if not m.sparse_attention_topk:
        return kv_cache_elements_per_sequence(m, context_tokens)
    latent = kv_elements_per_token_per_layer(m) - m.indexer_head_dim
    selected = np.minimum(context_tokens, m.sparse_attention_topk)
    return m.n_softmax_attention_layers * (m.indexer_head_dim * context_tokens + latent * selected)


def linear_state_elements_per_layer(m: ModelSpec) -> int:
    """Recurrent state of one Gated DeltaNet layer per sequence, whatever the context.

    One key-dim x value-dim matrix per value head (the delta rule's fast weights), and the causal
    convolution's last ``kernel - 1`` inputs over its 2K + V channels (Qwen3-Next: 32 x 128 x 128 +
    3 x 8192 = 548,864 elements).
    """
    key, value = m.linear_key_heads * m.linear_key_head_dim, m.linear_value_heads * m.linear_value_head_dim
    matrix = m.linear_value_heads * m.linear_key_head_dim * m.linear_value_head_dim
    return matrix + (m.linear_conv_kernel - 1) * (2 * key + value) if m.n_linear_layers else 0


def linear_state_elements_per_sequence(m: ModelSpec) -> float:
    """Recurrent-state elements one sequence holds over all linear-attention layers (0 without them)."""
    return float(m.n_linear_layers * linear_state_elements_per_layer(m))


def kv_elements_per_sequence(m: ModelSpec, context_tokens):
    """Everything a sequence keeps between steps: its KV cache plus any linear-attention state."""
    if not m.n_linear_layers:
        return kv_cache_elements_per_sequence(m, context_tokens)
    return kv_cache_elements_per_sequence(m, context_tokens) + linear_state_elements_per_sequence(m)


def _attention_flop_per_layer_per_context_token(m: ModelSpec, prefill: bool) -> int:
    if m.attention == "mla" and prefill:
        d_qk, d_v = m.d_head + m.qk_rope_head_dim, m.v_head_dim
    elif m.attention == "mla":
        d_qk, d_v = m.kv_lora_rank + m.qk_rope_head_dim, m.kv_lora_rank
    else:
        d_qk = d_v = m.d_head
    return 2 * m.n_heads * (d_qk + d_v)


def attention_flop_per_context_token(m: ModelSpec, prefill: bool = False) -> float:
    """Attention FLOP per generated token per context token: 2 n_layers n_heads (d_qk + d_v).

    For standard attention d_qk = d_v = d_head, giving the paper's 4 n_layers n_heads d_head
    (sec. 4.3; eq. 37 as converted drops d_head). MLA with absorbed projections attends in the
    latent space: d_qk = kv_lora_rank + rope dim, d_v = kv_lora_rank (sec. 3.1's "d_latent").
    A ``prefill`` pass decompresses the latent and attends per head (d_qk = d_head + rope dim,
    d_v = v_head_dim), as DeepSeek-V3's engines do for prompts (DeepSeek-V2 paper, sec. 2.1.3:
    absorption pays off at decode, where the cached latent is re-read for every new token).
    Counts the layers with a KV cache; windowed layers stop growing at their window
    (``attention_flop_per_token``).
    """
    return float(m.n_softmax_attention_layers * _attention_flop_per_layer_per_context_token(m, prefill))


# Gated delta rule per value head and token (arXiv 2412.06464, eq. for S_t): decay the k x v state (1 FLOP
# per element), read S^T k (2), add the rank-1 correction beta (v - S^T k) k^T (2), read the output S^T q (2).
LINEAR_FLOP_PER_STATE_ELEMENT = 7


def attention_flop_per_token(m: ModelSpec, context_tokens, prefill: bool = False):
    """Attention FLOP one token spends attending to ``context_tokens`` of context, all layers.

    Full layers: ``attention_flop_per_context_token`` per context token; windowed layers stop at
    ``min(context, W)`` tokens (``kv_cache_elements_per_sequence`` says why, and why chunked layers
    are bounded so); linear-attention layers spend a constant, ``LINEAR_FLOP_PER_STATE_ELEMENT`` per
    element of the delta-rule state plus 2 per convolution weight, whatever the context. Sparse
    attention: the indexer over every context token plus the attention over ``min(context, top-k)``.
    """
    if not _windowed(m):
        return attention_flop_per_context_token(m, prefill) * context_tokens
    per_layer = _attention_flop_per_layer_per_context_token(m, prefill)
    if m.sparse_attention_topk:
        # Indexer: each head's dot product with every cached key (2 x heads x dim per token), then MLA over top-k.
        indexer = 2 * m.indexer_heads * m.indexer_head_dim * context_tokens
        selected = np.minimum(context_tokens, m.sparse_attention_topk)
        return m.n_softmax_attention_layers * (per_layer * selected + indexer)
    window = np.minimum(context_tokens, m.attention_window_tokens)
    softmax = m.n_full_attention_layers * per_layer * context_tokens + m.n_window_layers * per_layer * window
    if not m.n_linear_layers:
        return softmax
    key, value = m.linear_key_heads * m.linear_key_head_dim, m.linear_value_heads * m.linear_value_head_dim
    matrix = m.linear_value_heads * m.linear_key_head_dim * m.linear_value_head_dim
    linear = LINEAR_FLOP_PER_STATE_ELEMENT * matrix + 2 * m.linear_conv_kernel * (2 * key + value)
    return softmax + m.n_linear_layers * linear


def qkv_output_width(m: ModelSpec) -> int:
    """Elements the QKV projection writes per token: (1 + 2/g) n_heads d_head for GQA (eq. 25)."""
    if m.attention == "mla":
        return m.n_heads * (m.d_head + m.qk_rope_head_dim) + m.kv_lora_rank + m.qk_rope_head_dim
    gate = m.n_heads if m.attention_output_gate else 0
    return (m.n_heads + gate + 2 * m.n_kv_heads) * m.d_head


def attention_output_width(m: ModelSpec) -> int:
    return m.n_heads * (m.v_head_dim if m.attention == "mla" else m.d_head)


def ffn_active_width(m: ModelSpec, moe_layer: bool) -> int:
    """Hidden FFN width a token touches: d_ff in a dense layer, (top-k + shared) experts in an MoE layer."""
    if moe_layer:
        return (m.n_active_experts + m.n_shared_experts) * m.d_ff_expert
    return m.d_ff


def activation_elements_per_token(m: ModelSpec) -> float:
    """Matmul inputs and outputs read or written per token, all layers plus the unembedding (eq. 35).

    Per layer: QKV (d_model in, qkv out), output projection (heads in, d_model out), FFN up
    (d_model in, up/gate out) and down (d_ff in, d_model out). With a non-gated FFN this is
    eq. 35's 2 d_model + (1+2/g) n_h d_h + n_h d_h + 2 d_model + 2 d_ff.
    """
    up_outputs = ffn_matrices(m) - 1
    per_layer_base = m.d_model + qkv_output_width(m) + attention_output_width(m) + m.d_model + 2 * m.d_model
    total = 0.0
    for count, moe in ((m.n_dense_ffn_layers, False), (m.n_moe_layers, True)):
        width = ffn_active_width(m, moe)
        total += count * (per_layer_base + up_outputs * width + width)
    return total + m.d_model + m.vocab_size


def live_activation_elements_per_token(m: ModelSpec) -> tuple[float, float]:
    """Elements a token keeps in HBM while a step runs: (activations, replicated on every TP rank; workspace, sharded).

    Why: a decode step's matmul inputs and outputs live in HBM (the paper reads and writes them there,
    eq. 35), so every token in flight needs room for them, however short its context. Buffers are
    reused from layer to layer, so what must fit is one layer's worth. Activations: the residual
    stream entering and leaving the layer (2 d_model, held whole on every TP rank, as Megatron-style
    TP does). Workspace: the buffer for the widest tensor the step writes, split over the TP group:
    the QKV, attention or FFN up/gate outputs, or the logits over the vocabulary (vocabulary-parallel
    unembedding; the widest for Llama 3, whose vocabulary is 128K). Engine-specific reserves (CUDA
    context, communication buffers, allocator slack) are not physics and are left to engine profiles.
    """
    up_outputs = ffn_matrices(m) - 1
    widths = [qkv_output_width(m), attention_output_width(m), m.vocab_size]
    if m.n_dense_ffn_layers:
        widths.append(up_outputs * ffn_active_width(m, False))
    if m.n_moe_layers:
        widths.append(up_outputs * ffn_active_width(m, True))
    return float(2 * m.d_model), float(max(widths))
