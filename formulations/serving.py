"""The serving model: prefill, engine overheads, serving modes and prices, all from ``perf.decode_step``.

One physics: a forward pass is ``perf.decode_step``. A decode step carries one token per sequence
at the mean decode context isl + osl/2; a prefill pass carries isl tokens per sequence at the mean
causal context isl/2, so its arithmetic is compute-bound and its attention quadratic in isl
(``tokens * context``). What an engine adds (``EngineProfile``) is applied to that step here:

* its efficiencies scale the arithmetic and HBM terms (``perf`` divides by them linearly, so a
  step evaluated at 100 % efficiency is scaled exactly);
* its overhead per pass is a **constant** (kernels per layer by block type times seconds per
  kernel, plus a fixed scheduling cost per step) plus a **coefficient per sequence**
  (``n_layers * sequence_layer_s``): affine in the micro-batch, the form the encodings use.

Serving modes turn pass times into what a user sees (per request: TTFT, TPOT, tokens/s):

* ``decode_only``: the paper: every step decodes, prefill is not charged to speed;
  TPOT = decode step, per-user speed = 1 / TPOT.
* ``static_batch``: all ``b`` requests start together; TTFT = one prefill pass of b x isl tokens,
  TPOT = decode step at b, per-user speed = osl / (TTFT + (osl - 1) TPOT).
* ``closed_loop``: continuous batching at ``b`` requests in flight per instance. In steady state
  b/osl requests finish and arrive per step, so each step also carries b/osl prefills of one
  isl-token sequence (P1): TPOT = decode step + (micro_batch / osl) P1 (affine in the batch). With
  chunked prefill (engine profile) the chunks ride in decode steps and P1 there excludes the
  pass's own kernel and step costs.
  The prefill share of a step is rho = (micro_batch / osl) P1 / TPOT; a new request waits for the
  prefills ahead of it as in an M/D/1 queue: TTFT = P1 (1 + rho / (2 (1 - rho))).
* ``disaggregated``: separate prefill and decode instances of the same layout. The decode pool
  never pays for prefill: TPOT = decode step. The prefill pool runs P1 per request at utilisation
  rho_p (given by the instance counts, or ``DEFAULT_PREFILL_UTILIZATION`` when sizing it), and the
  KV cache of isl tokens crosses the network: TTFT = P1 (1 + rho_p / (2 (1 - rho_p))) + transfer.

Percentiles of TTFT and TPOT over requests under Poisson arrivals (``ServingMetrics.ttft_at``, ``tpot_at``)
come from the same quantities through ``latency.py`` (``ModeTimes.spread``).

Prices: prefill GPU time is charged to input tokens, decode GPU time to output tokens
(``usd_per_million_tokens`` stays the output price); the blended price weighs them isl:osl.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

from infecon.formulations.closed_loop import closed_loop_ttft_s, mixes_decode, wave_chunk_tokens
from infecon.formulations.latency import (
    MAX_QUEUE_SHARE,
    LatencySpread,
    closed_loop_spread,
    disaggregated_spread,
    waiting_share_at_most,
)
from infecon.formulations.params import kv_elements_per_sequence
from infecon.formulations.perf import (
    ConfigMetrics,
    StepStructure,
    StepTime,
    decode_step,
    evaluate,
    expected_tokens_per_iteration,
    hbm_used_bytes_per_gpu,
    pipeline_layer_scale,
    pipeline_stage_slots,
    step_structure,
)
from infecon.formulations.specs import (
    SERVING_MODES,
    EngineProfile,
    HardwareSpec,
    ModelSpec,
    Requests,
    SpeculativeDecoding,
    Workload,
)

DEFAULT_PREFILL_UTILIZATION = 0.7  # a disaggregated prefill pool sized to run 70 % busy (assumption)


@dataclass(frozen=True)
class PassTime:
    """One forward pass: the physics at the engine's efficiencies plus the engine's affine overhead.

    ``total_s = physics.total_s + constant_s + per_sequence_s * micro_batch``; the engine's
    kernel term is inside ``physics.kernel_latency_s`` (also a constant per pass).
    """

    physics: StepTime
    constant_s: np.ndarray
    per_sequence_s: np.ndarray
    micro_batch: np.ndarray

    @property
    def overhead_s(self) -> np.ndarray:
        """Engine time beyond the paper's four terms: kernels, fixed step cost and per-sequence cost."""
        return self.physics.kernel_latency_s + self.constant_s + self.per_sequence_s * self.micro_batch

    @property
    def total_s(self) -> np.ndarray:
        return self.physics.total_s + self.constant_s + self.per_sequence_s * self.micro_batch


def unit_hardware(hw: HardwareSpec, engine: EngineProfile | str | None = None) -> HardwareSpec:
    """``hw`` at 100 % efficiency and no kernel term: the step an engine's parameters then scale.

    With ``engine`` (a profile or its family name), its measured GEMM curve on ``hw`` where one exists
    (``HardwareSpec.kernel_curves``): the engine's ``flop_efficiency`` is then the curve's top, reached as the
    tokens per step grow; and its measured KV streaming and in-node collectives (``HardwareSpec.measured_kernels``).
    The paper's profile and engines without tables keep the flat curve and today's constants.
    """
    if isinstance(engine, EngineProfile):
        engine = None if engine.paper else engine.name
    curve = hw.kernel_curves.get(engine, {}) if engine is not None else {}
    kernels = hw.measured_kernels.get(engine) if engine is not None else None
    return dataclasses.replace(hw, flop_efficiency=1.0, bandwidth_efficiency=1.0, kernel_launch_latency_s=0.0,
                               gemm_half_tokens=curve, kernels_in_force=kernels)


