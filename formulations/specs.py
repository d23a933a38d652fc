"""Frozen descriptions of a model, an accelerator and a workload: the inputs of the performance model.

Every quantity carries its unit in its name. Instances are immutable; a what-if is
``dataclasses.replace(h100, hbm_bandwidth_bytes_per_s=2 * h100.hbm_bandwidth_bytes_per_s)``.
Validation lives in ``instances.loader`` (which knows the file and field to blame); the
``__post_init__`` checks here only guard invariants the physics relies on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

PROTOCOL_NAMES = ("LL", "LL128", "Simple")


def _frozen_map(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only Transformer, dense or mixture-of-experts, with standard (MHA/GQA/MQA) or MLA attention.

    Counts are per layer unless named otherwise. ``d_ff`` is the hidden size of the dense FFN
    layers; ``d_ff_expert`` that of one routed or shared expert. ``n_dense_layers`` of an MoE model's
    layers use the dense FFN (DeepSeek-V3's first 3; every other layer of Llama 4 Maverick), the
    others are MoE layers: the physics needs their counts, not their order. It is stored as given (an MoE
    model that gives none has 0; a dense model leaves it None) and read through ``n_dense_ffn_layers``:
    every layer of a dense model. No given value is overwritten, so a ``dataclasses.replace`` edit reaches
    the API boundary's check (``loader.check_model``: it was silently re-derived, nan included), and
    ``replace(model, n_layers=16)`` of a dense model still has every layer dense.

    Layer types (``formulations/params.py``): of the ``n_layers`` layers, ``n_window_layers`` attend
    only to the last ``attention_window_tokens`` tokens (sliding window, gpt-oss; or chunked attention,
    Llama 4, bounded by its chunk), ``n_linear_layers`` are linear-attention layers (Gated DeltaNet,
    Qwen3-Next) keeping a constant recurrent state per sequence instead of a KV cache, and the rest
    attend to the whole context. ``attention_sinks``: a learned sink logit per head (gpt-oss), which
    adds ``n_heads`` parameters per attention layer and no KV. ``attention_output_gate``: the query
    projection also emits a sigmoid gate on the attention output (Qwen3-Next), doubling its width.
    ``sparse_attention_topk``: DeepSeek sparse attention (V3.2): a lightning indexer of ``indexer_heads``
    heads of ``indexer_head_dim`` scores every cached token against one cached indexer key per token, and
    the MLA attention reads only the ``sparse_attention_topk`` best.
    """

    name: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_ff: int
    vocab_size: int
    ffn_gated: bool = True
    tied_embeddings: bool = False
    parallel_attention: bool = False
    n_routed_experts: int = 0
    n_active_experts: int = 0
    n_shared_experts: int = 0
    d_ff_expert: int = 0
    n_dense_layers: int | None = None
    attention: str = "standard"  # "standard" (MHA/GQA/MQA) or "mla" (DeepSeek multi-head latent attention)
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    attention_window_tokens: int = 0
    n_window_layers: int = 0
    window_kind: str = "sliding"  # "sliding" (the last W tokens) or "chunked" (the tokens of the current W-chunk)
    attention_sinks: bool = False
    attention_output_gate: bool = False
    n_linear_layers: int = 0
    linear_key_heads: int = 0
    linear_value_heads: int = 0
    linear_key_head_dim: int = 0
    linear_value_head_dim: int = 0
    linear_conv_kernel: int = 0
    sparse_attention_topk: int = 0
    indexer_heads: int = 0
    indexer_head_dim: int = 0
    hf_id: str = field(default="", compare=False)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", _frozen_map(self.sources))
        if self.n_dense_layers is None and self.n_routed_experts:  # not given: an MoE model's layers are all MoE
            object.__setattr__(self, "n_dense_layers", 0)

    @property
    def is_moe(self) -> bool:
        return self.n_routed_experts > 0

    @property
    def n_dense_ffn_layers(self) -> int:
        """Layers with the dense FFN: every layer of a dense model; ``n_dense_layers`` of an MoE one."""
        return self.n_dense_layers if self.is_moe else self.n_layers

    @property
    def n_moe_layers(self) -> int:
        return self.n_layers - self.n_dense_ffn_layers

    @property
    def n_full_attention_layers(self) -> int:
        """Layers whose attention reads the whole context (neither windowed nor linear)."""
        return self.n_layers - self.n_window_layers - self.n_linear_layers

    @property
    def n_softmax_attention_layers(self) -> int:
        """Layers with a KV cache (full or windowed softmax attention): all but the linear-attention ones."""
        return self.n_layers - self.n_linear_layers


