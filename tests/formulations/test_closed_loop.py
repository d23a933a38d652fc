"""The closed-loop benchmark's TTFT (formulations/closed_loop.py): by hand, by enumeration and by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from infecon.formulations import closed_loop
from infecon.formulations.closed_loop import closed_loop_ttft_s, wave_mean_passes
from tests.formulations.chunked_prefill_sim import simulate_closed


def test_hand_calculation_of_a_small_run():
    # 16 prompts of 2,048 tokens, 8,192 a pass: 4 prompts a pass, done after 1, 1, 1, 1, 2, ..., 4, 4 passes:
    # mean 2.5. A later wave's group waits half a pass and its own pass: 1.5. Three waves: (2.5 + 2 x 1.5) / 3.
    kw = dict(n_requests=16, input_tokens=2048, chunk_tokens=8192, chunk_pass_s=0.1, decode_sequence_s=0.0)
    assert float(closed_loop_ttft_s(**kw, pp=1, waves=1)) == pytest.approx(0.25)
    assert float(closed_loop_ttft_s(**kw, pp=1, waves=3)) == pytest.approx(5.5 / 3 * 0.1)
    # Over 2 stages passes follow each other a stage slot (0.05 s) apart: first (2.5 + 1) / 2 x 0.1, later
    # (1.5 + 1) / 2 x 0.1; plus 0.02 s per request.
    assert float(closed_loop_ttft_s(**kw, pp=2, waves=3, request_s=0.02)) == pytest.approx(
        (0.175 + 2 * 0.125) / 3 + 0.02)
    # Decodes riding in the passes: 2 passes of 4 prompts of 4,096 tokens; the 2 prompts done in pass 2 wait
    # for the 2 requests decoding in it. Continuous form N n / 6 = 4 x 2 / 6 costs against 4 / 4 = 1 exactly.
    riding = closed_loop_ttft_s(n_requests=4, input_tokens=4096, chunk_tokens=8192, chunk_pass_s=0.1,
                                decode_sequence_s=1e-3, pp=1, waves=1)
    assert float(riding) == pytest.approx(0.15 + 4 * 2 / 6 * 1e-3)
    # Every wave queues like the first where later waves are not staggered (an engine that does not mix).
    assert float(closed_loop_ttft_s(**kw, pp=1, waves=5, staggered=False)) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="at least one wave"):
        closed_loop_ttft_s(**kw, pp=1, waves=0.5)


@pytest.mark.parametrize(("n", "isl", "chunk"), [(16, 2048, 8192), (7, 8192, 8192), (5, 3000, 8192), (100, 1000, 8192),
                                                 (3, 20000, 8192), (2, 100, 8192), (64, 1024, 2048)])
def test_mean_passes_against_enumeration(n, isl, chunk):
    c = min(chunk, n * isl)
    exact = np.mean([math.ceil(k * isl / c) for k in range(1, n + 1)])
    period = c // math.gcd(isl, c)
    if n % period == 0:  # a whole number of periods: exact
        assert float(wave_mean_passes(n, isl, chunk)) == pytest.approx(exact)
    else:
        assert float(wave_mean_passes(n, isl, chunk)) == pytest.approx(exact, abs=0.5)


SIM = dict(step_s=0.01, prefill_token_s=1e-5, sequence_s=1e-4)


@pytest.mark.parametrize(("n", "isl", "osl"), [(16, 2048, 64), (64, 1024, 256), (32, 8192, 128), (4, 512, 64)])
def test_first_wave_matches_the_simulated_engine(n, isl, osl):
    c = min(8192, n * isl)
    tau = SIM["step_s"] + SIM["prefill_token_s"] * c
    simulated = simulate_closed(concurrency=n, waves=1, input_tokens=isl, output_tokens=osl, chunk_tokens=8192,
                                **SIM).mean()
    model = closed_loop_ttft_s(n_requests=n, input_tokens=isl, chunk_tokens=8192, chunk_pass_s=tau,
                               decode_sequence_s=SIM["sequence_s"], pp=1, waves=1)
    assert float(model) == pytest.approx(simulated, rel=0.01)


@pytest.mark.parametrize(("n", "isl", "osl"), [(16, 2048, 64), (64, 1024, 256), (32, 8192, 128)])
def test_later_waves_match_the_simulation_without_round_trip(n, isl, osl, monkeypatch):
    """Clients that re-send as a pass ends: later waves wait exactly their own passes (no extra wait)."""
    monkeypatch.setattr(closed_loop, "LATER_WAVE_WAIT_PASSES", 0.0)
    c = min(8192, n * isl)
    tau = SIM["step_s"] + SIM["prefill_token_s"] * c
    run = dict(concurrency=n, input_tokens=isl, output_tokens=osl, chunk_tokens=8192, **SIM)
    model = dict(n_requests=n, input_tokens=isl, chunk_tokens=8192, chunk_pass_s=tau,
                 decode_sequence_s=SIM["sequence_s"], pp=1)
    assert float(closed_loop_ttft_s(**model, waves=4)) == pytest.approx(
        simulate_closed(waves=4, **run).mean(), rel=0.02)
    # With round trips of up to a pass the re-arrivals queue: more than the model's half pass, never a first wave.
    jittered = simulate_closed(waves=4, round_trip_s=tau, **run).mean()
    monkeypatch.setattr(closed_loop, "LATER_WAVE_WAIT_PASSES", 0.5)
    assert float(closed_loop_ttft_s(**model, waves=4)) < jittered < float(closed_loop_ttft_s(**model, waves=1))


def test_an_engine_that_does_not_mix_queues_every_wave_like_the_first():
    run = dict(concurrency=32, input_tokens=8192, output_tokens=64, chunk_tokens=8192, step_s=0.01,
               prefill_token_s=1e-5, mixes=False)
    simulated = simulate_closed(waves=3, **run).mean()
    model = closed_loop_ttft_s(n_requests=32, input_tokens=8192, chunk_tokens=8192, chunk_pass_s=0.01 + 8192e-5,
                               decode_sequence_s=0.0, pp=1, waves=3, decode_rides=False, staggered=False)
    assert float(model) == pytest.approx(simulated, rel=0.01)