def engine_pass(unit: StepTime, model: ModelSpec, hw: HardwareSpec, engine: EngineProfile, micro_batch,
                layer_scale=1.0, stage_slots=1.0) -> PassTime:
    """Apply an engine to a pass evaluated on ``unit_hardware(hw)``: efficiencies, kernels, overheads.

    With pipeline stages (``perf.pipeline_layer_scale`` and ``perf.pipeline_stage_slots`` of the layout), a
    round pays the slowest stage's kernels and per-sequence layer costs (``layer_scale`` times the model's)
    and, on each of its ``stage_slots`` slots beyond the first, ``stage_overhead_share`` of the fixed step
    cost (each PP rank prepares and launches every micro-batch it receives). At PP 1 both are 1: unchanged.
    """
    micro_batch = np.asarray(micro_batch, dtype=float)
    engine = engine.on(hw)
    layer_scale = np.asarray(layer_scale, dtype=float)
    kernel_s = layer_scale * (engine.kernels.per_pass(model) * engine.kernel_s)
    physics = dataclasses.replace(
        unit, compute_s=unit.compute_s / engine.flop_efficiency,
        hbm_read_s=unit.hbm_read_s / engine.bandwidth_efficiency,
        kernel_latency_s=np.broadcast_to(kernel_s, np.broadcast(unit.kernel_latency_s, kernel_s).shape))
    step_s = engine.step_s * (1.0 + (np.asarray(stage_slots, dtype=float) - 1.0) * engine.stage_overhead_share)
    shape = np.broadcast(micro_batch, layer_scale, step_s).shape
    return PassTime(physics, np.broadcast_to(step_s, shape),
                    np.broadcast_to(layer_scale * (model.n_layers * engine.sequence_layer_s), shape),
                    np.broadcast_to(micro_batch, shape))


@dataclass(frozen=True)
class PassStructure:
    """A forward pass as a function of the micro-batch: ``perf.step_structure``, then the engine (``engine_pass``).

    Why: the encodings bound a pass with lines in the micro-batch (compute linear, HBM and collectives
    concave, the engine's overhead affine), and ``forward_pass`` evaluates this same object, so the
    lines and the exact evaluation cannot drift apart. ``engine`` None or a paper profile leaves
    ``perf``'s physics unchanged (the hardware's efficiencies and kernel term, no overhead).
    """

    structure: StepStructure
    model: ModelSpec
    hardware: HardwareSpec
    engine: EngineProfile | None

    def at(self, micro_batch) -> PassTime:
        """The pass at ``micro_batch`` sequences per micro-batch (broadcast with the layouts)."""
        unit = self.structure.at(micro_batch)
        if self.engine is None or self.engine.paper:
            zero = np.zeros(np.shape(unit.total_s))
            return PassTime(unit, zero, zero, np.broadcast_to(np.asarray(micro_batch, dtype=float), zero.shape))
        return engine_pass(unit, self.model, self.hardware, self.engine, micro_batch,
                           self.structure.layer_scale, self.structure.stage_slots)


def attention_sharding(paper: bool, attention_dp=False) -> str | np.ndarray:
    """How the TP group splits attention (``perf.ATTENTION_SHARDINGS``): the paper's even split for the
    paper's model, else by heads as engines run it, or by sequence with attention data parallelism.

    ``attention_dp`` is one flag or one per layout (the search tries both where they differ); a flag
    gives one name, an array of flags an array of names, which the physics broadcasts with the layouts.
    """
    if paper:
        return "paper"
    if np.ndim(attention_dp) == 0:
        return "data" if bool(attention_dp) else "heads"
    return np.where(np.asarray(attention_dp, dtype=bool), "data", "heads")


def pass_structure(model: ModelSpec, hw: HardwareSpec, workload: Workload, engine: EngineProfile | None, *,
                   tp_rows, tp_cols, pp, ep, tokens_per_sequence=1, prefill: bool = False,
                   attention_dp=False) -> PassStructure:
    """The ``PassStructure`` of a pass of ``tokens_per_sequence`` tokens per sequence in these layouts.

    An engine splits attention as engines do (``attention_sharding``: by heads, or data-parallel where
    ``attention_dp``, one flag or one per layout), the paper's model evenly.
    """
    paper = engine is None or engine.paper
    physics_hw = hw if paper else unit_hardware(hw, engine)
    structure = step_structure(model, physics_hw, workload, tp_rows=tp_rows, tp_cols=tp_cols, pp=pp, ep=ep,
                               tokens_per_sequence=tokens_per_sequence, prefill=prefill,
                               attention=attention_sharding(paper, attention_dp))
    return PassStructure(structure, model, hw, engine)


def forward_pass(model: ModelSpec, hw: HardwareSpec, workload: Workload, engine: EngineProfile, *, tp_rows, tp_cols,
                 pp, ep, micro_batch, tokens_per_sequence=1, context_tokens=None, attention_dp=False) -> PassTime:
    """One pass of ``tokens_per_sequence`` tokens for each of ``micro_batch`` sequences at ``context_tokens``.

    ``context_tokens`` defaults to the workload's decode context. The paper profile is
    ``perf.decode_step`` unchanged (its own kernel term, the hardware's efficiencies, no overhead).
    ``attention_dp``: as in ``pass_structure``.
    """
    if context_tokens is not None:
        workload = dataclasses.replace(workload, context_tokens=context_tokens)
    structure = pass_structure(model, hw, workload, engine, tp_rows=tp_rows, tp_cols=tp_cols, pp=pp, ep=ep,
                               tokens_per_sequence=tokens_per_sequence, attention_dp=attention_dp)
    return structure.at(micro_batch)


def prefill_context_tokens(requests: Requests) -> float:
    """Mean context a prompt token attends to under a causal mask: (isl + 1) / 2 (attention quadratic in isl)."""
    return (requests.input_tokens + 1) / 2


