"""The serving model (prefill, engine overheads, modes, prices) against hand calculations."""

from __future__ import annotations

import dataclasses
from dataclasses import fields
from typing import ClassVar

import numpy as np
import pytest

from infecon.formulations.params import attention_flop_per_context_token, parameter_counts
from infecon.formulations.perf import ConfigMetrics, decode_step, evaluate
from infecon.formulations.serving import forward_pass, mode_times, prefill_context_tokens, serving_metrics
from infecon.formulations.specs import EngineProfile, KernelCounts, Requests, Workload
from infecon.instances.loader import get_hardware, get_model

ONE_GPU = dict(tp_rows=1, tp_cols=1, pp=1, ep=1)
PAPER = EngineProfile("paper", paper=True, default_mode="decode_only")
ENGINE = EngineProfile("test", flop_efficiency=0.5, bandwidth_efficiency=0.8, kernel_s=5e-6,
                       sequence_layer_s=1e-6, step_s=2e-4)


@pytest.fixture(scope="module")
def h100():
    return get_hardware("h100")


@pytest.fixture(scope="module")
def llama_8b():
    return get_model("llama-3-8b")


class TestPrefill:
    def test_prefill_pass_arithmetic(self, h100, llama_8b):
        """A 1000-token prefill does 2 N_active FLOP per token plus attention over a mean causal context of 500.5."""
        # FLOP = 1000 (2 N + a 500.5), a = 4 n_layers n_heads d_head; at 16 bits on 1e15 x 0.7 FLOP/s.
        # Pure arithmetic through the same numbers: 1e-12 relative.
        counts = parameter_counts(llama_8b)
        a = attention_flop_per_context_token(llama_8b)
        assert a == 4 * 32 * 32 * 128
        flop = 1000 * (2 * counts.active + a * 500.5)
        step = forward_pass(llama_8b, h100, Workload(), PAPER, **ONE_GPU, micro_batch=1, tokens_per_sequence=1000,
                            context_tokens=prefill_context_tokens(Requests(1000, 1)))
        assert float(step.physics.compute_s) == pytest.approx(flop / (1e15 * 0.7), rel=1e-12)
        assert float(step.physics.compute_s) > float(step.physics.hbm_read_s)  # compute-bound at any real isl

    def test_attention_is_quadratic_in_isl(self, h100, llama_8b):
        """Doubling isl doubles the matmul FLOP and (nearly) quadruples the attention FLOP."""
        # compute(2L) - 2 compute(L) = a/(C e) (2L (2L+1)/2 - 2 L (L+1)/2) = a/(C e) L^2; L = 4000.
        def compute(isl):
            return float(forward_pass(llama_8b, h100, Workload(), PAPER, **ONE_GPU, micro_batch=1,
                                      tokens_per_sequence=isl,
                                      context_tokens=prefill_context_tokens(Requests(isl, 1))).physics.compute_s)
        a = attention_flop_per_context_token(llama_8b)
        assert compute(8000) - 2 * compute(4000) == pytest.approx(a * 4000 ** 2 / (1e15 * 0.7), rel=1e-9)


class TestEngineOverheads:
    def test_kernel_counts_by_architecture(self):
        """Dense GQA: 6 + 3 kernels per layer; DeepSeek-V3: MLA 11 per layer, 3 dense FFNs, 58 MoE + shared."""
        counts = KernelCounts()
        assert counts.per_pass(get_model("llama-3-70b")) == 80 * (6 + 3)
        assert counts.per_pass(get_model("deepseek-v3")) == 61 * 11 + 3 * 3 + 58 * (7 + 3)

    def test_overhead_is_affine_in_the_batch(self, h100, llama_8b):
        """total = physics + kernels x kernel_s + step_s + micro_batch x n_layers x sequence_layer_s."""
        # Llama-3-8B: 32 layers x 9 kernels x 5 us = 1.44 ms; 0.2 ms per step; 32 us per sequence.
        batches = np.array([1.0, 7.0, 64.0])
        step = forward_pass(llama_8b, h100, Workload(context_tokens=1000), ENGINE, **ONE_GPU, micro_batch=batches)
        assert np.allclose(step.physics.kernel_latency_s, 32 * 9 * 5e-6, rtol=1e-12)
        extra = step.total_s - step.physics.total_s
        assert np.allclose(extra, 2e-4 + batches * 32 * 1e-6, rtol=1e-12)

    def test_efficiencies_scale_the_physics_exactly(self, h100, llama_8b):
        """The engine's efficiencies give the same arithmetic and HBM time as a hardware file with them."""
        workload = Workload(context_tokens=3000)
        step = forward_pass(llama_8b, h100, workload, ENGINE, **ONE_GPU, micro_batch=np.array([1.0, 300.0]))
        direct = decode_step(llama_8b, dataclasses.replace(h100, flop_efficiency=0.5, bandwidth_efficiency=0.8),
                             workload, **ONE_GPU, micro_batch=np.array([1.0, 300.0]))
        assert np.allclose(step.physics.compute_s, direct.compute_s, rtol=1e-12)
        assert np.allclose(step.physics.hbm_read_s, direct.hbm_read_s, rtol=1e-12)


