"""The one performance model: time and cost of a decode step for a parallel layout and a batch.

Everything here is vectorised: layout degrees, batch sizes and draft lengths may be numpy arrays
of one common shape, so the enumeration evaluates every configuration in a few array passes and
``explain`` evaluates one with 0-d arrays. ``step_structure`` exposes the step time's
coefficients in the batch for one layout; the encodings (CP-SAT, MILP) build their constraints
from it and never restate a formula (``tests/test_one_physics.py``).

Model (paper sec. 3, eq. 29-44, generalised to 1-D/2-D TP, PP and EP as the issue describes):

* A layout is ``tp_rows x tp_cols`` tensor parallelism (``tp_rows == 1`` is 1-D TP over
  ``tp_cols`` GPUs), ``pp`` pipeline stages and expert parallelism of degree ``ep`` inside the TP
  group. An instance has ``tp_rows * tp_cols * pp`` GPUs.
* PP splits the batch into ``pp`` micro-batches (paper sec. 3.5). Each stage reads its weights
  once per micro-batch, so one token's step costs the full model's reads, arithmetic and
  collectives at the *micro-batch* size on ``tp`` GPUs, plus ``pp - 1`` point-to-point sends.
  That is the paper's even split (attention ``"paper"``). As engines run it (attention
  ``"heads"``/``"data"``, ``pipeline_layer_scale``): the pipeline keeps ``pp`` micro-batches in
  flight, so a token's round is ``pp`` slots of the *slowest* stage, which holds ``ceil(L / pp)``
  layers and the LM head (engines put the unembedding and sampling on the last rank and never
  give it fewer than ``floor(L / pp)`` layers): per-layer terms scale by ``pp ceil(L/pp) / L``,
  the head's by ``pp``; the layers need not divide evenly; and a hand-off carries the hidden
  state and the residual (2 d_model per token, each TP rank its slice).
* Arithmetic and HBM traffic overlap (max, eq. 29); collectives and kernel launches do not
  (sec. 3.4).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

from infecon.formulations.params import (
    activation_elements_per_token,
    attention_flop_per_token,
    attention_parameters,
    ffn_active_width,
    ffn_matrices,
    kv_cache_elements_per_sequence,
    kv_cache_read_elements_per_sequence,
    kv_elements_per_sequence,
    linear_state_elements_per_sequence,
    live_activation_elements_per_token,
    parameter_counts,
    qkv_output_width,
)
from infecon.formulations.specs import HardwareSpec, ModelSpec, SpeculativeDecoding, Workload

# How many latency passes and how many copies of the message a collective moves per rank.
# A tree all-reduce goes up and down (2 passes) and each rank sends and receives 2x(R-1)/R of
# the message (paper sec. 3.4: "reducing X bytes over R participants reads 2X(R-1) bytes" over
# R ranks). An all-to-all is one pass moving (R-1)/R of the message; a point-to-point send is
# one hop moving the whole message.
_PASSES = {"all_reduce": 2.0, "all_to_all": 1.0}
_DATA_COPIES = {"all_reduce": 2.0, "all_to_all": 1.0}
# Whether the intra-node phase of a hierarchical collective shrinks what crosses the network: a
# reduction leaves each rank 1/r of the message after its node's reduce-scatter; an all-to-all
# only regroups data by destination, so every rank still sends its whole message's remote share.
_REDUCES_WITHIN_NODE = {"all_reduce": True, "all_to_all": False}

@dataclass(frozen=True)
class StepTime:
    """One forward pass of the instance, in seconds, broken into the paper's four components."""

    compute_s: np.ndarray
    hbm_read_s: np.ndarray
    network_s: np.ndarray
    collective_latency_s: np.ndarray
    kernel_latency_s: np.ndarray

    @property
    def total_s(self) -> np.ndarray:
        """Eq. 29-30: max(memory, arithmetic) plus the serial network and latency terms."""
        return (np.maximum(self.compute_s, self.hbm_read_s) + self.network_s
                + self.collective_latency_s + self.kernel_latency_s)