def kv_transfer_s(model: ModelSpec, hw: HardwareSpec, workload: Workload, requests: Requests, tp) -> np.ndarray:
    """Seconds to send one request's prompt KV cache from a prefill to a decode instance.

    Each of the ``tp`` GPUs sends its shard over its own network link at the inter-node bandwidth.
    """
    kv_bytes = kv_elements_per_sequence(model, requests.input_tokens) * workload.kv_bytes
    return kv_bytes / (np.asarray(tp, dtype=float) * hw.inter_node_bandwidth_bytes_per_s)


@dataclass(frozen=True)
class ModeTimes:
    """What one request sees in a serving mode, and the GPU seconds charged to output and input tokens."""

    ttft_s: np.ndarray
    tpot_s: np.ndarray
    tokens_per_second: np.ndarray  # per request, output tokens over its end-to-end time (1 / TPOT in steady state)
    total_tokens_per_second: np.ndarray  # output tokens per second of one (decode) instance
    output_gpu_s_per_token: np.ndarray  # instance-seconds charged to each output token (multiply by GPUs and price)
    input_gpu_s_per_token: np.ndarray  # instance-seconds charged to each input token
    spread: LatencySpread | None = None  # what the percentiles need (``latency.py``); None: no spread


# The waiting factor's share is clipped at MAX_QUEUE_SHARE (0.999, ``latency.py``), so a saturated queue
# still has a finite TTFT.


def _waiting_factor(rho):
    """1 + rho / (2 (1 - rho)): M/D/1 time in system over service time (Pollaczek-Khinchine)."""
    rho = np.clip(np.asarray(rho, dtype=float), 0.0, MAX_QUEUE_SHARE)
    return 1.0 + rho / (2.0 * (1.0 - rho))


def queue_share_at_most(waiting_factor) -> np.ndarray:
    """The largest share rho with ``_waiting_factor(rho) <= waiting_factor``: the factor's inverse.

    1 + rho / (2 (1 - rho)) = F gives rho = 2 (F - 1) / (2 F - 1). Returns 1 where even the clipped
    share qualifies (no limit at all) and -1 where F < 1 (no share does).
    """
    factor = np.asarray(waiting_factor, dtype=float)
    safe = np.maximum(factor, 1.0)
    share = 2.0 * (safe - 1.0) / (2.0 * safe - 1.0)
    unlimited = factor >= _waiting_factor(MAX_QUEUE_SHARE)
    return np.where(unlimited, 1.0, np.where(factor < 1.0, -1.0, share))


def mode_times(mode: str, requests: Requests, *, decode_s, prefill_batch_s, prefill_one_s, batch, pp,
               transfer_s=0.0, prefill_utilization=DEFAULT_PREFILL_UTILIZATION, request_s=0.0,
               carried_prefill_s=None, chunk_tokens: int | None = None,
               prefill_latency_factor=1.0) -> ModeTimes:
    """TTFT, TPOT, speeds and charged time of a serving mode from its pass times (module docstring).

    Args:
        decode_s: seconds per decode step at the micro-batch ``batch / pp``.
        prefill_batch_s: one prefill pass over the whole micro-batch (static batch).
        prefill_one_s: one prefill pass of a single isl-token sequence through the full model (P1).
        batch: requests in flight per (decode) instance; pp: pipeline stages.
        transfer_s: KV transfer per request (disaggregated); prefill_utilization: its prefill pool's.
        request_s: fixed latency per served request (API server, tokeniser), added to the TTFT of the
            served modes (closed loop, disaggregated); offline static-batch benchmarks have no server.
        carried_prefill_s: what one prefill adds to the decode steps that carry it in closed loop
            (default P1; with chunked prefill P1 without the pass's constant costs, which the decode
            step it rides in already pays).
        chunk_tokens: the prompt tokens a step takes with chunked prefill (None: a prompt is one pass), for the
            spread of TTFT and TPOT (``latency.closed_loop_spread``).
        prefill_latency_factor: how much of a prefill pass's time a prompt waits for it
            (``pipelined_prefill_factor``: < 1 where its chunks fill several pipeline stages at once);
            it shortens TTFT only, not the GPU time charged.
    """
    if mode not in SERVING_MODES:
        raise ValueError(f"mode must be one of {SERVING_MODES} (got {mode!r})")
    isl, osl = requests.input_tokens, requests.output_tokens
    batch = np.asarray(batch, dtype=float)
    micro_batch = batch / np.asarray(pp, dtype=float)
    decode_s, prefill_one_s = np.asarray(decode_s, dtype=float), np.asarray(prefill_one_s, dtype=float)
    per_input = (lambda seconds: seconds / isl) if isl > 0 else (lambda seconds: np.full(np.shape(seconds), np.nan))
    factor = np.asarray(prefill_latency_factor, dtype=float)
    if mode == "static_batch":
        ttft = factor * np.asarray(prefill_batch_s, dtype=float)
        tpot = decode_s
        speed = osl / (ttft + (osl - 1) * tpot)
        return ModeTimes(ttft, tpot, speed, batch * speed, (osl - 1) * tpot / (osl * batch), per_input(ttft / batch),
                         LatencySpread.none(np.shape(tpot)))
    prefill_gpu_s = prefill_one_s / np.asarray(pp, dtype=float)  # P1 occupies each of pp stages 1/pp of the time
    spread = None
    if mode == "closed_loop":
        carried = prefill_one_s if carried_prefill_s is None else np.asarray(carried_prefill_s, dtype=float)
        amortised = micro_batch / osl * carried
        tpot = decode_s + amortised
        share = amortised / tpot
        ttft = factor * prefill_one_s * _waiting_factor(share) + request_s
        spread = closed_loop_spread(decode_s=decode_s, carried_s=carried, share=share,
                                    prefill_one_s=factor * prefill_one_s, output_tokens=osl, request_s=request_s,
                                    input_tokens=isl, chunk_tokens=chunk_tokens)
    elif mode == "disaggregated":
        tpot = decode_s
        ttft = factor * prefill_one_s * _waiting_factor(prefill_utilization) + transfer_s + request_s
        prefill_gpu_s = prefill_gpu_s / prefill_utilization  # an idle share of the pool is paid for too
        spread = disaggregated_spread(prefill_one_s=factor * prefill_one_s, utilization=prefill_utilization,
                                      fixed_s=np.asarray(transfer_s, dtype=float) + request_s, shape=np.shape(tpot))
    else:  # decode_only: the paper's model; a lone request's prefill is reported but not charged to speed
        tpot = decode_s
        ttft = factor * prefill_one_s
    ttft = np.broadcast_to(ttft, np.shape(tpot))
    spread = LatencySpread.none(np.shape(tpot)) if spread is None else spread
    return ModeTimes(ttft, tpot, 1.0 / tpot, batch / tpot, decode_s / batch, per_input(prefill_gpu_s), spread)


