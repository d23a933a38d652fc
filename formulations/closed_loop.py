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
  An engine that mixes decodes into its prefill passes (``mixes_decode``: vLLM and TensorRT-LLM's in-flight
  batching; SGLang runs prefill batches first) also decodes the requests already prefilled: at pass j of the
  n = N isl / c passes about N j / n of them, each adding its per-sequence cost ``decode_sequence_s``. A prompt
  done at pass x n (x uniform in (0, 1]) has waited for N n x^2 / 2 of these costs; the mean over x is
  N n / 6 of them.
* Later waves. Each arrives in a group of at most c / isl prompts, at a point of a step independent of the
  engine's steps (the client's round trip), so it waits half a step on average and then its own
  max(1, isl / c) passes (never more than the first wave's mean): passes that also decode the other N
  requests where the engine mixes them.
* A run of ``waves`` waves (requests issued / N) averages the two: (first + (waves - 1) later) / waves.

Disaggregated runs use it for their prefill pool: N is the requests in flight per prefill instance and no
decode rides in a prefill worker's passes. Everything is vectorised over configurations; ``waves`` None keeps
the open-loop model (real traffic, the frontier's default).
"""

from __future__ import annotations

import numpy as np

from infecon.formulations.specs import EngineProfile


def chunk_budget_tokens(engine: EngineProfile) -> int:
    """The prompt tokens one engine pass takes (its chunked-prefill token budget): one place to read the key."""
    return int(engine.chunk_tokens)


def mixes_decode(engine: EngineProfile) -> bool:
    """Whether the engine decodes running requests in the same pass as a prompt's chunk (module docstring).

    SGLang schedules a waiting prefill batch before decoding (its mixed chunk is off by default); vLLM V1 and
    TensorRT-LLM's in-flight batching put decodes and prompt chunks in one pass.
    """
    return engine.name != "sglang"


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
                       pp, waves: float, request_s: float = 0.0, mixes: bool = True) -> np.ndarray:
    """Mean TTFT of a closed-loop run of ``waves`` waves of ``n_requests`` prompts (module docstring).

    Args:
        chunk_pass_s: one prefill pass of a wave's full chunk (``wave_chunk_tokens`` tokens), through every stage.
        decode_sequence_s: what one decoding request adds to a pass it rides in (per-sequence engine cost).
        pp: pipeline stages; waves: requests issued over ``n_requests`` (>= 1); mixes: ``mixes_decode``.
    """
    if waves < 1:
        raise ValueError(f"a closed-loop run has at least one wave (got waves={waves})")
    n = np.maximum(np.asarray(n_requests, dtype=float), 1.0)
    pp = np.asarray(pp, dtype=float)
    tau = np.asarray(chunk_pass_s, dtype=float)
    c = wave_chunk_tokens(n, input_tokens, chunk_tokens)
    passes = wave_mean_passes(n, input_tokens, chunk_tokens)
    work_passes = n * input_tokens / c
    riding = np.asarray(decode_sequence_s, dtype=float) * (1.0 if mixes else 0.0)
    first = (passes + pp - 1.0) / pp * tau + work_passes * n * riding / 6.0
    own = np.minimum(0.5 + np.maximum(1.0, input_tokens / c), passes)
    later = (own + pp - 1.0) / pp * (tau + n * riding)
    return (first + (waves - 1.0) * later) / waves + request_s