@dataclass(frozen=True)
class ProtocolLatency:
    """One NCCL protocol's latency and bandwidth (paper eq. 23 and the notes' section 7).

    An all-reduce over ``ranks_per_node`` ranks in each of ``nodes`` nodes costs
    ``base + 2 * intra_hop * (ranks_per_node - 1) + 2 * inter_hop * log2(nodes)``; the factor 2
    is the tree's reduce and broadcast passes. ``bandwidth_fraction`` is the share of link
    bandwidth the protocol delivers (LL sends a flag with every 4 bytes of data: 0.5).
    """

    base_latency_s: float
    intra_hop_latency_s: float
    inter_hop_latency_s: float
    bandwidth_fraction: float


@dataclass(frozen=True)
class CollectiveCurve:
    """A collective within one node as an engine's kernels run it (measured; instances/kernels/).

    ``latency_s + hop_latency_s (ranks - 1)`` per call, and the bytes each rank moves over its link
    (the ring's bus bytes) at ``bandwidth_share`` of the hardware's intra-node bandwidth: a share, so a
    what-if edit of that bandwidth scales the curve.
    """

    latency_s: float
    hop_latency_s: float
    bandwidth_share: float


@dataclass(frozen=True)
class MeasuredKernels:
    """One engine's measured attention and collective curves on one hardware (instances/kernels/).

    ``kv_stream_ratio``: how much slower the KV cache streams than the weights (the weight-bound GEMMs'
    share of HBM bandwidth over decode attention's), so the engine's calibrated ``bandwidth_efficiency``
    stays the weights' and the KV reads follow at the measured ratio; 1 is today's one share for both.
    ``collectives``: by kind (``all_reduce``, ``all_to_all``), for groups within one node.
    """

    kv_stream_ratio: float = 1.0
    collectives: Mapping[str, CollectiveCurve] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "collectives", _frozen_map(self.collectives))


@dataclass(frozen=True)
class HardwareSpec:
    """One accelerator and the node it sits in; bandwidths are per device and per direction."""

    name: str
    flop_per_s_by_bits: Mapping[int, float]
    hbm_capacity_bytes: float
    hbm_bandwidth_bytes_per_s: float
    intra_node_bandwidth_bytes_per_s: float
    inter_node_bandwidth_bytes_per_s: float
    node_size_gpus: int
    kernel_launch_latency_s: float
    protocols: Mapping[str, ProtocolLatency]
    price_usd_per_hour: float
    flop_efficiency: float = 0.7
    bandwidth_efficiency: float = 0.75
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    # Measured GEMM curves (instances/kernels/): per engine, per weight bits, the tokens per step at which a GEMM
    # reaches half its top efficiency. ``gemm_half_tokens`` is the curve in force (``serving.unit_hardware`` picks
    # the engine's); empty is a flat curve, the constant efficiency (the paper's model, hardware without tables).
    kernel_curves: Mapping[str, Mapping[int, float]] = field(default_factory=dict, repr=False)
    gemm_half_tokens: Mapping[int, float] = field(default_factory=dict, repr=False)
    # Measured attention and collective curves per engine, and the engine's in force (None: today's constants,
    # as for the paper's model, hardware without tables and a --hardware-file), picked like the GEMM curve.
    measured_kernels: Mapping[str, MeasuredKernels] = field(default_factory=dict, repr=False)
    kernels_in_force: MeasuredKernels | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "measured_kernels", _frozen_map(self.measured_kernels))
        object.__setattr__(self, "kernel_curves", _frozen_map({k: _frozen_map(v) for k, v in
                                                               self.kernel_curves.items()}))
        object.__setattr__(self, "gemm_half_tokens", _frozen_map(self.gemm_half_tokens))
        object.__setattr__(self, "flop_per_s_by_bits", _frozen_map(self.flop_per_s_by_bits))
        object.__setattr__(self, "protocols", _frozen_map(self.protocols))
        object.__setattr__(self, "sources", _frozen_map(self.sources))

    def peak_flop_per_s(self, weight_bits: int) -> float:
        """Tensor-core peak for matmuls with ``weight_bits`` weights.

        Why: a precision the hardware has no tensor-core mode for (4-bit on an H100, 8-bit on a
        V100) runs at the rate of the narrowest supported precision that is wider.
        """
        wider = sorted(bits for bits in self.flop_per_s_by_bits if bits >= weight_bits)
        if not wider:
            wider = [max(self.flop_per_s_by_bits)]
        return self.flop_per_s_by_bits[wider[0]]

    def half_tokens(self, weight_bits: int) -> float:
        """Tokens per step at which GEMMs of ``weight_bits`` weights reach half their top efficiency (0: flat).

        The curve of the tensor-core mode the weights run at (``peak_flop_per_s``'s choice of precision).
        """
        wider = sorted(bits for bits in self.flop_per_s_by_bits if bits >= weight_bits)
        bits = wider[0] if wider else max(self.flop_per_s_by_bits)
        return float(self.gemm_half_tokens.get(bits, 0.0))