@dataclass(frozen=True)
class ServingMetrics(ConfigMetrics):
    """``ConfigMetrics`` of a serving mode: speed, latency and cost are the mode's, plus TTFT and prices.

    ``latency_s`` is 1 / per-request speed (TPOT in steady state), ``usd_per_million_tokens`` the
    price per million output tokens.
    """

    ttft_s: np.ndarray = None
    tpot_s: np.ndarray = None
    usd_per_million_input_tokens: np.ndarray = None
    blended_usd_per_million_tokens: np.ndarray = None
    engine_overhead_s: np.ndarray = None  # per decode step: kernels, fixed and per-sequence costs
    prefill_s: np.ndarray = None  # one isl-token prefill pass (P1), or the batch's in static batch
    spread: LatencySpread = None  # what percentiles of TTFT and TPOT need (``latency.py``)
    output_tokens: int = 1  # osl: offered load (requests/s) = output tokens/s over osl

    def ttft_at(self, percentile: float | None, idx=None) -> np.ndarray:
        """TTFT of configurations ``idx`` (None: all) at a percentile of requests (0-100), or the mean for None."""
        mean, spread = self._at(self.ttft_s, idx)
        return mean if percentile is None else spread.ttft_s(mean, percentile)

    def tpot_at(self, percentile: float | None, idx=None) -> np.ndarray:
        """TPOT of configurations ``idx`` (None: all) at a percentile of requests (0-100), or the mean for None."""
        mean, spread = self._at(self.tpot_s, idx)
        return mean if percentile is None else spread.tpot_s(mean, percentile)

    def _at(self, values, idx) -> tuple[np.ndarray, LatencySpread]:
        if idx is None:
            return np.asarray(values, dtype=float), self.spread
        return np.asarray(values, dtype=float)[idx], self.spread.take(idx)

    def tpot_within(self, percentile: float | None, cap_s: float) -> np.ndarray:
        """``tpot_at(percentile) <= cap_s`` per configuration, the percentile evaluated only where its bounds
        (``LatencySpread.tpot_bounds_s``) leave the answer open: the same mask, cheaper."""
        if percentile is None:
            return np.asarray(self.tpot_s) <= cap_s
        if np.ndim(self.tpot_s) == 0:  # one configuration (``explain``): nothing to index
            return np.asarray(self.tpot_at(percentile) <= cap_s)
        low, high = self.spread.tpot_bounds_s(self.tpot_s)
        within = high <= cap_s
        open_ = np.flatnonzero((low <= cap_s) & ~within)
        within[open_] = self.tpot_at(percentile, open_) <= cap_s
        return within

    @property
    def requests_per_second(self) -> np.ndarray:
        """Offered load per instance: the requests a second that hold its batch in flight (Little's law)."""
        return self.total_tokens_per_second / self.output_tokens


@dataclass(frozen=True)
class ServingPasses:
    """The forward passes a deployment's serving mode needs, evaluated once (vectorised over configurations).

    For a non-paper engine they are at 100 % efficiency and without kernel term (``unit_hardware``),
    so ``serving_times`` can apply any engine's parameters without re-running the physics: this is
    what ``calibrate`` fits through.
    """

    model: ModelSpec
    hardware: HardwareSpec
    requests: Requests
    mode: str
    decode: StepTime
    prefill_one: StepTime
    prefill_batch: StepTime
    batch: np.ndarray
    pp: np.ndarray
    transfer_s: np.ndarray
    paper: bool
    layer_scale: np.ndarray = 1.0  # perf.pipeline_layer_scale per configuration (engine_pass)
    stage_slots: np.ndarray = 1.0  # perf.pipeline_stage_slots per configuration
    # A closed-loop benchmark (``closed_loop.py``): its waves (None: open-loop arrivals, the default), the prompts
    # a (prefill) instance receives per wave, the chunk budget and one prefill pass of a wave's full chunk.
    waves: float | None = None
    wave_requests: np.ndarray | None = None
    wave_budget_tokens: int = 0
    prefill_chunk: StepTime | None = None