def group_placement(group_size, stride, node_size: int):
    """Ranks per node and nodes spanned by a collective group of ``group_size`` ranks ``stride`` apart.

    Ranks are numbered consecutively across nodes; layouts are restricted (``space.py``) so that
    every group is spread evenly, which makes this closed form exact.
    """
    group_size = np.asarray(group_size, dtype=np.int64)
    ranks_per_node = np.minimum(group_size, np.maximum(1, node_size // np.asarray(stride, dtype=np.int64)))
    return ranks_per_node, group_size // ranks_per_node


@dataclass(frozen=True)
class ProtocolLines:
    """One collective call's time under each NCCL protocol, as a line in the tokens the call carries.

    ``latency_s[p] + s_per_token[p] * tokens`` is the call's time under protocol ``p`` (axis 0
    follows ``hw.protocols``); NCCL runs the cheapest, so a call costs the minimum of these lines:
    a concave, piecewise-linear function of the tokens. ``active`` is False for a group of one
    rank or an empty message, which cost nothing.
    """

    latency_s: np.ndarray
    s_per_token: np.ndarray
    active: np.ndarray

    def cheapest(self, tokens):
        """``(latency_s, bandwidth_s)`` of the cheapest protocol at ``tokens`` (first protocol on ties)."""
        tokens = np.asarray(tokens, dtype=float)
        best_total = best_latency = best_bandwidth = None
        for latency, slope in zip(self.latency_s, self.s_per_token, strict=True):
            bandwidth = slope * tokens
            total = latency + bandwidth
            if best_total is None:
                best_total, best_latency, best_bandwidth = total, latency, bandwidth
                continue
            better = total < best_total
            best_total = np.where(better, total, best_total)
            best_latency = np.where(better, latency, best_latency)
            best_bandwidth = np.where(better, bandwidth, best_bandwidth)
        active = self.active & (tokens > 0)
        zero = np.zeros(np.shape(best_total))
        return np.where(active, best_latency, zero), np.where(active, best_bandwidth, zero)


def _protocol_lines(hw: HardwareSpec, passes: float, hops, links, active) -> ProtocolLines:
    """Eq. 23 latency per protocol, and bandwidth seconds per token over phases that do not overlap.

    ``links`` is ``((bytes_per_token, link_bytes_per_s), ...)``: what each rank moves over each
    link per token carried; a protocol delivers ``bandwidth_fraction`` of every link.
    """
    intra_hops, inter_hops = hops
    latency, slope = [], []
    for proto in hw.protocols.values():
        latency.append(proto.base_latency_s + passes * (proto.intra_hop_latency_s * intra_hops
                                                        + proto.inter_hop_latency_s * inter_hops))
        slope.append(sum(moved / (link * proto.bandwidth_fraction) for moved, link in links))
    shape = np.broadcast(*latency, *slope, active).shape
    return ProtocolLines(np.array([np.broadcast_to(x, shape) for x in latency], dtype=float),
                         np.array([np.broadcast_to(x, shape) for x in slope], dtype=float),
                         np.broadcast_to(np.asarray(active, dtype=bool), shape))


def collective_lines(hw: HardwareSpec, kind: str, group_size, ranks_per_node, nodes,
                     bytes_per_token) -> ProtocolLines:
    """Per-protocol lines of one collective whose message is ``bytes_per_token`` per token carried.

    Latency is eq. 23 per protocol: base + passes * (intra_hop (ranks/node - 1) + inter_hop log2 nodes).
    Bandwidth time is hierarchical, as NCCL runs a collective over ``r`` ranks in each of ``n`` nodes
    (paper eqs. 26-28 and 41-42): an intra-node phase moves ``copies (r-1)/r m`` bytes per rank over
    NVLink, an inter-node phase ``copies (n-1)/n m'`` over the network, where ``m' = m/r`` for a
    reduction (the node's reduce-scatter left each rank 1/r of the message) and ``m' = m`` for an
    all-to-all (data routed over NVLink to the rank on the destination's rail, NCCL's PXN). The
    phases add (sec. 3.4: communication does not overlap). For a 2-D TP group of ``r n = sqrt(N)``
    ranks slicing ``X`` reduced bytes, the network term is 2(n-1) X / N per GPU (eq. 26/41 with
    n = sqrt(N_nodes)) and the NVLink term 2(r-1) n X / N (eq. 42's sqrt(N_nodes) multiplier).
    With n = 1 or r = 1 it is the flat ring formula over the one link used. Where the hardware carries an
    engine's measured curve of the kind (``HardwareSpec.kernels_in_force``), a group within one node costs it.
    """
    group = np.asarray(group_size, dtype=float)
    per_node = np.asarray(ranks_per_node, dtype=float)
    nodes = np.asarray(nodes, dtype=float)
    message = np.asarray(bytes_per_token, dtype=float)
    copies = _DATA_COPIES[kind]
    intra_bytes = copies * message * (per_node - 1) / per_node
    remote_message = message / per_node if _REDUCES_WITHIN_NODE[kind] else message
    inter_bytes = copies * remote_message * (nodes - 1) / nodes
    hops = (per_node - 1, np.log2(nodes))
    links = ((intra_bytes, hw.intra_node_bandwidth_bytes_per_s), (inter_bytes, hw.inter_node_bandwidth_bytes_per_s))
    lines = _protocol_lines(hw, _PASSES[kind], hops, links, active=(group > 1) & (message > 0))
    curve = hw.kernels_in_force.collectives.get(kind) if hw.kernels_in_force is not None else None
    if curve is None:
        return lines
    # Within one node, the engine's measured kernel (every protocol's line becomes the measured one, so the
    # lines keep their shape for the encodings); across nodes NCCL's published latencies as before.
    inside = nodes == 1
    latency = curve.latency_s + curve.hop_latency_s * (per_node - 1)
    slope = intra_bytes / (hw.intra_node_bandwidth_bytes_per_s * curve.bandwidth_share)
    return ProtocolLines(np.where(inside, latency, lines.latency_s), np.where(inside, slope, lines.s_per_token),
                         lines.active)


def point_to_point_lines(hw: HardwareSpec, crosses_node, bytes_per_token) -> ProtocolLines:
    """One pipeline send between adjacent stages: one hop, intra- or inter-node, the whole message."""
    crosses = np.asarray(crosses_node, dtype=bool)
    message = np.asarray(bytes_per_token, dtype=float)
    hops = (np.where(crosses, 0.0, 1.0), np.where(crosses, 1.0, 0.0))
    links = ((np.where(crosses, 0.0, message), hw.intra_node_bandwidth_bytes_per_s),
             (np.where(crosses, message, 0.0), hw.inter_node_bandwidth_bytes_per_s))
    return _protocol_lines(hw, 1.0, hops, links, active=message > 0)


def collective_time_s(hw: HardwareSpec, kind: str, group_size, ranks_per_node, nodes, message_bytes):
    """Latency and bandwidth seconds of one collective of ``message_bytes``, at the cheapest NCCL protocol.

    The lines of ``collective_lines`` evaluated at one "token" carrying the whole message.
    Returns ``(latency_s, bandwidth_s)``; both are 0 for a group of one rank or an empty message.
    """
    return collective_lines(hw, kind, group_size, ranks_per_node, nodes, message_bytes).cheapest(1.0)


def point_to_point_time_s(hw: HardwareSpec, crosses_node, message_bytes):
    """One pipeline send of ``message_bytes``: ``(latency_s, bandwidth_s)`` at the cheapest protocol."""
    return point_to_point_lines(hw, crosses_node, message_bytes).cheapest(1.0)


def expert_share(idle_share_per_token: float, tokens):
    """1 - q^tokens: the share of routed experts that ``tokens`` independent tokens touch (eq. 22).

    ``q = 1 - top_k / experts`` is the chance one token leaves a given expert idle. Concave and
    increasing in the tokens, so any chord between two of its points lies below it.
    """
    return 1.0 - idle_share_per_token ** np.asarray(tokens, dtype=float)


def routed_expert_fraction_read(model: ModelSpec, tokens):
    """Expected share of routed experts that ``tokens`` independently routed tokens touch (eq. 22)."""
    if not model.is_moe:
        return np.zeros(np.shape(tokens))
    return expert_share(1.0 - model.n_active_experts / model.n_routed_experts, tokens)


@dataclass(frozen=True)
class CollectiveTerm:
    """``calls`` identical collective calls per step (all layers), each costing the cheapest of ``lines``."""

    calls: np.ndarray
    lines: ProtocolLines


@dataclass(frozen=True)
class StepStructure:
    """A decode step's time as a function of the micro-batch, for fixed layouts: what encodings build from.

    With ``m`` sequences per micro-batch and ``x = m * tokens_per_sequence`` tokens per pass:

    * ``compute_s = compute_s_per_token * x + compute_fixed_s`` (affine: a measured GEMM curve, efficiency
      e x / (x + x_half), costs the weights' arithmetic of x_half more tokens; 0 for a flat curve);
    * ``hbm_read_s = hbm_fixed_s + hbm_routed_s * (1 - expert_idle_share ** x) + hbm_s_per_sequence * m
      + hbm_s_per_token * x`` (affine plus the concave MoE share of experts, eq. 22);
    * each collective term: ``calls * min_p(latency_s[p] + s_per_token[p] * x)`` (concave and
      piecewise linear: the cheapest NCCL protocol per call);
    * ``kernel_s`` (constant launches).

    The step is ``max(compute, hbm) + collectives + kernels`` (eq. 29-30). ``at`` evaluates it and
    ``decode_step`` is ``step_structure(...).at(...)``, so the encodings, which read these
    coefficients, and the enumeration, which calls ``decode_step``, cannot drift apart. Every
    array has the layouts' shape.
    """

    compute_s_per_token: np.ndarray
    hbm_fixed_s: np.ndarray
    hbm_routed_s: np.ndarray
    expert_idle_share: float
    hbm_s_per_sequence: np.ndarray
    hbm_s_per_token: np.ndarray
    kernel_s: np.ndarray
    collectives: tuple[CollectiveTerm, ...]
    tokens_per_sequence: np.ndarray
    compute_fixed_s: np.ndarray | float = 0.0
    # Per layout, how many layers' worth of per-layer work a round of the pipeline pays, over the model's
    # layers (``pipeline_layer_scale``: 1 for the paper's even split); engine overheads per layer scale by it.
    layer_scale: np.ndarray = 1.0
    # Per layout, how many stage slots a round has (``pp`` as engines run it, 1 for the paper's model).
    stage_slots: np.ndarray = 1.0

    def at(self, micro_batch) -> StepTime:
        """The step's components at ``micro_batch`` sequences per micro-batch (broadcast with the layouts)."""
        m = np.asarray(micro_batch, dtype=float)
        x = m * self.tokens_per_sequence
        compute_s = self.compute_s_per_token * x + self.compute_fixed_s
        hbm_read_s = (self.hbm_fixed_s + self.hbm_routed_s * expert_share(self.expert_idle_share, x)
                      + self.hbm_s_per_sequence * m + self.hbm_s_per_token * x)
        latency = np.zeros(np.shape(compute_s))
        bandwidth = np.zeros(np.shape(compute_s))
        for term in self.collectives:
            lat, bw = term.lines.cheapest(x)
            latency = latency + term.calls * lat
            bandwidth = bandwidth + term.calls * bw
        shape = np.broadcast(compute_s, hbm_read_s, latency).shape
        return StepTime(
            compute_s=np.broadcast_to(compute_s, shape),
            hbm_read_s=np.broadcast_to(hbm_read_s, shape),
            network_s=np.broadcast_to(bandwidth, shape),
            collective_latency_s=np.broadcast_to(latency, shape),
            kernel_latency_s=np.broadcast_to(np.asarray(self.kernel_s, dtype=float), shape),
        )


def _layer_collectives(model: ModelSpec, hw: HardwareSpec, workload: Workload, tp_rows, tp_cols, ep,
                       attention_dp=False) -> list[CollectiveTerm]:
    """Serial collectives of all layers, as terms of the step structure.

    Written once for 1-D and 2-D TP: a 2-D grid alternates all-reduces over its rows group
    (QKV and FFN-up outputs, sliced over columns) and its columns group (attention-out and
    FFN-down outputs, sliced over rows): the paper's 4 per layer, 2 with parallel attention
    (eq. 25, 44). With ``tp_rows == 1`` the rows group is a single rank, so only the two
    d_model all-reduces of 1-D TP remain (one with parallel attention). An MoE layer with
    ``ep > 1`` replaces its two FFN collectives by an all-to-all dispatch and combine over the EP
    group, each carrying min(ep, top-k) copies of the token's d_model vector (sec. 3.5). Where
    ``attention_dp`` (a flag per layout, broadcast with the degrees) attention is local to each rank:
    its collectives (QKV and attention-out) go; the FFN's gather and scatter of the whole micro-batch
    cost its all-reduces (module note at ``ATTENTION_SHARDINGS``). A parallel-attention block shares
    its QKV and FFN-up all-reduce under heads; under attention DP only the FFN-up part remains.
    """
    act = workload.activation_bytes
    rows_rpn, rows_nodes = group_placement(tp_rows, tp_cols, hw.node_size_gpus)
    cols_rpn, cols_nodes = group_placement(tp_cols, 1, hw.node_size_gpus)
    ep_rpn, ep_nodes = group_placement(ep, 1, hw.node_size_gpus)

    def over_rows(width):
        return collective_lines(hw, "all_reduce", tp_rows, rows_rpn, rows_nodes, width * act / np.asarray(tp_cols))

    def over_cols(width):
        return collective_lines(hw, "all_reduce", tp_cols, cols_rpn, cols_nodes, width * act / np.asarray(tp_rows))

    qkv, d_model = qkv_output_width(model), model.d_model
    shape = np.broadcast(tp_rows, tp_cols, ep, attention_dp).shape
    use_ep = np.broadcast_to(np.asarray(ep) > 1, shape)
    data = np.broadcast_to(np.asarray(attention_dp, dtype=bool), shape)
    terms = []
    for count, moe_layer in ((model.n_dense_ffn_layers, False), (model.n_moe_layers, True)):
        if count == 0:
            continue
        calls = np.full(shape, float(count))
        up_width = (ffn_matrices(model) - 1) * ffn_active_width(model, moe_layer)
        if model.parallel_attention and not moe_layer:
            # Heads: QKV and FFN-up in one all-reduce, attention-out and FFN-down in another. Data: the FFN's own.
            shared = np.where(data, 0.0, calls)
            terms += [CollectiveTerm(shared, over_rows(qkv + up_width)), CollectiveTerm(calls, over_cols(d_model))]
            if data.any():
                terms.append(CollectiveTerm(np.where(data, calls, 0.0), over_rows(up_width)))
            continue
        attention_calls = np.where(data, 0.0, calls)
        terms += [CollectiveTerm(attention_calls, over_rows(qkv)), CollectiveTerm(attention_calls, over_cols(d_model))]
        ffn_calls = np.where(use_ep, 0.0, calls) if moe_layer else calls
        terms += [CollectiveTerm(ffn_calls, over_rows(up_width)), CollectiveTerm(ffn_calls, over_cols(d_model))]
        if moe_layer:
            copies = np.minimum(ep, model.n_active_experts)
            a2a = collective_lines(hw, "all_to_all", ep, ep_rpn, ep_nodes, copies * d_model * act)
            terms.append(CollectiveTerm(2 * np.where(use_ep, calls, 0.0), a2a))
    return terms


def _pipeline_sends(model: ModelSpec, hw: HardwareSpec, workload: Workload, tp, pp,
                    tensors_per_token=1.0) -> list[CollectiveTerm]:
    """The ``pp - 1`` activation sends between stages, each split over the stage's ``tp`` GPUs.

    A send carries ``tensors_per_token`` d_model vectors per token: 1 in the paper's model, 2 as engines
    hand off (``PIPELINE_TENSORS_PER_TOKEN``), at the activation precision; each TP rank sends its 1/tp
    slice over its own link (NVLink within a node, the network across), with one hop's latency.
    """
    tp = np.asarray(tp, dtype=np.int64)
    pp = np.asarray(pp, dtype=np.int64)
    node = hw.node_size_gpus
    inter_sends = np.where(tp >= node, pp - 1, (pp * tp - 1) // node)
    intra_sends = (pp - 1) - inter_sends
    per_token = np.asarray(tensors_per_token, dtype=float) * model.d_model * workload.activation_bytes / tp
    return [CollectiveTerm(inter_sends.astype(float), point_to_point_lines(hw, True, per_token)),
            CollectiveTerm(intra_sends.astype(float), point_to_point_lines(hw, False, per_token))]


# How a layout splits attention over its TP group (the serving model picks; the paper's model is "paper"):
# "paper": every sequence's KV cache splits evenly over the TP ranks, whatever the KV heads (sec. 3.1:
#   "extra communication for distributed attention is ignored");
# "heads": TP over attention heads, as engines run it: a rank holds the KV heads of its query heads, so
#   beyond n_kv_heads ranks the KV cache is replicated; MLA caches one latent shared by all heads, so every
#   rank holds (and reads) the whole latent cache;
# "data": attention data parallelism (SGLang --enable-dp-attention, TRT-LLM attention DP): each rank runs
#   attention for its own 1/tp of the sequences with the whole attention weights, so the KV cache splits by
#   sequence, the attention weights are replicated, the attention output all-reduce disappears, and the FFN
#   gathers every rank's tokens and scatters them back (an all-gather plus a reduce-scatter: one all-reduce's
#   bytes and passes, in place of the FFN all-reduce; with EP the dispatch all-to-all does it).
ATTENTION_SHARDINGS = ("paper", "heads", "data")
# What a pipeline hand-off carries per token as engines run PP: the hidden state and the residual stream,
# d_model elements each (vLLM's IntermediateTensors {"hidden_states", "residual"}; TensorRT-LLM and SGLang
# send the same pair between PP ranks). The paper's model sends one d_model vector (sec. 3.5).
PIPELINE_TENSORS_PER_TOKEN = 2.0


def attention_kinds(attention) -> np.ndarray:
    """``attention`` as an array of ``ATTENTION_SHARDINGS`` names: one name, or one per layout (broadcast with them).

    Raises:
        ValueError: a name that is not one of ``ATTENTION_SHARDINGS``.
    """
    kinds = np.asarray(attention)
    if kinds.ndim == 0 and str(kinds) in ATTENTION_SHARDINGS:
        return kinds
    if not np.isin(kinds, ATTENTION_SHARDINGS).all():
        unknown = sorted({str(k) for k in np.ravel(kinds)} - set(ATTENTION_SHARDINGS))
        raise ValueError(f"attention must be one of {ATTENTION_SHARDINGS} (got {', '.join(map(repr, unknown))})")
    return kinds


def kv_shards(model: ModelSpec, tp, attention="paper") -> np.ndarray:
    """How many ways a TP group of ``tp`` ranks splits the batch's KV cache (``ATTENTION_SHARDINGS``, per layout)."""
    kinds = attention_kinds(attention)
    tp = np.asarray(tp, dtype=float)
    kv_heads = 1 if model.attention == "mla" else model.n_kv_heads
    return np.where(kinds == "heads", np.minimum(tp, float(kv_heads)), tp)


def state_shards(model: ModelSpec, tp, attention="paper") -> np.ndarray:
    """How many ways a TP group splits the batch's linear-attention state: by value heads under "heads"
    (beyond them the state is replicated, as KV heads are), by sequence or evenly otherwise."""
    kinds = attention_kinds(attention)
    tp = np.asarray(tp, dtype=float)
    return np.where(kinds == "heads", np.minimum(tp, float(max(model.linear_value_heads, 1))), tp)


def replicated_attention_parameters(model: ModelSpec, attention="paper") -> np.ndarray:
    """Attention parameters every TP rank holds whole: all of them under attention data parallelism, else none."""
    data = attention_kinds(attention) == "data"
    return np.where(data, attention_parameters(model), 0.0)


def engine_pipeline(attention) -> np.ndarray:
    """Per layout, whether PP runs as engines run it: any attention sharding but the paper's.

    Why tied to the attention sharding: it is the one per-layout flag that already says "the paper's model"
    (``"paper"``) or "an engine's" (``"heads"``, ``"data"``), so every caller of the physics passes it already.
    """
    return attention_kinds(attention) != "paper"


def stage_layers(model: ModelSpec, pp) -> np.ndarray:
    """Layers on the fullest pipeline stage: ceil(n_layers / pp) (engines split layers as evenly as they can)."""
    return -(-model.n_layers // np.asarray(pp, dtype=np.int64))


def pipeline_layer_scale(model: ModelSpec, pp, attention="paper") -> np.ndarray:
    """Per layout, the per-layer work a round of the pipeline pays, in units of the whole model's layers.

    A round is ``pp`` slots of the slowest stage (``ceil(L / pp)`` layers), so it pays ``pp ceil(L/pp) / L``
    times the model's per-layer time: 1 where ``pp`` divides the layers (and at PP 1), e.g. 61 layers in 8
    stages: 8 x 8 / 61 = 1.049. The paper's model splits evenly (1).
    """
    pp = np.asarray(pp, dtype=np.int64)
    uneven = pp * stage_layers(model, pp) / model.n_layers
    return np.where(engine_pipeline(attention), uneven, 1.0)


def pipeline_stage_slots(pp, attention="paper") -> np.ndarray:
    """Per layout, how many times a round pays what sits on the slowest stage once: ``pp`` as engines run it
    (the LM head and sampling on the last stage), 1 in the paper's model (its head read once per round)."""
    return np.where(engine_pipeline(attention), np.asarray(pp, dtype=float), 1.0)


def kernels_per_layer(model: ModelSpec) -> int:
    """Serial matmul launches per layer: QKV, output, FFN up, FFN down; 2 with parallel attention (eq. 30)."""
    return 2 if model.parallel_attention else 4


def step_structure(model: ModelSpec, hw: HardwareSpec, workload: Workload, *, tp_rows, tp_cols, pp, ep,
                   tokens_per_sequence=1, prefill: bool = False,
                   attention: str | np.ndarray = "paper") -> StepStructure:
    """The coefficients of the step time in the micro-batch, per layout (see ``StepStructure``).

    ``tokens_per_sequence`` is 1 for plain decoding and gamma + 1 for a speculative verification
    pass; a ``prefill`` pass (the serving model's, ``serving.py``) carries a prompt's tokens and
    attends as engines do for prompts (``attention_flop_per_context_token``). ``attention`` says how
    the TP group splits attention (``ATTENTION_SHARDINGS``; one name, or one per layout, so that a search
    evaluates layouts of both engine shardings in one pass): the KV reads per sequence go over
    ``kv_shards`` ranks, replicated attention weights are read whole by every rank, and attention data
    parallelism drops the attention output's collectives. Eq. 29-44; the module docstring gives the
    PP and EP generalisation.
    """
    counts = parameter_counts(model)
    tp = np.asarray(tp_rows) * np.asarray(tp_cols)
    context = workload.context_tokens
    hbm_s_per_byte = 1.0 / (tp * hw.hbm_bandwidth_bytes_per_s * hw.bandwidth_efficiency)
    # As engines run PP, a round pays the slowest stage pp times: per-layer work x ``layers``, the LM head's
    # (its weights, its matmul and the logits) x ``head`` (module docstring); the paper's model: both 1.
    layers = pipeline_layer_scale(model, pp, attention)
    head = pipeline_stage_slots(pp, attention)
    # Weight matmuls run at the weight precision's tensor-core rate (paper fig. 6: 8-bit weights use
    # 8-bit tensor cores); attention multiplies activations by the KV cache, at the wider of the two.
    attention_bits = max(workload.activation_bits, workload.kv_bits)
    # Pipeline stages as engines run them; at PP 1 every scale is 1 and the paper's expressions (kept as they
    # were, so its numbers stay the same to the last bit) are the same sums: they are used there too.
    engine = engine_pipeline(attention) & (np.asarray(pp) > 1)
    attention_flop_s = attention_flop_per_token(model, context, prefill) / hw.peak_flop_per_s(attention_bits)
    weight_flop_s_per_token = 2 * counts.active / hw.peak_flop_per_s(workload.weight_bits)
    weight_flop_s = 2 / hw.peak_flop_per_s(workload.weight_bits)
    paper_flop_s = weight_flop_s_per_token + attention_flop_s
    weight_flop_s_per_token = np.where(engine, layers * (counts.active - counts.unembedding) * weight_flop_s
                                       + head * counts.unembedding * weight_flop_s, weight_flop_s_per_token)
    flop_s_per_token = np.where(engine, weight_flop_s_per_token + layers * attention_flop_s, paper_flop_s)
    idle = 1.0 - model.n_active_experts / model.n_routed_experts if model.is_moe else 1.0
    data = attention_kinds(attention) == "data"
    layer_terms = _layer_collectives(model, hw, workload, tp_rows, tp_cols, ep, attention_dp=data)
    sends = np.where(engine, PIPELINE_TENSORS_PER_TOKEN, 1.0)
    collectives = (*(CollectiveTerm(term.calls * layers, term.lines) for term in layer_terms),
                   *_pipeline_sends(model, hw, workload, tp, pp, tensors_per_token=sends))
    # A replicated weight is read whole by each of the tp ranks: (tp - 1) extra copies over the group.
    replicated = (tp - 1) * replicated_attention_parameters(model, attention)
    fixed_read = np.where(engine, layers * (counts.always_read + replicated) + head * counts.unembedding,
                          counts.always_read + counts.unembedding + replicated)
    kv_s_per_byte = hbm_s_per_byte * tp / kv_shards(model, tp, attention)
    if hw.kernels_in_force is not None:  # the engine's measured decode attention: KV streams at its own share
        kv_s_per_byte = kv_s_per_byte * hw.kernels_in_force.kv_stream_ratio
    kv_read_s = kv_cache_read_elements_per_sequence(model, context) * workload.kv_bytes * kv_s_per_byte
    if model.n_linear_layers:
        # A linear-attention layer reads its recurrent state and writes it back every step (2 passes).
        state_s_per_byte = hbm_s_per_byte * tp / state_shards(model, tp, attention)
        kv_read_s = kv_read_s + 2 * linear_state_elements_per_sequence(model) * workload.kv_bytes * state_s_per_byte
    head_elements = model.d_model + model.vocab_size  # the unembedding's input and logits (eq. 35's last terms)
    elements = activation_elements_per_token(model)
    activation_elements = np.where(engine, layers * (elements - head_elements) + head * head_elements, elements)
    return StepStructure(
        compute_s_per_token=flop_s_per_token / (tp * hw.flop_efficiency),
        hbm_fixed_s=fixed_read * workload.weight_bytes * hbm_s_per_byte,
        hbm_routed_s=layers * counts.routed * workload.weight_bytes * hbm_s_per_byte,
        expert_idle_share=idle,
        hbm_s_per_sequence=layers * kv_read_s,
        hbm_s_per_token=activation_elements * workload.activation_bytes * hbm_s_per_byte,
        kernel_s=layers * model.n_layers * kernels_per_layer(model) * hw.kernel_launch_latency_s,
        collectives=collectives,
        tokens_per_sequence=np.asarray(tokens_per_sequence, dtype=float),
        # The weight GEMMs at efficiency e x / (x + x_half): x_half tokens' more arithmetic per pass.
        compute_fixed_s=weight_flop_s_per_token * hw.half_tokens(workload.weight_bits) / (tp * hw.flop_efficiency),
        layer_scale=np.asarray(layers, dtype=float),
        stage_slots=np.asarray(head, dtype=float),
    )


def decode_step(model: ModelSpec, hw: HardwareSpec, workload: Workload, *, tp_rows, tp_cols, pp, ep,
                micro_batch, tokens_per_sequence=1, prefill: bool = False,
                attention: str | np.ndarray = "paper") -> StepTime:
    """Time for the instance to advance every sequence of the batch by one forward pass.

    ``micro_batch`` is the batch divided by ``pp``; ``tokens_per_sequence`` is 1 for plain
    decoding and gamma + 1 for a speculative verification pass. Evaluates ``step_structure``,
    the coefficients the encodings read. Returns per-component seconds (eq. 29-44).
    """
    structure = step_structure(model, hw, workload, tp_rows=tp_rows, tp_cols=tp_cols, pp=pp, ep=ep,
                               tokens_per_sequence=tokens_per_sequence, prefill=prefill, attention=attention)
    return structure.at(micro_batch)


# Whole bytes above this are "more than any accelerator holds": clipping there keeps the integer
# conversion of absurd batches (10^11 sequences and beyond) from overflowing int64, and every
# backend's capacity rule exact (2^53 is also the largest integer float64 holds exactly).
HBM_BYTES_CEILING = 2 ** 53


def beyond_any_memory(hbm_bytes) -> bool:
    """True when an HBM need reached ``HBM_BYTES_CEILING``: the real need is larger and was clipped, so the
    number itself means nothing (reports say "exceeds any memory" instead of printing 9,007,199 GB)."""
    return bool(np.all(np.asarray(hbm_bytes, dtype=float) >= float(HBM_BYTES_CEILING)))


def hbm_bytes_per_gpu_affine(model: ModelSpec, workload: Workload, *, tp, pp, drafter: ModelSpec | None = None,
                             tokens_per_sequence=1, attention: str | np.ndarray = "paper"):
    """HBM per GPU as ``fixed_bytes + batch * per_sequence_bytes``: the capacity rule's structure.

    Fixed: the weights (and a loaded drafter's), sharded evenly over the ``tp * pp`` GPUs. Per
    sequence: its KV cache (and the drafter's), sharded the same way, plus the activations its
    ``tokens_per_sequence`` tokens keep live during a step (``live_activation_elements_per_token``:
    the residual stream on every TP rank and the step's widest output split over the TP group),
    on the one PP stage a micro-batch of ``batch / pp`` occupies at a time. Where a layout has more
    TP ranks than KV heads we follow the paper in assuming attention splits by batch at no extra
    cost (sec. 3.1: "extra communication for distributed attention is ignored"); the serving model
    says how engines split it (``attention``: KV over ``kv_shards`` ranks, attention weights whole
    on every rank under attention data parallelism). A drafter's own
    activations are not added: it runs between target passes in the same buffers, which a drafter
    smaller than the target does not outgrow.

    Returns ``(fixed_bytes, per_sequence_bytes)`` as float arrays.
    """
    tp = np.asarray(tp, dtype=float)
    pp = np.asarray(pp, dtype=float)
    gpus = tp * pp
    counts = parameter_counts(model)
    replicated = (tp - 1) * replicated_attention_parameters(model, attention)
    stored = (counts.total + replicated) * workload.weight_bytes
    layers = pipeline_layer_scale(model, pp.astype(np.int64), attention)
    # As engines run PP, the fullest stage holds ceil(L / pp) layers and, beyond one stage, the larger of the
    # embedding (first stage) and the unembedding (last stage): pp stages of that size over tp x pp GPUs.
    ends = np.where(pp > 1, max(counts.embedding, counts.unembedding), counts.embedding + counts.unembedding)
    fullest = (layers * (counts.always_read + counts.routed + replicated) + pp * ends) * workload.weight_bytes
    stored = np.where(engine_pipeline(attention) & (pp > 1), fullest, stored)
    kv_per_sequence = (layers * kv_cache_elements_per_sequence(model, workload.context_tokens) * workload.kv_bytes
                       / (kv_shards(model, tp, attention) * pp))
    if model.n_linear_layers:
        kv_per_sequence = kv_per_sequence + (linear_state_elements_per_sequence(model) * workload.kv_bytes
                                             / (state_shards(model, tp, attention) * pp))
    if drafter is not None:
        stored += parameter_counts(drafter).total * workload.weight_bytes
        kv_per_sequence += kv_elements_per_sequence(drafter, workload.context_tokens) * workload.kv_bytes / gpus
    replicated, sharded = live_activation_elements_per_token(model)
    activations = (np.asarray(tokens_per_sequence, dtype=float) * workload.activation_bytes
                   * (replicated + sharded / tp) / pp)
    return stored / gpus, kv_per_sequence + activations


def hbm_used_bytes_per_gpu(model: ModelSpec, workload: Workload, *, tp, pp, batch,
                           drafter: ModelSpec | None = None, tokens_per_sequence=1,
                           attention: str | np.ndarray = "paper"):
    """Weights, KV cache and live activations per GPU, rounded up to whole bytes (``hbm_bytes_per_gpu_affine``).

    Whole bytes keep the capacity rule an exact integer comparison in every backend; values beyond
    2^53 bytes are clipped there (infeasible on any accelerator either way), so no batch overflows.
    """
    fixed, per_sequence = hbm_bytes_per_gpu_affine(model, workload, tp=tp, pp=pp, drafter=drafter,
                                                   tokens_per_sequence=tokens_per_sequence, attention=attention)
    used = np.ceil(fixed + np.asarray(batch, dtype=float) * per_sequence)
    return np.minimum(used, float(HBM_BYTES_CEILING)).astype(np.int64)


def largest_batch_in_hbm(model: ModelSpec, hw: HardwareSpec, workload: Workload, *, tp, pp,
                         attention: str | np.ndarray = "paper") -> np.ndarray:
    """Per layout, the most sequences whose weights, KV and activations fit in HBM (0 if the weights do not).

    The default batch cap: "whatever fits" (no drafter loaded and one token per sequence, the least
    any configuration of the layout needs).
    """
    fixed, per_sequence = hbm_bytes_per_gpu_affine(model, workload, tp=tp, pp=pp, attention=attention)
    room = hw.hbm_capacity_bytes - fixed
    fits = np.floor(np.maximum(room, 0.0) / per_sequence)
    return np.minimum(fits, float(HBM_BYTES_CEILING)).astype(np.int64)


def expected_tokens_per_iteration(acceptance: float, draft_tokens):
    """Tokens a speculative iteration yields on average: (1 - a^(gamma+1)) / (1 - a).

    We use Leviathan et al.'s expectation, which counts the token the target samples itself
    after the last accepted draft (the "bonus" token), consistently with a verification pass
    over gamma + 1 positions. The paper's eq. 46 writes (1 - a^gamma)/(1 - a), which omits that
    token; its notebook uses our form (notes, sec. 7). ``gamma = 0`` (no speculation) yields 1.
    """
    gamma = np.asarray(draft_tokens, dtype=float)
    if acceptance >= 1.0:
        return gamma + 1.0
    return (1.0 - acceptance ** (gamma + 1.0)) / (1.0 - acceptance)


@dataclass(frozen=True)
class DrafterChoice:
    """The drafter's layout per configuration (0 where it has none on those GPUs) and its step."""

    tp_rows: np.ndarray
    tp_cols: np.ndarray
    pp: np.ndarray
    step: StepTime  # at the chosen layout; meaningless where ``available`` is False
    available: np.ndarray

    @property
    def step_s(self) -> np.ndarray:
        """Seconds per drafter pass, infinite where no drafter layout exists."""
        return np.where(self.available, self.step.total_s, np.inf)


def drafter_step(drafter: ModelSpec, hw: HardwareSpec, workload: Workload, *, tp_rows, tp_cols, pp,
                 batch) -> StepTime:
    """One drafter pass over a batch in the drafter's own layout (dense: no EP; ``batch / pp`` micro-batches)."""
    micro_batch = np.asarray(batch, dtype=float) / np.asarray(pp)
    return decode_step(drafter, hw, workload, tp_rows=tp_rows, tp_cols=tp_cols, pp=pp, ep=1, micro_batch=micro_batch)


def fastest_drafter_layout(drafter: ModelSpec, hw: HardwareSpec, workload: Workload,
                           candidates: Callable[[int], np.ndarray], *, gpus, batch) -> DrafterChoice:
    """Per configuration, the fastest drafter layout on the target's ``gpus`` for its ``batch``.

    Why this loses no Pareto point: the drafter runs on the GPUs the target already pays for, so
    for a fixed target layout, batch and draft length the cost per token is proportional to the
    latency per token, which increases with the drafter's step time (eq. 46). Choosing the
    drafter's layout to minimise its step time, and then the draft length (``optimal_draft_tokens``)
    to minimise latency, therefore yields the cheapest and fastest point of every (layout, batch).

    ``candidates(gpus)`` gives the drafter's valid layouts on exactly that many GPUs as rows
    ``(tp_rows, tp_cols, pp)`` (``space.drafter_layouts``), canonical order first; a layout with
    ``pp`` stages needs ``batch % pp == 0``. Ties go to the earlier candidate. The drafter's step
    depends only on (GPUs, batch), so it is evaluated once per distinct pair.
    """
    gpus = np.asarray(gpus, dtype=np.int64)
    batch = np.asarray(batch, dtype=np.int64)
    shape = np.broadcast(gpus, batch).shape
    pairs, inverse = np.unique(np.stack([np.broadcast_to(gpus, shape).ravel(), np.broadcast_to(batch, shape).ravel()]),
                               axis=1, return_inverse=True)
    chosen = np.zeros((3, pairs.shape[1]), dtype=np.int64)
    for g in np.unique(pairs[0]):
        layouts = np.asarray(candidates(int(g)), dtype=np.int64).reshape(-1, 3)
        if len(layouts) == 0:
            continue
        columns = np.flatnonzero(pairs[0] == g)
        b = pairs[1, columns][None, :]
        rows, cols, stages = (layouts[:, k, None] for k in range(3))
        step_s = drafter_step(drafter, hw, workload, tp_rows=rows, tp_cols=cols, pp=stages, batch=b).total_s
        step_s = np.where(b % stages == 0, step_s, np.inf)
        best = np.argmin(step_s, axis=0)
        found = np.isfinite(step_s[best, np.arange(len(columns))])
        chosen[:, columns] = np.where(found, layouts[best].T, 0)
    available = chosen[2] > 0
    safe = np.where(available, chosen, 1)
    step = drafter_step(drafter, hw, workload, tp_rows=safe[0], tp_cols=safe[1], pp=safe[2], batch=pairs[1])
    inverse = inverse.reshape(shape)
    return DrafterChoice(
        tp_rows=chosen[0][inverse], tp_cols=chosen[1][inverse], pp=chosen[2][inverse],
        step=StepTime(*(getattr(step, f.name)[inverse] for f in fields(StepTime))),
        available=available[inverse],
    )


@dataclass(frozen=True)
class ConfigMetrics:
    """Per-configuration results: what the frontier, the encodings and ``explain`` read."""

    target: StepTime
    drafter: StepTime | None
    latency_s: np.ndarray  # per output token, seen by one request
    tokens_per_second: np.ndarray  # per request
    total_tokens_per_second: np.ndarray  # whole instance
    usd_per_million_tokens: np.ndarray
    utilization: np.ndarray  # model FLOP utilisation against peak at the weight precision
    hbm_used_bytes_per_gpu: np.ndarray
    gpus: np.ndarray
    draft_tokens: np.ndarray  # 0 without speculative decoding, or where not speculating is fastest
    drafter_tp_rows: np.ndarray  # the drafter's layout; 0 where no drafter runs (draft_tokens == 0)
    drafter_tp_cols: np.ndarray
    drafter_pp: np.ndarray


def speculative_latency_floor(model: ModelSpec, hw: HardwareSpec, workload: Workload,
                              speculative: SpeculativeDecoding, candidates: Callable[[int], np.ndarray], *,
                              tp_rows, tp_cols, pp, ep, batch) -> np.ndarray:
    """A lower bound on ``evaluate``'s speculative latency per token at ``batch`` and every larger batch of the layout.

    ``evaluate`` takes the best draft length among those that fit in HBM, with the fastest drafter layout
    that splits the batch into equal micro-batches. Dropping both conditions (every length 0..max, every
    drafter layout on these GPUs, the micro-batch as a real number) can only lower that minimum. Each
    remaining term, (target pass over gamma + 1 positions + gamma drafter passes) / expected tokens, is
    nondecreasing in the batch (every step term is, ``step_structure``), so their minimum at ``batch``
    bounds the latency at any larger batch, although the latency itself may fall (a pipelined drafter
    layout appears at a batch it splits). The enumeration skips batch ranges with it.
    """
    tp_rows, tp_cols, pp, ep = (np.asarray(x, dtype=np.int64) for x in (tp_rows, tp_cols, pp, ep))
    batch = np.asarray(batch, dtype=np.int64)
    layout = dict(tp_rows=tp_rows, tp_cols=tp_cols, pp=pp, ep=ep)
    micro_batch = batch / pp
    gpus = tp_rows * tp_cols * pp
    drafter_s = np.full(np.broadcast(gpus, batch).shape, np.inf)
    for g in np.unique(gpus):
        drafters = np.asarray(candidates(int(g)), dtype=np.int64).reshape(-1, 3)
        mine = np.flatnonzero(np.broadcast_to(gpus, drafter_s.shape) == g)
        if len(drafters) == 0 or len(mine) == 0:
            continue
        rows, cols, stages = (drafters[:, k, None] for k in range(3))
        steps = drafter_step(speculative.drafter, hw, workload, tp_rows=rows, tp_cols=cols, pp=stages,
                             batch=np.broadcast_to(batch, drafter_s.shape)[mine][None, :]).total_s
        drafter_s[mine] = steps.min(axis=0)
    floor = decode_step(model, hw, workload, **layout, micro_batch=micro_batch).total_s
    for gamma in range(1, speculative.max_draft_tokens + 1):
        target_s = decode_step(model, hw, workload, **layout, micro_batch=micro_batch,
                               tokens_per_sequence=gamma + 1).total_s
        floor = np.minimum(floor, (target_s + gamma * drafter_s)
                           / expected_tokens_per_iteration(speculative.acceptance, gamma))
    return floor


def optimal_draft_tokens(model: ModelSpec, hw: HardwareSpec, workload: Workload, speculative: SpeculativeDecoding,
                         *, tp_rows, tp_cols, pp, ep, batch, drafter_step_s) -> np.ndarray:
    """The draft length in 0..max_draft_tokens minimising latency per token (eq. 46), per configuration.

    0 means no speculation: the target decodes alone and the drafter is not loaded. For a fixed
    layout and batch, cost per token is proportional to latency per token, so the
    latency-minimising draft length is also the cost-minimising one: choosing it here loses no
    Pareto point, and a speculative frontier is never worse than the plain one (with acceptance 0
    it is the plain one). A length whose target, drafter and activations do not fit in HBM is not
    a choice; nor is any length > 0 where the drafter has no layout (``drafter_step_s`` infinite).
    Ties go to the shorter draft.
    """
    micro_batch = np.asarray(batch, dtype=float) / np.asarray(pp)
    layout = dict(tp_rows=tp_rows, tp_cols=tp_cols, pp=pp)
    tp = np.asarray(tp_rows) * np.asarray(tp_cols)
    best_latency = decode_step(model, hw, workload, **layout, ep=ep, micro_batch=micro_batch).total_s
    best_gamma = np.zeros(np.shape(best_latency), dtype=np.int64)
    for gamma in range(1, speculative.max_draft_tokens + 1):
        target_s = decode_step(model, hw, workload, **layout, ep=ep, micro_batch=micro_batch,
                               tokens_per_sequence=gamma + 1).total_s
        latency = (target_s + gamma * drafter_step_s) / expected_tokens_per_iteration(speculative.acceptance, gamma)
        fits = hbm_used_bytes_per_gpu(model, workload, tp=tp, pp=pp, batch=batch, drafter=speculative.drafter,
                                      tokens_per_sequence=gamma + 1) <= int(hw.hbm_capacity_bytes)
        better = fits & (latency < best_latency)
        best_gamma = np.where(better, gamma, best_gamma)
        best_latency = np.where(better, latency, best_latency)
    return best_gamma


def evaluate(model: ModelSpec, hw: HardwareSpec, workload: Workload, *, tp_rows, tp_cols, pp, ep, batch,
             draft_tokens=None, speculative: SpeculativeDecoding | None = None,
             drafter_layouts: Callable[[int], np.ndarray] | None = None) -> ConfigMetrics:
    """Latency, speed, cost, utilisation and memory of each configuration.

    With ``speculative``, an iteration is one target pass over ``draft_tokens + 1`` positions
    plus ``draft_tokens`` drafter passes on the same GPUs in the drafter's own fastest layout
    among ``drafter_layouts(gpus)`` (``fastest_drafter_layout``); latency per token is the
    iteration time over the expected tokens it yields (eq. 46 with the expectation of
    ``expected_tokens_per_iteration``). ``draft_tokens=None`` picks the optimal draft length per
    configuration, 0 (no speculation) included (``optimal_draft_tokens``).

    Raises:
        ValueError: ``speculative`` without ``drafter_layouts``.
    """
    tp_rows, tp_cols, pp, ep = (np.asarray(x, dtype=np.int64) for x in (tp_rows, tp_cols, pp, ep))
    batch = np.asarray(batch, dtype=np.int64)
    gpus = tp_rows * tp_cols * pp
    micro_batch = batch / pp
    layout = dict(tp_rows=tp_rows, tp_cols=tp_cols, pp=pp)
    shape = np.broadcast(gpus, batch).shape
    gamma = np.zeros(shape, dtype=np.int64)
    drafter_step_time = None
    drafter_layout = [np.zeros(shape, dtype=np.int64)] * 3
    if speculative is None:
        target = decode_step(model, hw, workload, **layout, ep=ep, micro_batch=micro_batch)
        latency_s = target.total_s
    else:
        if drafter_layouts is None:
            raise ValueError("speculative decoding needs drafter_layouts (space.drafter_layouts)")
        choice = fastest_drafter_layout(speculative.drafter, hw, workload, drafter_layouts, gpus=gpus, batch=batch)
        if draft_tokens is None:
            draft_tokens = optimal_draft_tokens(model, hw, workload, speculative, **layout, ep=ep, batch=batch,
                                                drafter_step_s=choice.step_s)
        gamma = np.broadcast_to(np.asarray(draft_tokens, dtype=np.int64), shape)
        target = decode_step(model, hw, workload, **layout, ep=ep, micro_batch=micro_batch,
                             tokens_per_sequence=gamma + 1)
        drafting = gamma > 0
        drafter_step_time = choice.step
        drafter_s = gamma * np.where(drafting, choice.step_s, 0.0)  # inf only for a fixed length with no layout
        latency_s = (target.total_s + drafter_s) / expected_tokens_per_iteration(speculative.acceptance, gamma)
        drafter_layout = [np.where(drafting, x, 0) for x in (choice.tp_rows, choice.tp_cols, choice.pp)]
    counts = parameter_counts(model)
    useful_flop_per_token = 2 * counts.active + attention_flop_per_token(model, workload.context_tokens)
    tokens_per_second = 1.0 / latency_s
    total = batch * tokens_per_second
    usd_per_second = gpus * hw.price_usd_per_hour / 3600.0
    # A fixed draft length with no drafter layout on these GPUs takes forever (latency inf, total 0): its cost is
    # inf, as it should be (the drafter_layout rule refuses it), without a RuntimeWarning on stderr.
    with np.errstate(divide="ignore"):
        usd_per_million_tokens = usd_per_second / total * 1e6
    tp = tp_rows * tp_cols
    hbm = hbm_used_bytes_per_gpu(model, workload, tp=tp, pp=pp, batch=batch, tokens_per_sequence=gamma + 1)
    if speculative is not None:
        with_drafter = hbm_used_bytes_per_gpu(model, workload, tp=tp, pp=pp, batch=batch,
                                              drafter=speculative.drafter, tokens_per_sequence=gamma + 1)
        hbm = np.where(gamma > 0, with_drafter, hbm)
    return ConfigMetrics(
        target=target,
        drafter=drafter_step_time,
        latency_s=latency_s,
        tokens_per_second=tokens_per_second,
        total_tokens_per_second=total,
        usd_per_million_tokens=usd_per_million_tokens,
        utilization=useful_flop_per_token * total / (gpus * hw.peak_flop_per_s(workload.weight_bits)),
        hbm_used_bytes_per_gpu=hbm,
        gpus=gpus,
        draft_tokens=gamma,
        drafter_tp_rows=drafter_layout[0],
        drafter_tp_cols=drafter_layout[1],
        drafter_pp=drafter_layout[2],
    )