# Block-scaled 4-bit weight formats: (element bits, scale bits, elements per scale).
# MXFP4: OCP Microscaling Formats (MX) Specification v1.0, sec. 5: FP4 (E2M1) elements, one shared E8M0 (8-bit)
#   scale per block of 32, so 4 + 8/32 = 4.25 bits per weight (gpt-oss ships its experts so).
# NVFP4: NVIDIA Blackwell's FP4: E2M1 elements, one FP8 (E4M3) scale per block of 16, 4 + 8/16 = 4.5 bits per
#   weight (NVIDIA TensorRT Model Optimizer docs; the one FP32 scale per tensor is negligible and not counted).
WEIGHT_FORMATS = {"mxfp4": (4, 8, 32), "nvfp4": (4, 8, 16)}


@dataclass(frozen=True)
class Workload:
    """What is being served: context length, precisions, and the demand and price context.

    ``weight_format`` names a block-scaled format (``WEIGHT_FORMATS``) whose scales add to every
    weight's storage and reads; its elements are ``weight_bits`` wide (4), which also sets the
    tensor-core rate. Empty: plain ``weight_bits``-bit weights.
    """

    context_tokens: int = 0
    weight_bits: int = 16
    activation_bits: int = 16
    kv_bits: int = 16
    weight_format: str = ""

    def __post_init__(self) -> None:
        if self.weight_format:
            if self.weight_format not in WEIGHT_FORMATS:
                raise ValueError(f"'weight_format' must be one of {', '.join(WEIGHT_FORMATS)} "
                                 f"(got {self.weight_format!r})")
            element_bits = WEIGHT_FORMATS[self.weight_format][0]
            if self.weight_bits != element_bits:
                raise ValueError(f"'weight_format' {self.weight_format} has {element_bits}-bit elements "
                                 f"(got weight_bits {self.weight_bits})")

    @property
    def weight_storage_bits(self) -> float:
        """Bits each weight occupies in HBM and is read at: the element plus its share of the block scale."""
        if not self.weight_format:
            return float(self.weight_bits)
        element, scale, block = WEIGHT_FORMATS[self.weight_format]
        return element + scale / block

    @property
    def weight_bytes(self) -> float:
        if not self.weight_format:
            return self.weight_bits / 8
        return self.weight_storage_bits / 8

    @property
    def activation_bytes(self) -> float:
        return self.activation_bits / 8

    @property
    def kv_bytes(self) -> float:
        return self.kv_bits / 8


@dataclass(frozen=True)
class SpeculativeDecoding:
    """A drafter model proposing ``gamma`` tokens that the target verifies in one pass (paper sec. 4.1)."""

    drafter: ModelSpec
    acceptance: float
    max_draft_tokens: int = 8


SERVING_MODES = ("decode_only", "static_batch", "closed_loop", "disaggregated")


@dataclass(frozen=True)
class Requests:
    """What one request asks for: ``input_tokens`` of prompt (isl) and ``output_tokens`` generated (osl)."""

    input_tokens: int
    output_tokens: int

    def __post_init__(self) -> None:
        if self.input_tokens < 0 or self.output_tokens < 1:
            raise ValueError(f"requests need isl >= 0 and osl >= 1 (got {self.input_tokens}, {self.output_tokens})")

    @property
    def mean_decode_context_tokens(self) -> int:
        """The average context a decode step attends to: the prompt plus half the output (isl + osl/2)."""
        return self.input_tokens + self.output_tokens // 2