def serving_passes(model: ModelSpec, hw: HardwareSpec, workload: Workload, requests: Requests, mode: str,
                   *, tp_rows, tp_cols, pp, ep, batch, paper: bool = False, attention_dp=False,
                   kernels: str | None = None, waves: float | None = None, wave_requests=None,
                   wave_budget_tokens: int = 0) -> ServingPasses:
    """Decode at the micro-batch, prefill of one isl-token sequence (P1) and of the micro-batch (static batch).

    ``attention_dp``: the engine runs attention data-parallel over the TP group (``attention_sharding``;
    one flag or one per configuration). ``kernels``: the engine family whose measured GEMM curves apply
    (``unit_hardware``); the passes then fit any profile of that family (``calibrate``). ``waves``: the
    requests of a closed-loop benchmark over its concurrency (``closed_loop.py``; None: open loop), with
    ``wave_requests`` prompts per (prefill) instance a wave (default the batch) and the prompt tokens a pass takes,
    ``wave_budget_tokens`` (``closed_loop.chunk_budget_tokens``).
    """
    pp = np.asarray(pp, dtype=np.int64)
    batch = np.asarray(batch, dtype=float)
    micro_batch = batch / pp
    layout = dict(tp_rows=tp_rows, tp_cols=tp_cols, pp=pp, ep=ep, attention=attention_sharding(paper, attention_dp))
    physics_hw = hw if paper else unit_hardware(hw, kernels)
    prefill = dataclasses.replace(workload, context_tokens=prefill_context_tokens(requests))
    isl = max(requests.input_tokens, 1)
    decode = decode_step(model, physics_hw, workload, **layout, micro_batch=micro_batch)
    prefill_one = decode_step(model, physics_hw, prefill, **layout, micro_batch=np.ones(np.shape(micro_batch)),
                              tokens_per_sequence=isl, prefill=True)
    prefill_batch = prefill_one
    if mode == "static_batch":
        prefill_batch = decode_step(model, physics_hw, prefill, **layout, micro_batch=micro_batch,
                                    tokens_per_sequence=isl, prefill=True)
    transfer = kv_transfer_s(model, hw, workload, requests, np.asarray(tp_rows) * np.asarray(tp_cols))
    closed = {}
    if waves is not None and mode in ("closed_loop", "disaggregated") and not paper:
        n = np.broadcast_to(np.asarray(batch if wave_requests is None else wave_requests, dtype=float), np.shape(batch))
        chunk = wave_chunk_tokens(n, isl, wave_budget_tokens)
        closed = dict(waves=float(waves), wave_requests=n, wave_budget_tokens=int(wave_budget_tokens),
                      prefill_chunk=decode_step(model, physics_hw, prefill, **layout, micro_batch=chunk / isl,
                                                tokens_per_sequence=isl, prefill=True))
    return ServingPasses(model, hw, requests, mode, decode, prefill_one, prefill_batch, batch, pp, transfer, paper,
                         pipeline_layer_scale(model, pp, layout["attention"]),
                         pipeline_stage_slots(pp, layout["attention"]), **closed)


def _pass_time(step: StepTime, passes: ServingPasses, engine: EngineProfile, micro_batch) -> PassTime:
    if passes.paper:
        zero = np.zeros(np.shape(step.total_s))
        return PassTime(step, zero, zero, np.broadcast_to(np.asarray(micro_batch, dtype=float), zero.shape))
    return engine_pass(step, passes.model, passes.hardware, engine, micro_batch, passes.layer_scale,
                       passes.stage_slots)


def prefill_one_seconds(one: PassTime, requests: Requests, *, chunked: bool):
    """(P1, what P1 adds to the decode steps that carry it in closed loop) from one isl-token prefill pass.

    With chunked prefill the chunks ride in decode steps, so they carry no kernels or step cost of their
    own. Both are 0 without a prompt.
    """
    prefill_one = one.total_s
    carried = prefill_one
    if chunked:
        carried = prefill_one - one.physics.kernel_latency_s - one.constant_s
    if requests.input_tokens == 0:
        zero = np.zeros(np.shape(prefill_one))
        return zero, zero
    return prefill_one, carried