class TestModes:
    requests = Requests(500, 100)

    def test_static_batch(self):
        """Speed = osl / (TTFT + (osl-1) TPOT): 100 / (0.2 + 99 x 0.01) = 84.03 tok/s."""
        t = mode_times("static_batch", self.requests, decode_s=0.01, prefill_batch_s=0.2, prefill_one_s=0.05,
                       batch=8, pp=1)
        assert float(t.tokens_per_second) == pytest.approx(100 / 1.19, rel=1e-12)
        assert float(t.total_tokens_per_second) == pytest.approx(8 * 100 / 1.19, rel=1e-12)
        assert float(t.ttft_s) == 0.2 and float(t.tpot_s) == 0.01
        # Output tokens pay the decode steps: 99 x 0.01 / (100 x 8); input tokens the prefill: 0.2 / (8 x 500).
        assert float(t.output_gpu_s_per_token) == pytest.approx(99 * 0.01 / 800, rel=1e-12)
        assert float(t.input_gpu_s_per_token) == pytest.approx(0.2 / 4000, rel=1e-12)

    def test_closed_loop(self):
        """Batch 20, osl 100: each step carries 0.2 prefills of 50 ms, so TPOT = 10 + 10 ms; rho = 0.5."""
        t = mode_times("closed_loop", self.requests, decode_s=0.01, prefill_batch_s=0.2, prefill_one_s=0.05,
                       batch=20, pp=1)
        assert float(t.tpot_s) == pytest.approx(0.02, rel=1e-12)
        assert float(t.tokens_per_second) == pytest.approx(50.0, rel=1e-12)
        # M/D/1: TTFT = P1 (1 + rho / (2 (1 - rho))) = 0.05 x 1.5 = 0.075 s.
        assert float(t.ttft_s) == pytest.approx(0.075, rel=1e-12)
        assert float(t.output_gpu_s_per_token) == pytest.approx(0.01 / 20, rel=1e-12)
        assert float(t.input_gpu_s_per_token) == pytest.approx(0.05 / 500, rel=1e-12)

    def test_closed_loop_with_pipeline(self):
        """With pp = 2 the micro-batch is 10: amortised prefill 10/100 x 50 ms = 5 ms per step."""
        t = mode_times("closed_loop", self.requests, decode_s=0.01, prefill_batch_s=0.2, prefill_one_s=0.05,
                       batch=20, pp=2)
        assert float(t.tpot_s) == pytest.approx(0.015, rel=1e-12)

    def test_disaggregated(self):
        """Decode never pays prefill; TTFT = P1 (1 + 0.7/0.6) + transfer; idle prefill capacity is charged."""
        t = mode_times("disaggregated", self.requests, decode_s=0.01, prefill_batch_s=0.2, prefill_one_s=0.05,
                       batch=20, pp=1, transfer_s=0.005, prefill_utilization=0.7)
        assert float(t.tpot_s) == 0.01
        assert float(t.ttft_s) == pytest.approx(0.05 * (1 + 0.7 / 0.6) + 0.005, rel=1e-12)
        assert float(t.input_gpu_s_per_token) == pytest.approx(0.05 / 0.7 / 500, rel=1e-12)

    def test_decode_only(self):
        """The paper: speed = 1 / decode step whatever the prompt."""
        t = mode_times("decode_only", self.requests, decode_s=0.01, prefill_batch_s=0.2, prefill_one_s=0.05,
                       batch=20, pp=1)
        assert float(t.tokens_per_second) == pytest.approx(100.0, rel=1e-12)

    def test_unknown_mode(self):
        with pytest.raises(ValueError, match="mode must be one of"):
            mode_times("batch", self.requests, decode_s=0.01, prefill_batch_s=0.2, prefill_one_s=0.05, batch=1, pp=1)