@dataclass(frozen=True)
class KernelCounts:
    """Serial kernels an engine launches per layer, by block type (collectives are counted by perf.py)."""

    attention: int = 6  # norm, QKV GEMM, RoPE + KV write, attention, output GEMM, residual
    mla_attention: int = 11  # norm, q_a, q norm, q_b, kv_a, kv norm, RoPE, two absorbed BMMs, attention, output
    dense_ffn: int = 3  # gate/up GEMM, activation, down GEMM
    moe_ffn: int = 7  # router, top-k, permute, grouped up GEMM, activation, grouped down GEMM, combine
    shared_expert: int = 3  # gate/up GEMM, activation, down GEMM

    def per_pass(self, model: ModelSpec) -> float:
        """Kernels in one forward pass through every layer of ``model``."""
        attention = self.mla_attention if model.attention == "mla" else self.attention
        moe = self.moe_ffn + (self.shared_expert if model.n_shared_experts else 0)
        return float(model.n_layers * attention + model.n_dense_ffn_layers * self.dense_ffn
                     + model.n_moe_layers * moe)


@dataclass(frozen=True)
class EngineProfile:
    """How a serving engine turns the physics into time: efficiencies and overheads (``serving.py``).

    ``paper`` is True for the paper's assumptions: the hardware file's efficiencies, the paper's
    kernel term (``perf.kernels_per_layer`` launches of ``kernel_launch_latency_s`` per layer) and
    no other overhead. Otherwise the engine's own efficiencies apply and the overhead per forward
    pass is ``kernels.per_pass(model) * kernel_s + step_s + micro_batch * n_layers * sequence_layer_s``:
    a constant per pass plus a coefficient per sequence (affine in the batch); ``request_s`` is a fixed
    latency per request (API server, tokeniser, scheduler) added to TTFT. ``chunk_tokens``: with chunked
    prefill, the prompt tokens one step takes (vLLM ``max_num_batched_tokens``, SGLang
    ``chunked_prefill_size``, TensorRT-LLM ``max_num_tokens``), read through ``prefill_chunk``: it bounds the
    slowest step a request's TPOT can average (``latency.py``) and is the chunk a long prompt pipelines over PP
    stages in (``serving.pipelined_prefill_factor``); one engine setting, one field. ``by_hardware`` maps a
    hardware's ``name`` to its own values of ``PER_HARDWARE`` parameters where the data measured it
    (a platform property: kernel launch and achieved bandwidth differ between CUDA and ROCm).
    """

    name: str
    paper: bool = False
    default_mode: str = "closed_loop"
    flop_efficiency: float = 0.7
    bandwidth_efficiency: float = 0.75
    kernel_s: float = 4e-6
    by_hardware: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    sequence_layer_s: float = 0.0
    step_s: float = 0.0
    request_s: float = 0.0
    kernels: KernelCounts = field(default_factory=KernelCounts)
    chunked_prefill: bool = True
    # Pipeline parallelism as the engine runs it: the share of ``step_s`` each stage slot beyond the first
    # repeats per micro-batch (``serving.engine_pass``).
    stage_overhead_share: float = 0.0
    # Engine limits (``solver.api.build_problem`` applies them): the usable share of HBM, the cap on running
    # sequences per scheduler (per replica; per DP rank with attention DP, ``space.sequence_caps``), the largest PP
    # degree (None: none), and whether attention data parallelism exists.
    memory_fraction: float = 1.0
    max_seqs: int | None = None
    max_pp: int | None = None
    attention_dp: bool = True
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    chunk_tokens: int = 8192  # prompt tokens an engine step takes with chunked prefill (its token budget)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_hardware", _frozen_map({k: _frozen_map(v) for k, v in self.by_hardware.items()}))
        for values in self.by_hardware.values():
            unknown = set(values) - set(PER_HARDWARE)
            if unknown:
                raise ValueError(f"per-hardware values may set {PER_HARDWARE} only (got {sorted(unknown)})")
        object.__setattr__(self, "sources", _frozen_map(self.sources))
        if self.default_mode not in SERVING_MODES:
            raise ValueError(f"'default_mode' must be one of {SERVING_MODES} (got {self.default_mode!r})")

    def prefill_chunk(self) -> int | None:
        """The prompt tokens one engine step takes (``chunk_tokens``), or None when a prompt is one pass: the
        paper's model, or an engine without chunked prefill. Every reader of the chunk goes through here."""
        return None if self.paper or not self.chunked_prefill else int(self.chunk_tokens)

    def on(self, hw: HardwareSpec) -> EngineProfile:
        """This profile on ``hw``: its own per-hardware values where the profile has them, else the defaults."""
        values = self.by_hardware.get(hw.name)
        return replace(self, by_hardware={}, **values) if values else self


PER_HARDWARE = ("kernel_s", "bandwidth_efficiency", "flop_efficiency")
