"""Pipeline parallelism as engines run it: uneven stages, the LM head on the last stage, the hand-off."""

from __future__ import annotations

import numpy as np
import pytest

from infecon.formulations import perf
from infecon.formulations.serving import forward_pass, mode_times, pipelined_prefill_factor
from infecon.formulations.specs import EngineProfile, HardwareSpec, ModelSpec, ProtocolLatency, Requests, Workload

# A three-layer toy model, so that PP 2 leaves the stages uneven (2 + 1 layers), on a toy accelerator with round
# numbers and one NCCL protocol. Plain (non-gated) FFN, standard attention, 16-bit everything.
TOY = ModelSpec(name="toy", n_layers=3, d_model=1024, n_heads=8, n_kv_heads=8, d_head=128, d_ff=4096,
                vocab_size=32000, ffn_gated=False)
CHIP = HardwareSpec(
    name="chip", flop_per_s_by_bits={16: 1e15}, hbm_capacity_bytes=80e9, hbm_bandwidth_bytes_per_s=1e12,
    intra_node_bandwidth_bytes_per_s=1e11, inter_node_bandwidth_bytes_per_s=1e10, node_size_gpus=8,
    kernel_launch_latency_s=0.0, protocols={"Simple": ProtocolLatency(1e-5, 1e-6, 5e-6, 1.0)},
    price_usd_per_hour=1.0, flop_efficiency=1.0, bandwidth_efficiency=1.0)
WORK = Workload(context_tokens=100)
PP2 = dict(tp_rows=1, tp_cols=1, pp=2, ep=1)


class TestPipelineScales:
    def test_uneven_stages_and_head_slots(self):
        """A round pays pp x the fullest stage: pp ceil(L/pp) / L of the layers, the head pp times."""
        # 3 layers in 2 stages: 2 x 2 / 3 = 4/3; 61 layers in 8 stages: 8 x 8 / 61; even splits: 1.
        scale = perf.pipeline_layer_scale(TOY, [1, 2, 3], "heads")
        assert scale == pytest.approx([1.0, 4 / 3, 1.0], rel=1e-15)
        assert perf.pipeline_stage_slots([1, 2, 8], "data") == pytest.approx([1, 2, 8])

    def test_the_papers_model_splits_evenly(self):
        """The paper's model (attention 'paper'): no uneven stages, the head once per round."""
        assert perf.pipeline_layer_scale(TOY, [2, 3], "paper") == pytest.approx([1.0, 1.0])
        assert perf.pipeline_stage_slots([2, 3], "paper") == pytest.approx([1.0, 1.0])