class TestServingMetrics:
    def test_paper_decode_only_is_the_paper(self, h100):
        """Engine paper in decode_only mode changes no field of perf.evaluate."""
        model = get_model("llama-3-70b")
        workload = Workload(context_tokens=8000)
        layout = dict(tp_rows=np.array([1, 2, 1]), tp_cols=np.array([8, 4, 4]), pp=np.array([1, 1, 2]),
                      ep=np.array([1, 1, 1]), batch=np.array([1, 16, 64]))
        base = evaluate(model, h100, workload, **layout)
        served = serving_metrics(model, h100, workload, Requests(0, 1), PAPER, "decode_only", **layout)
        for f in fields(ConfigMetrics):
            a, b = getattr(base, f.name), getattr(served, f.name)
            if f.name in ("target", "drafter"):
                continue
            assert np.array_equal(a, b), f.name
        assert np.isnan(served.ttft_s).all()  # no prompt, no TTFT

    def test_prices(self, h100, llama_8b):
        """Closed loop on one $2/h GPU: output price = 2/3600 x decode step / batch x 1e6; blended weighs isl:osl."""
        requests = Requests(2000, 500)
        workload = Workload(context_tokens=requests.mean_decode_context_tokens)
        m = serving_metrics(llama_8b, h100, workload, requests, ENGINE, "closed_loop", **ONE_GPU, batch=16)
        decode = forward_pass(llama_8b, h100, workload, ENGINE, **ONE_GPU, micro_batch=16).total_s
        assert float(m.usd_per_million_tokens) == pytest.approx(2 / 3600 * float(decode) / 16 * 1e6, rel=1e-12)
        blended = (2000 * m.usd_per_million_input_tokens + 500 * m.usd_per_million_tokens) / 2500
        assert float(m.blended_usd_per_million_tokens) == pytest.approx(float(blended), rel=1e-12)
        assert float(m.tokens_per_second) == pytest.approx(1 / float(m.tpot_s), rel=1e-12)
        assert float(m.tpot_s) > float(decode)  # the amortised prefill


class TestServingStructure:
    """``serving_structure`` (what the encodings bound) reproduces ``serving_metrics`` at every integer batch."""

    LAYOUTS: ClassVar[dict] = dict(tp_rows=np.array([1, 1, 2]), tp_cols=np.array([1, 4, 4]), pp=np.array([1, 2, 1]),
                   ep=np.array([1, 1, 1]))

    @pytest.mark.parametrize("engine", ["generic", "trtllm", "vllm", "sglang", "paper"])
    @pytest.mark.parametrize("mode", ["decode_only", "closed_loop", "disaggregated", "static_batch"])
    def test_latency_cost_and_ttft_from_the_structure(self, h100, engine, mode):
        """Latency, TPOT, cost, TTFT and a TTFT cap's largest prefill share from the structure: as evaluated.

        Same operations in another order (the amortised prefill as (P1 / osl) m, not (m / osl) P1), so
        equal to 1e-12 relative.
        """
        from infecon.formulations.serving import serving_structure
        from infecon.instances.engines import get_engine

        model, profile = get_model("llama-3-70b"), get_engine(engine)
        requests = Requests(2000, 500)
        workload = Workload(context_tokens=requests.mean_decode_context_tokens, weight_bits=8)
        structure = serving_structure(model, h100, workload, requests, profile, mode, **self.LAYOUTS)
        m = np.arange(1, 65)[:, None]
        pp = self.LAYOUTS["pp"]
        metrics = serving_metrics(model, h100, workload, requests, profile, mode,
                                  **{k: v[None, :] for k, v in self.LAYOUTS.items()}, batch=pp * m)
        decode_s = structure.decode.at(m).total_s
        tpot_s = decode_s + structure.prefill_s_per_sequence * m
        np.testing.assert_allclose(tpot_s, metrics.tpot_s, rtol=1e-12)
        usd_per_s = metrics.gpus * h100.price_usd_per_hour / 3600
        np.testing.assert_allclose(usd_per_s * structure.decode_weight * decode_s / (pp * m) * 1e6,
                                   metrics.usd_per_million_tokens, rtol=1e-12)
        if mode == "static_batch":  # latency = (osl - 1) / osl D(m) + prefill_batch(m) / osl; TTFT = prefill_batch(m)
            prefill_s = structure.prefill_batch.at(m).total_s
            np.testing.assert_allclose(prefill_s, metrics.ttft_s, rtol=1e-12)
            np.testing.assert_allclose(499 / 500 * decode_s + prefill_s / 500, metrics.latency_s, rtol=1e-12)
            np.testing.assert_allclose(structure.fixed_ttft_s, prefill_s[0], rtol=1e-12)  # its least TTFT
            return
        np.testing.assert_allclose(tpot_s, metrics.latency_s, rtol=1e-12)
        latency_s = tpot_s
        if mode != "closed_loop":
            np.testing.assert_allclose(np.broadcast_to(structure.fixed_ttft_s, m.shape[:1] + pp.shape),
                                       metrics.ttft_s, rtol=1e-12)
            return
        share = structure.prefill_s_per_sequence * m / latency_s  # the prefill share of a step
        for relative in (1 + 1e-9, 1 - 1e-9):  # a TTFT cap just above / below each configuration's own TTFT
            for row, column in np.ndindex(share.shape):
                reachable, largest = structure.ttft_limits(float(metrics.ttft_s[row, column]) * relative)
                meets = reachable[column] and share[row, column] <= largest[column]
                assert meets == (relative > 1), (engine, row, column)
