"""A small discrete-event simulation of a chunked-prefill engine under Poisson arrivals (tests only).

Why: ``formulations/latency.py`` models a request's TPOT as a mix of decode steps with and without a
prefill chunk; this simulates the scheduler itself, step by step, to check that model. Each engine step
decodes one token for every running request and takes up to ``chunk_tokens`` prompt tokens from the
waiting prompts in arrival order (as vLLM's and SGLang's chunked prefill do with their token budget); it
lasts ``step_s`` plus ``prefill_token_s`` per prompt token it carries. A request's first token comes at
the end of the step that finishes its prompt; TPOT is (last token - first token) / (osl - 1).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SimulatedRequests:
    ttft_s: np.ndarray
    tpot_s: np.ndarray
    mean_running: float  # time-average number of requests decoding


def take_chunk(waiting: deque[list], chunk_tokens: int) -> tuple[int, list[list]]:
    """One step's prefill: up to ``chunk_tokens`` prompt tokens from the waiting prompts in arrival order (each
    ``[..., tokens left, ...]`` at index 1, decremented in place); the tokens carried and the prompts finished."""
    budget, carried, finished = chunk_tokens, 0, []
    while waiting and budget > 0:
        head = waiting[0]
        take = min(budget, head[1])
        head[1] -= take
        budget -= take
        carried += take
        if head[1] == 0:
            finished.append(waiting.popleft())
    return carried, finished


def simulate(*, arrivals_per_s: float, input_tokens: int, output_tokens: int, chunk_tokens: int, step_s: float,
             prefill_token_s: float, requests: int, seed: int = 0, warmup: int = 500) -> SimulatedRequests:
    """Serve ``requests`` Poisson arrivals; return the TTFT and TPOT of all but the first ``warmup``."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / arrivals_per_s, requests))
    first = np.full(requests, np.nan)
    last = np.full(requests, np.nan)
    waiting: deque[list[int]] = deque()  # [request, prompt tokens left]
    running: dict[int, int] = {}  # request -> output tokens still to emit
    now, nxt = 0.0, 0
    busy_integral = 0.0
    while nxt < requests or waiting or running:
        while nxt < requests and arrivals[nxt] <= now:
            waiting.append([nxt, input_tokens])
            nxt += 1
        if not waiting and not running:
            now = arrivals[nxt]
            continue
        carried, done_prompts = take_chunk(waiting, chunk_tokens)
        finished_prompts = [prompt[0] for prompt in done_prompts]
        duration = step_s + prefill_token_s * carried
        busy_integral += len(running) * duration
        now += duration
        for request in list(running):
            running[request] -= 1
            if running[request] == 0:
                last[request] = now
                del running[request]
        for request in finished_prompts:
            first[request] = now
            if output_tokens > 1:
                running[request] = output_tokens - 1
            else:
                last[request] = now
    keep = slice(warmup, requests)
    ttft = first[keep] - arrivals[keep]
    tpot = (last[keep] - first[keep]) / max(output_tokens - 1, 1)
    return SimulatedRequests(ttft, tpot, busy_integral / now)


def simulate_closed(*, concurrency: int, waves: int, input_tokens: int, output_tokens: int, chunk_tokens: int,
                    step_s: float, prefill_token_s: float, sequence_s: float = 0.0, round_trip_s: float = 0.0,
                    mixes: bool = True, seed: int = 0) -> np.ndarray:
    """TTFT of every request of a closed-loop run: ``concurrency`` clients, ``waves`` requests each.

    All clients send at time 0; a client sends its next request ``U(0, round_trip_s)`` after its last one ends.
    A step takes up to ``chunk_tokens`` prompt tokens in arrival order and decodes every running request
    (``mixes``; otherwise a step with prompt tokens decodes nothing, as SGLang runs prefill batches first); it
    lasts ``step_s`` plus ``prefill_token_s`` per prompt token plus ``sequence_s`` per request it decodes.
    """
    rng = np.random.default_rng(seed)
    arrivals = [(0.0, client) for client in range(concurrency)]  # (time, client)
    sent = dict.fromkeys(range(concurrency), 1)
    waiting: deque[list] = deque()  # [arrival time, prompt tokens left]
    running: list[list] = []  # [output tokens still to emit, client]
    ttft: list[float] = []
    now = 0.0
    while arrivals or waiting or running:
        arrivals.sort()
        while arrivals and arrivals[0][0] <= now:
            at, client = arrivals.pop(0)
            waiting.append([at, input_tokens, client])
        if not waiting and not running:
            now = arrivals[0][0]
            continue
        carried, finished = take_chunk(waiting, chunk_tokens)
        decoding = running if (mixes or carried == 0) else []
        now += step_s + prefill_token_s * carried + sequence_s * len(decoding)
        done = []
        for request in decoding:
            request[0] -= 1
            if request[0] == 0:
                done.append(request)
        for request in done:
            running.remove(request)
            client = request[1]
            if sent[client] < waves:
                sent[client] += 1
                arrivals.append((now + rng.uniform(0.0, round_trip_s), client))
        for at, _, client in finished:
            ttft.append(now - at)
            running.append([output_tokens - 1, client])
    return np.asarray(ttft)