class TestPipelineStepByHand:
    def test_pp2_step_with_handoff_and_uneven_stages(self):
        """The toy model at PP 2, TP 1, micro-batch 4, context 100, as engines run it, term by term.

        Parameters: per layer attention 4 x 1024 x 1024 = 4,194,304 and FFN 2 x 1024 x 4096 = 8,388,608, so the
        layers hold 3 x 12,582,912 = 37,748,736; the LM head 32,000 x 1024 = 32,768,000. Stages: ceil(3/2) = 2
        layers on the fullest, so layers x 2 x 2 / 3 = 4/3 and the head x 2 (it sits on the last stage).
        Compute per token: 4/3 (2 x 37,748,736 + 12,288 x 100) + 2 x 2 x 32,768,000 = 102,301,696 + 131,072,000
        = 233,373,696 FLOP (attention 2 x 3 layers x 8 heads x 256 = 12,288 FLOP per context token);
        x 4 tokens / 1e15 = 9.33494784e-7 s.
        HBM: weights (4/3 x 37,748,736 + 2 x 32,768,000) x 2 B = 231,735,296 B; KV 4/3 x 100 x 6,144 x 2 B
        x 4 sequences = 6,553,600 B; activations (4/3 x 49,152 + 2 x 33,024) x 2 B x 4 = 1,052,672 B (per
        layer 16,384 matmul inputs and outputs; head 1024 + 32,000). Sum 239,341,568 B / 1e12 = 2.39341568e-4 s.
        Hand-off: one send within the node of 2 x 1024 x 2 B = 4,096 B per token (hidden state and residual),
        x 4 tokens / 1e11 = 1.6384e-7 s, latency 1e-5 + 1 hop x 1e-6 = 1.1e-5 s.
        Step: max(compute, HBM) + send = 2.39341568e-4 + 1.6384e-7 + 1.1e-5 = 2.50505408e-4 s.
        Sums of exact binary fractions and a few roundings: 1e-12 relative.
        """
        step = perf.decode_step(TOY, CHIP, WORK, **PP2, micro_batch=4, attention="heads")
        assert float(step.compute_s) == pytest.approx(9.33494784e-7, rel=1e-12)
        assert float(step.hbm_read_s) == pytest.approx(2.39341568e-4, rel=1e-12)
        assert float(step.network_s) == pytest.approx(1.6384e-7, rel=1e-12)
        assert float(step.collective_latency_s) == pytest.approx(1.1e-5, rel=1e-12)
        assert float(step.total_s) == pytest.approx(2.50505408e-4, rel=1e-12)

    def test_pp2_hbm_holds_the_fullest_stage(self):
        """HBM per GPU at batch 8: the fullest stage's weights, its layers' KV and the live activations.

        Weights: (4/3 x 37,748,736 + 2 x 32,768,000) x 2 B = 231,735,296 B over 2 GPUs = 115,867,648 B (each end
        stage holds one 32,768,000-parameter table: embedding first, head last). Per sequence: KV 4/3 x 100 x
        6,144 x 2 B / 2 = 819,200 B and activations (2 x 1024 + 32,000) x 2 B / 2 = 34,048 B. At batch 8:
        115,867,648 + 8 x 853,248 = 122,693,632 B. Integer-valued: exact.
        """
        used = perf.hbm_used_bytes_per_gpu(TOY, WORK, tp=1, pp=2, batch=8, attention="heads")
        assert int(used) == 122_693_632

    def test_engine_overheads_per_stage(self):
        """An engine at 100 % efficiency adds its kernels and per-sequence costs of the fullest stage, x pp, and
        ``stage_overhead_share`` of its step cost on the second stage slot.

        Kernels: (6 attention + 3 FFN) x 3 layers = 27 per pass, x 4/3 = 36 x 1e-6 s = 3.6e-5 s. Per sequence:
        4/3 x 3 layers x 1e-7 s x 4 sequences = 1.6e-6 s. Step: 1e-4 x (1 + (2 - 1) x 0.5) = 1.5e-4 s.
        Total: 2.50505408e-4 + 3.6e-5 + 1.6e-6 + 1.5e-4 = 4.38105408e-4 s (1e-12 relative).
        """
        engine = EngineProfile(name="toy", flop_efficiency=1.0, bandwidth_efficiency=1.0, kernel_s=1e-6,
                               sequence_layer_s=1e-7, step_s=1e-4, stage_overhead_share=0.5)
        one = forward_pass(TOY, CHIP, WORK, engine, **PP2, micro_batch=4)
        assert float(one.overhead_s) == pytest.approx(3.6e-5 + 1.6e-6 + 1.5e-4, rel=1e-12)
        assert float(one.total_s) == pytest.approx(4.38105408e-4, rel=1e-12)

    def test_pp1_is_unchanged_by_the_engines_pipeline(self):
        """At PP 1 every scale is 1: the engine's step equals the paper's sharding rules applied to one stage."""
        heads = perf.decode_step(TOY, CHIP, WORK, tp_rows=1, tp_cols=1, pp=1, ep=1, micro_batch=4, attention="heads")
        paper = perf.decode_step(TOY, CHIP, WORK, tp_rows=1, tp_cols=1, pp=1, ep=1, micro_batch=4, attention="paper")
        # At TP 1 heads and the paper's even split shard nothing differently; only rounding order may differ.
        assert float(heads.total_s) == pytest.approx(float(paper.total_s), rel=1e-14)

    def test_pipeline_costs_more_than_the_even_split(self):
        """Uneven stages and the head on the last stage make an engine's PP 2 round slower than the paper's."""
        engine = perf.decode_step(TOY, CHIP, WORK, **PP2, micro_batch=np.array([1, 8, 64]), attention="heads")
        paper = perf.decode_step(TOY, CHIP, WORK, **PP2, micro_batch=np.array([1, 8, 64]), attention="paper")
        assert (engine.total_s > paper.total_s).all()


class TestPipelinedPrefill:
    def test_chunks_flow_through_the_stages(self):
        """A 131,072-token prompt in 8,192-token chunks is n = 16 chunks; over 4 stages its last chunk leaves after
        16 + 3 = 19 stage slots of 1 / (16 x 4) of the pass: 19 / 64 = 0.296875. One chunk, or PP 1: 1."""
        engine = EngineProfile(name="chunks", chunk_tokens=8192)
        long = Requests(131072, 1)
        assert pipelined_prefill_factor(long, engine, [1, 4]) == pytest.approx([1.0, 19 / 64], rel=1e-15)
        assert pipelined_prefill_factor(Requests(100, 1), engine, [8]) == pytest.approx([1.0], rel=1e-15)

    def test_no_chunks_no_pipelining(self):
        """The paper's model, an engine without chunked prefill, a chunk as long as the prompt: the whole pass."""
        long = Requests(131072, 1)
        for engine in (None, EngineProfile(name="paper", paper=True, chunk_tokens=8192),
                       EngineProfile(name="whole", chunked_prefill=False, chunk_tokens=8192),
                       EngineProfile(name="long", chunk_tokens=131072)):
            assert pipelined_prefill_factor(long, engine, [4]) == pytest.approx([1.0])

    def test_ttft_shrinks_but_the_charged_time_does_not(self):
        """Closed loop: TTFT waits for the factor's share of P1; the GPU time charged to input tokens is P1 / pp."""
        requests = Requests(1000, 100)
        plain = mode_times("closed_loop", requests, decode_s=0.05, prefill_batch_s=0.0, prefill_one_s=0.4, batch=8,
                           pp=2)
        piped = mode_times("closed_loop", requests, decode_s=0.05, prefill_batch_s=0.0, prefill_one_s=0.4, batch=8,
                           pp=2, prefill_latency_factor=0.75)
        assert float(piped.ttft_s) == pytest.approx(0.75 * float(plain.ttft_s), rel=1e-12)
        assert float(piped.input_gpu_s_per_token) == float(plain.input_gpu_s_per_token)
        assert float(piped.tpot_s) == float(plain.tpot_s)
