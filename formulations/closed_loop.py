"""TTFT of a closed-loop benchmark: a fixed number of clients, each sending its next request when the last ends.

Why: published serving benchmarks (aiconfigurator's silicon sample, most ``--max-concurrency`` sweeps) hold N
requests in flight with fixed isl and osl, so requests arrive in waves, not as the Poisson stream the frontier's
closed-loop mode assumes (``serving.mode_times``, an M/D/1 queue). The first wave's N prompts arrive together
and queue behind each other; with equal lengths the requests finish together too, so each later wave arrives in
the groups the first one was served in. Derivation (chunk budget ``c`` prompt tokens a pass, ``chunk_budget_tokens``):

* First wave. The N prompts hold N isl tokens, served in order, c a pass (``c = min(chunk, N isl)``): prompt k
  is done after ceil(k isl / c) passes. The mean over k of ceil(k isl / c) is (N + 1) isl / (2 c) plus the
  mean of ceil(x) - x over the residues k isl mod c, which are multiples of g = gcd(isl, c) equally often over
  a period: (1 - g / c) / 2 (``wave_mean_passes``; exact when N is a whole number of periods, e.g. isl a
  multiple of c, or c a multiple of isl and N of c / isl: then (N isl / c + 1) / 2). Over pp pipeline
  stages a pass takes pp stage slots and passes follow each other one slot apart, so prompt k is done after
  ceil(k isl / c) + pp - 1 slots of tau / pp (as ``serving.pipelined_prefill_factor``).
  An engine that mixes decodes into its prefill passes (``mixes_decode``: vLLM's and TensorRT-LLM's in-flight
  batching; see there for SGLang) also decodes the requests already prefilled: at pass j of the
  n = N isl / c passes about N j / n of them, each adding its per-sequence cost ``decode_sequence_s``. A prompt
  done at pass x n (x uniform in (0, 1]) has waited for N n x^2 / 2 of these costs; the mean over x is
  N n / 6 of them.
* Later waves. Where the engine mixes decodes in, the first wave's requests start decoding one group of
  c / isl prompts a pass apart and, with equal osl, finish so: each later wave arrives in such groups. A group
  that arrives as a pass ends waits exactly its own max(1, isl / c) passes (passes that also decode the other
  N requests); with the client's round trip its arrival falls inside a pass, and the re-arrivals load the
  prefill budget at about 100 %, so queues form: the discrete-event check
  (``tests/formulations/chunked_prefill_sim.py``, N 16-128) gives no wait beyond its own at a round trip of 0,
  0.7 to 1.1 passes at round trips up to 0.3 pass, 0.8 to 1.7 up to a full pass. ``LATER_WAVE_WAIT_PASSES`` =
  0.5 is taken (never more than the first wave's mean in all). An engine that does not mix serves a wave's
  prompts before decoding any: its requests finish together and every wave queues like the first.
* A run of ``waves`` waves (requests issued / N) averages the two: (first + (waves - 1) later) / waves.

Disaggregated runs use it for their prefill pool: N is the requests in flight per prefill instance, no decode
rides in a prefill worker's passes, and the decode workers stagger the later waves. Everything is vectorised
over configurations; ``waves`` None keeps the open-loop model (real traffic, the frontier's default).
"""

from __future__ import annotations

import numpy as np

from infecon.formulations.specs import EngineProfile

# Passes a later wave's prompt waits beyond its own (module docstring: 0 where clients re-send as a pass ends,
# more with round-trip jitter); an assumption the sample's runs do not let us measure apart from request_s.
LATER_WAVE_WAIT_PASSES = 0.5


def chunk_budget_tokens(engine: EngineProfile, input_tokens: int) -> int:
    """The prompt tokens one engine pass takes: its chunk (``EngineProfile.prefill_chunk``), or one whole prompt of
    ``input_tokens`` where the engine does not chunk (a prompt is then one pass)."""
    return int(engine.prefill_chunk() or max(int(input_tokens), 1))


def mixes_decode(engine: EngineProfile) -> bool:
    """Whether the engine decodes running requests in the same pass as a prompt's chunk (module docstring).

    vLLM V1 and TensorRT-LLM's in-flight batching put decodes and prompt chunks in one pass. SGLang by default
    runs a waiting prefill batch before decoding; then a wave's requests would all start decoding together,
    finish together and every wave would queue like the first. The silicon sample's SGLang runs do not: their
    TTFT grows with the first wave's position as vLLM's and TensorRT-LLM's do (0.27 against 0.34 and 0.34 pass
    per pass), so every engine with chunked prefill is taken to mix.
    """
    return bool(engine.chunked_prefill)


def wave_chunk_tokens(n_requests, input_tokens: int, chunk_tokens: int) -> np.ndarray:
    """Prompt tokens in a full pass of the first wave: the budget, or the whole wave where it is smaller."""
    return np.minimum(float(chunk_tokens), np.asarray(n_requests, dtype=float) * input_tokens)


def wave_mean_passes(n_requests, input_tokens: int, chunk_tokens: int) -> np.ndarray:
    """Mean over a wave's N prompts of the passes until each is done: mean_k ceil(k isl / c) (module docstring)."""
    n = np.maximum(np.asarray(n_requests, dtype=float), 1.0)
    c = wave_chunk_tokens(n, input_tokens, chunk_tokens)
    whole = np.maximum(np.rint(c), 1).astype(np.int64)
    g = np.gcd(whole, int(input_tokens))
    return np.maximum((n + 1.0) * input_tokens / (2.0 * c) + (1.0 - g / whole) / 2.0, 1.0)


def closed_loop_ttft_s(*, n_requests, input_tokens: int, chunk_tokens: int, chunk_pass_s, decode_sequence_s,
                       pp, waves: float, request_s: float = 0.0, decode_rides: bool = True,
                       staggered: bool = True) -> np.ndarray:
    """Mean TTFT of a closed-loop run of ``waves`` waves of ``n_requests`` prompts (module docstring).

    Args:
        chunk_pass_s: one prefill pass of a wave's full chunk (``wave_chunk_tokens`` tokens), through every stage.
        decode_sequence_s: what one decoding request adds to a pass it rides in (per-sequence engine cost).
        pp: pipeline stages; waves: requests issued over ``n_requests`` (>= 1).
        decode_rides: decoding requests ride in the prefill passes (aggregated, ``mixes_decode``); staggered:
            later waves arrive in the groups the first was served in (else every wave queues like the first).
    """
    if waves < 1:
        raise ValueError(f"a closed-loop run has at least one wave (got waves={waves})")
    n = np.maximum(np.asarray(n_requests, dtype=float), 1.0)
    pp = np.asarray(pp, dtype=float)
    tau = np.asarray(chunk_pass_s, dtype=float)
    c = wave_chunk_tokens(n, input_tokens, chunk_tokens)
    passes = wave_mean_passes(n, input_tokens, chunk_tokens)
    work_passes = n * input_tokens / c
    riding = np.asarray(decode_sequence_s, dtype=float) * (1.0 if decode_rides else 0.0)
    first = (passes + pp - 1.0) / pp * tau + work_passes * n * riding / 6.0
    later = first
    if staggered:
        own = np.minimum(LATER_WAVE_WAIT_PASSES + np.maximum(1.0, input_tokens / c), passes)
        later = (own + pp - 1.0) / pp * (tau + n * riding)
    return (first + (waves - 1.0) * later) / waves + request_s