def pipelined_prefill_factor(requests: Requests, engine: EngineProfile | None, pp) -> np.ndarray:
    """The share of a prompt's prefill pass its first token waits for when its chunks pipeline over ``pp`` stages.

    An engine with chunked prefill splits a prompt of isl tokens into n = ceil(isl / chunk) chunks
    (``EngineProfile.prefill_chunk``); through pp stages they flow like micro-batches, each stage working on one
    chunk while the next works on the one before (SGLang's chunked pipeline parallelism; vLLM and
    TensorRT-LLM schedule chunks the same way), so the last chunk leaves the last stage after n + pp - 1
    stage slots of 1 / (n pp) of the pass each: (n + pp - 1) / (n pp). It is 1 at PP 1 and for a prompt of
    one chunk. Chunks are taken as equal (attention grows along the prompt, which this ignores). The paper's
    model, and an engine without chunked prefill: 1.
    """
    pp = np.asarray(pp, dtype=float)
    chunk = None if engine is None else engine.prefill_chunk()
    if chunk is None:
        return np.ones(np.shape(pp))
    chunks = float(max(1, -(-requests.input_tokens // chunk)))
    return (chunks + pp - 1.0) / (chunks * pp)


def serving_times(passes: ServingPasses, engine: EngineProfile, *, decode_s=None,
                  prefill_utilization: float = DEFAULT_PREFILL_UTILIZATION) -> tuple[ModeTimes, PassTime, np.ndarray]:
    """The mode's times with ``engine`` applied to the passes: (times, decode pass, prefill seconds shown).

    ``decode_s`` replaces the decode pass's time (a speculative iteration's latency per token).
    """
    micro_batch = passes.batch / passes.pp
    decode = _pass_time(passes.decode, passes, engine, micro_batch)
    prefill_one, carried = prefill_one_seconds(_pass_time(passes.prefill_one, passes, engine, 1.0), passes.requests,
                                               chunked=engine.chunked_prefill and not passes.paper)
    prefill_batch = _pass_time(passes.prefill_batch, passes, engine, micro_batch).total_s
    if passes.requests.input_tokens == 0:
        prefill_one = prefill_batch = carried = np.zeros(np.shape(decode.total_s))
    times = mode_times(passes.mode, passes.requests, decode_s=decode.total_s if decode_s is None else decode_s,
                       prefill_batch_s=prefill_batch, prefill_one_s=prefill_one, batch=passes.batch, pp=passes.pp,
                       transfer_s=passes.transfer_s, prefill_utilization=prefill_utilization,
                       request_s=0.0 if passes.paper else engine.request_s, carried_prefill_s=carried,
                       chunk_tokens=None if passes.paper else engine.prefill_chunk(),
                       prefill_latency_factor=pipelined_prefill_factor(passes.requests, None if passes.paper
                                                                       else engine, passes.pp))
    if passes.waves is not None and passes.requests.input_tokens > 0:
        times = dataclasses.replace(times, ttft_s=closed_loop_ttft(passes, engine, decode))
    return times, decode, prefill_batch if passes.mode == "static_batch" else prefill_one


def closed_loop_ttft(passes: ServingPasses, engine: EngineProfile, decode: PassTime) -> np.ndarray:
    """Mean TTFT of a closed-loop benchmark (``closed_loop.closed_loop_ttft_s``) with ``engine`` on ``passes``.

    Aggregated, the decoding requests ride in the wave's prefill passes where the engine mixes them; a
    disaggregated prefill instance decodes nothing, and the prompt's KV cache then crosses to a decode instance.
    """
    isl = passes.requests.input_tokens
    chunk = wave_chunk_tokens(passes.wave_requests, isl, passes.wave_budget_tokens)
    tau = _pass_time(passes.prefill_chunk, passes, engine, chunk / isl).total_s
    aggregated = passes.mode == "closed_loop"
    ttft = closed_loop_ttft_s(n_requests=passes.wave_requests, input_tokens=isl, chunk_tokens=passes.wave_budget_tokens,
                              chunk_pass_s=tau, decode_sequence_s=decode.per_sequence_s, pp=passes.pp,
                              waves=passes.waves, request_s=engine.request_s,
                              decode_rides=aggregated and mixes_decode(engine),
                              staggered=mixes_decode(engine) or not aggregated)
    return np.broadcast_to(ttft if aggregated else ttft + passes.transfer_s, np.shape(decode.total_s))


@dataclass(frozen=True)
class ServingStructure:
    """A serving mode's times per layout, as pieces linear in the micro-batch ``m``: what ``relaxation.py`` bounds.

    With ``D(m) = decode.at(m).total_s`` (an iteration of ``tokens`` expected output tokens: 1 without
    speculation), for ``decode_only``, ``closed_loop`` and ``disaggregated`` (``mode_times``):

    * latency per output token (1 / per-request speed, = TPOT) is ``D(m) / tokens + prefill_s_per_sequence * m``,
      where ``prefill_s_per_sequence`` is the closed loop's carried prefill over osl (0 otherwise);
    * the instance-seconds charged to each output token are ``D(m) / (tokens * pp * m)``;
    * TTFT is ``fixed_ttft_s`` (decode only, disaggregated), or in closed loop
      ``prefill_one_s * waiting(rho) + request_s`` with ``rho = prefill_s_per_sequence * m / latency``:
      ``ttft_limits`` turns a TTFT cap into a largest ``rho``, which is linear in ``D`` and ``m``.

    A static batch's TTFT is a prefill pass over the micro-batch (``prefill_batch``, the same kind of
    structure as ``decode``, 0 without a prompt) and TPOT is ``D(m) / tokens``; its latency per output
    token is ``decode_weight D(m) / tokens + prefill_batch_weight prefill_batch(m)`` and the seconds
    charged per output token ``decode_weight D(m) / (tokens pp m)``.
    """

    mode: str
    decode: PassStructure
    prefill_batch: PassStructure | None  # static batch with a prompt only
    prefill_one_s: np.ndarray  # P1 as a prompt waits for it (x prefill_latency_factor), per layout
    prefill_s_per_sequence: np.ndarray  # closed loop: the prefill one micro-batch sequence adds to each step
    request_s: float
    fixed_ttft_s: np.ndarray  # decode only, disaggregated; a static batch's least (micro-batch 1); NaN without a prompt
    output_tokens: int
    fixed_spread: LatencySpread | None = None  # the fixed TTFT's queue (disaggregated), for its percentiles
    # Per layout, the share of a prefill pass a prompt waits for (``pipelined_prefill_factor``): ``prefill_one_s``
    # is P1 times it (TTFT), and a static batch's TTFT is it times ``prefill_batch``.
    prefill_latency_factor: np.ndarray = 1.0

    @property
    def decode_weight(self) -> float:
        """The decode steps' share of a request's time per output token: (osl - 1) / osl in a static batch, else 1."""
        return (self.output_tokens - 1) / self.output_tokens if self.mode == "static_batch" else 1.0

    @property
    def prefill_batch_weight(self) -> float:
        """The batch prefill's weight in a static batch's time per output token, 1 / osl (0 in other modes)."""
        return 1.0 / self.output_tokens if self.mode == "static_batch" else 0.0

    def ttft_limits(self, ttft_max_s: float, percentile: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(reachable, largest prefill share of a step) per layout under ``TTFT <= ttft_max_s``.

        Closed loop: TTFT <= T  <=>  waiting(rho) <= (T - request_s) / P1  <=>  rho <= queue_share_at_most(...);
        at a percentile the wait's percentile w_q(rho) takes the mean wait's place: 1 + w_q(rho) <= (T -
        request_s) / P1 <=> rho <= ``latency.waiting_share_at_most`` (w_q is nondecreasing in rho).
        Other modes: reachable where the fixed TTFT meets the cap, with no limit on the share (1); a static
        batch's TTFT, the prefill over its micro-batch, is at least its value at micro-batch 1.
        """
        if self.mode != "closed_loop":
            fixed = self.fixed_ttft_s
            if percentile is not None and self.fixed_spread is not None:
                fixed = self.fixed_spread.ttft_s(fixed, percentile)
            reachable = np.asarray(fixed <= ttft_max_s)
            return reachable, np.ones(np.shape(reachable))
        with np.errstate(divide="ignore", invalid="ignore"):
            limit = (ttft_max_s - self.request_s) / self.prefill_one_s
            share = queue_share_at_most(limit) if percentile is None else waiting_share_at_most(percentile, limit - 1.0)
        reachable = (share >= 0) & (self.prefill_one_s > 0)  # no prompt: no TTFT, no cap is met
        return reachable, np.where(reachable, share, 0.0)


def serving_structure(model: ModelSpec, hw: HardwareSpec, workload: Workload, requests: Requests | None,
                      engine: EngineProfile | None, mode: str, *, tp_rows, tp_cols, pp, ep, tokens_per_sequence=1,
                      prefill_utilization: float = DEFAULT_PREFILL_UTILIZATION,
                      attention_dp=False) -> ServingStructure:
    """The ``ServingStructure`` of these layouts: the same passes and prefill costs ``serving_metrics`` evaluates.

    ``engine`` None and ``requests`` None is the paper's decode-only model (``perf.evaluate``).
    ``attention_dp``: per layout, whether the engine runs attention data-parallel (``attention_sharding``).
    """
    layout = dict(tp_rows=tp_rows, tp_cols=tp_cols, pp=pp, ep=ep, attention_dp=attention_dp)
    decode = pass_structure(model, hw, workload, engine, **layout, tokens_per_sequence=tokens_per_sequence)
    shape = np.shape(decode.structure.compute_s_per_token)
    zero = np.zeros(shape)
    if requests is None:
        return ServingStructure(mode, decode, None, zero, zero, 0.0, np.full(shape, np.nan), 1)
    paper = engine is None or engine.paper
    prefill = dataclasses.replace(workload, context_tokens=prefill_context_tokens(requests))
    isl = max(requests.input_tokens, 1)
    one = pass_structure(model, hw, prefill, engine, **layout, tokens_per_sequence=isl, prefill=True).at(1.0)
    chunked = engine is not None and engine.chunked_prefill and not paper
    prefill_one, carried = prefill_one_seconds(one, requests, chunked=chunked)
    request_s = 0.0 if paper else engine.request_s
    prefill_batch = None
    if mode == "static_batch" and requests.input_tokens > 0:
        prefill_batch = pass_structure(model, hw, prefill, engine, **layout, tokens_per_sequence=isl, prefill=True)
    per_sequence = carried / requests.output_tokens if mode == "closed_loop" else zero
    factor = np.broadcast_to(pipelined_prefill_factor(requests, engine, pp), shape)
    fixed_times = mode_times(mode, requests, decode_s=np.ones(shape), prefill_batch_s=prefill_one,
                             prefill_one_s=prefill_one, batch=pp, pp=pp,
                             transfer_s=kv_transfer_s(model, hw, workload, requests,
                                                      np.asarray(tp_rows) * np.asarray(tp_cols)),
                             prefill_utilization=prefill_utilization, request_s=request_s, carried_prefill_s=carried,
                             prefill_latency_factor=factor)
    fixed = fixed_times.ttft_s
    if requests.input_tokens == 0:
        fixed = np.full(shape, np.nan)
    return ServingStructure(mode, decode, prefill_batch, np.broadcast_to(factor * prefill_one, shape),
                            np.broadcast_to(per_sequence, shape), request_s, np.broadcast_to(fixed, shape),
                            requests.output_tokens, fixed_times.spread if mode == "disaggregated" else None,
                            factor)


def per_user_speed(metric: str, times: ModeTimes, requests: Requests) -> np.ndarray:
    """Per-request speed as a measurement defines it: ``inverse_tpot`` or ``osl_over_e2e_latency``."""
    if metric == "inverse_tpot":
        return 1.0 / times.tpot_s
    if metric == "osl_over_e2e_latency":
        osl = requests.output_tokens
        return osl / (times.ttft_s + (osl - 1) * times.tpot_s)
    raise ValueError(f"per-user metric must be inverse_tpot or osl_over_e2e_latency (got {metric!r})")


def _speculative_latency_s(model: ModelSpec, hw: HardwareSpec, workload: Workload, engine: EngineProfile,
                           speculative: SpeculativeDecoding, base: ConfigMetrics, layout: dict, batch,
                           attention_dp=False) -> np.ndarray:
    """Seconds per output token of a speculative iteration under ``engine``: eq. 46 with the engine's passes.

    One target pass over gamma + 1 positions (attention split as ``attention_dp`` says) plus gamma
    drafter passes in the drafter's own layout, over the expected tokens an iteration yields; at gamma 0
    this is one plain decode pass.
    """
    gamma = np.asarray(base.draft_tokens, dtype=float)
    target = forward_pass(model, hw, workload, engine, **layout, micro_batch=batch / layout["pp"],
                          tokens_per_sequence=gamma + 1, attention_dp=attention_dp)
    drafting = base.drafter_pp > 0  # the drafter's own layout (perf.fastest_drafter_layout); none at gamma 0
    drafter_pp = np.where(drafting, base.drafter_pp, 1)
    drafter = forward_pass(speculative.drafter, hw, workload, engine, ep=1, micro_batch=batch / drafter_pp,
                           tp_rows=np.where(drafting, base.drafter_tp_rows, 1),
                           tp_cols=np.where(drafting, base.drafter_tp_cols, 1), pp=drafter_pp)
    return (target.total_s + gamma * drafter.total_s) / expected_tokens_per_iteration(speculative.acceptance, gamma)


def serving_metrics(model: ModelSpec, hw: HardwareSpec, workload: Workload, requests: Requests,
                    engine: EngineProfile, mode: str, *, tp_rows, tp_cols, pp, ep, batch,
                    speculative: SpeculativeDecoding | None = None, draft_tokens=None,
                    drafter_layouts: Callable[[int], np.ndarray] | None = None,
                    prefill_utilization: float = DEFAULT_PREFILL_UTILIZATION,
                    attention_dp=False) -> ServingMetrics:
    """TTFT, TPOT, per-request and per-instance speed, and input/output/blended prices of deployments.

    Vectorised like ``perf.evaluate`` over layouts and batches (``batch`` is per instance); the
    decode context is ``workload.context_tokens`` (isl + osl/2 unless the caller overrides it).
    With ``engine.paper`` and ``mode == "decode_only"`` every ``ConfigMetrics`` field equals
    ``perf.evaluate``'s. With a drafter, the engine's per-pass overhead is added to each target
    and drafter pass of an iteration (the draft length is chosen without it). A non-paper engine
    splits attention as engines do (``attention_sharding``: by heads, or by sequence with
    ``attention_dp``, one flag or one per configuration), in the step times and in the HBM each GPU needs.
    """
    tp_rows, tp_cols, pp, ep = (np.asarray(x, dtype=np.int64) for x in (tp_rows, tp_cols, pp, ep))
    batch = np.asarray(batch, dtype=np.int64)
    micro_batch = batch / pp
    layout = dict(tp_rows=tp_rows, tp_cols=tp_cols, pp=pp, ep=ep)
    physics_hw = hw if engine.paper else dataclasses.replace(
        hw, flop_efficiency=engine.flop_efficiency, bandwidth_efficiency=engine.bandwidth_efficiency,
        kernel_launch_latency_s=0.0, gemm_half_tokens=unit_hardware(hw, engine).gemm_half_tokens,
        kernels_in_force=unit_hardware(hw, engine).kernels_in_force)
    base = evaluate(model, physics_hw, workload, **layout, batch=batch, draft_tokens=draft_tokens,
                    speculative=speculative, drafter_layouts=drafter_layouts)
    passes = serving_passes(model, hw, workload, requests, mode, **layout, batch=batch, paper=engine.paper,
                            kernels=engine.name, attention_dp=attention_dp)
    decode_s = base.latency_s if speculative is not None else None  # the paper's eq. 46 as perf.evaluate has it
    if speculative is not None and not engine.paper:
        # The paper's eq. 46 latency is already ``base.latency_s``; an engine's iteration is its own passes
        # (per-hardware efficiencies, kernels, overheads), so gamma 0 is exactly plain decoding. The draft
        # length is chosen on the paper's physics; where that choice is slower than plain decoding under
        # the engine, plain decoding (gamma 0, drafter not loaded) is taken, so a drafter never hurts; but a
        # draft length the caller fixed (``--draft-tokens``) is kept: it is the question asked.
        plain_s = _pass_time(passes.decode, passes, engine, micro_batch).total_s
        decode_s = _speculative_latency_s(model, hw, workload, engine, speculative, base, layout, batch,
                                          attention_dp)
        slower = (decode_s > plain_s) & (draft_tokens is None)
        if slower.any():
            base = evaluate(model, physics_hw, workload, **layout, batch=batch,
                            draft_tokens=np.where(slower, 0, base.draft_tokens), speculative=speculative,
                            drafter_layouts=drafter_layouts)
            decode_s = _speculative_latency_s(model, hw, workload, engine, speculative, base, layout, batch,
                                          attention_dp)
    times, decode, prefill_s = serving_times(passes, engine, decode_s=decode_s,
                                             prefill_utilization=prefill_utilization)
    usd_per_instance_s = base.gpus * hw.price_usd_per_hour / 3600.0
    out_price = usd_per_instance_s * times.output_gpu_s_per_token * 1e6
    in_price = usd_per_instance_s * times.input_gpu_s_per_token * 1e6
    isl, osl = requests.input_tokens, requests.output_tokens
    blended = out_price if isl == 0 else (isl * in_price + osl * out_price) / (isl + osl)
    common = {f.name: getattr(base, f.name) for f in fields(ConfigMetrics)}
    if not engine.paper:
        attention = attention_sharding(engine.paper, attention_dp)
        gamma = np.asarray(base.draft_tokens)
        tp = tp_rows * tp_cols
        hbm = hbm_used_bytes_per_gpu(model, workload, tp=tp, pp=pp, batch=batch, tokens_per_sequence=gamma + 1,
                                     attention=attention)
        if speculative is not None:
            hbm = np.where(gamma > 0, hbm_used_bytes_per_gpu(model, workload, tp=tp, pp=pp, batch=batch,
                                                             drafter=speculative.drafter, attention=attention,
                                                             tokens_per_sequence=gamma + 1), hbm)
        common["hbm_used_bytes_per_gpu"] = hbm
    if not (engine.paper and mode == "decode_only"):
        # 0 where the paper's physics serves nothing (a fixed draft length with no drafter layout: total 0).
        scale = np.divide(times.total_tokens_per_second, base.total_tokens_per_second,
                          out=np.zeros(np.shape(base.total_tokens_per_second)), where=base.total_tokens_per_second > 0)
        common.update(target=decode.physics if speculative is None else base.target,
                      latency_s=1.0 / times.tokens_per_second, tokens_per_second=times.tokens_per_second,
                      total_tokens_per_second=times.total_tokens_per_second, usd_per_million_tokens=out_price,
                      utilization=base.utilization * scale)
    ttft = times.ttft_s if isl > 0 else np.full(np.shape(times.ttft_s), np.nan)
    return ServingMetrics(**common, ttft_s=ttft, tpot_s=times.tpot_s, usd_per_million_input_tokens=in_price,
                          blended_usd_per_million_tokens=blended, engine_overhead_s=decode.overhead_s,
                          prefill_s=prefill_s, spread=times.spread, output_tokens=osl)
