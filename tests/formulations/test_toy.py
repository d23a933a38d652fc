"""The closed-form toy model (paper eq. 8, 13, 14) and the full model's reduction to it (paper-notes sec. 2.2.3)."""

from __future__ import annotations

import numpy as np
import pytest

from infecon.formulations.params import activation_elements_per_token, parameter_counts
from infecon.formulations.perf import decode_step
from infecon.formulations.specs import HardwareSpec, ModelSpec, ProtocolLatency, Workload
from infecon.formulations.toy import toy_min_latency_s, toy_optimal_gpus, toy_token_latency_s

T_HOP_S = 1e-6
HBM_BYTES_PER_S = 3.3e12
HUGE = 1e30  # "infinite" link bandwidth and FLOP/s: their terms come out around 1e-19 s or less

# A dense Llama-3-70B-shaped model, built inline so the test does not depend on the data files.
DENSE = ModelSpec(name="toy dense", n_layers=80, d_model=8192, n_heads=64, n_kv_heads=8, d_head=128, d_ff=28672,
                  vocab_size=128256)

# The toy model's hardware: no bandwidth or arithmetic limits besides HBM, no kernel or base
# latency, one protocol whose every hop costs t_hop, and nodes so large that every group lies in one.
TOY_HARDWARE = HardwareSpec(
    name="toy", flop_per_s_by_bits={16: HUGE}, hbm_capacity_bytes=HUGE, hbm_bandwidth_bytes_per_s=HBM_BYTES_PER_S,
    intra_node_bandwidth_bytes_per_s=HUGE, inter_node_bandwidth_bytes_per_s=HUGE, node_size_gpus=10**6,
    kernel_launch_latency_s=0.0,
    protocols={"LL": ProtocolLatency(base_latency_s=0.0, intra_hop_latency_s=T_HOP_S, inter_hop_latency_s=T_HOP_S,
                                     bandwidth_fraction=0.5)},
    price_usd_per_hour=2.0, flop_efficiency=1.0, bandwidth_efficiency=1.0,
)

# Appendix A of the notes: Llama 3 70B with the paper's toy inputs.
APPENDIX_A = dict(n_params=70.6e9, n_layers=80, weight_bytes=2, hbm_bandwidth_bytes_per_s=HBM_BYTES_PER_S,
                  hop_latency_s=T_HOP_S, n_reduce=4)


class TestFullModelReducesToToy:
    @pytest.mark.parametrize("r", [2, 4, 8, 16])
    def test_square_grid_matches_eq_8(self, r):
        """On an r x r 2-D TP grid with the toy's hardware the full model's step time equals eq. 8 within 1e-3.

        The only physics the full model adds in this limit is activation I/O (eq. 35): one token's
        matmul inputs and outputs, ≈11.1M elements x 2 bytes = 22 MB against 139 GB of weights, i.e.
        1.6e-4 of the HBM term. The test checks that this term accounts for the whole difference.
        """
        workload = Workload()  # context 0, 16-bit weights and activations
        step = decode_step(DENSE, TOY_HARDWARE, workload, tp_rows=r, tp_cols=r, pp=1, ep=1, micro_batch=1)
        n_read = parameter_counts(DENSE).active  # dense, batch 1: every weight but the embedding is read
        toy = toy_token_latency_s(n_params=n_read, n_layers=DENSE.n_layers, weight_bytes=2,
                                  hbm_bandwidth_bytes_per_s=HBM_BYTES_PER_S, hop_latency_s=T_HOP_S, n_gpus=r * r,
                                  n_reduce=4)
        full = float(step.total_s)
        assert full == pytest.approx(toy, rel=1e-3)

        # Collective latency: 4 all-reduces per layer over r ranks, each 2 t_hop (r - 1) (eq. 8 with sqrt(N) = r).
        assert float(step.collective_latency_s) == pytest.approx(DENSE.n_layers * 4 * 2 * T_HOP_S * (r - 1), rel=1e-12)
        # The activation term: 1 token x a elements x 2 bytes over r^2 GPUs' bandwidth.
        activation_s = activation_elements_per_token(DENSE) * 2 / (r * r * HBM_BYTES_PER_S)
        assert activation_s / toy < 2e-4
        assert full - toy == pytest.approx(activation_s, rel=1e-6)
        # The "infinite" terms really are negligible.
        assert float(step.network_s) < 1e-15
        assert float(step.compute_s) < 1e-15
        assert float(step.kernel_latency_s) == 0.0


class TestToyMinimum:
    def test_min_latency_is_minimum_over_gpus(self):
        """Eq. 14's closed form equals the minimum of eq. 9 over a fine grid of real N, at eq. 13's N*."""
        n_gpus = np.geomspace(1, 1000, 200_001)  # consecutive points 0.0035% apart
        latency = np.array([toy_token_latency_s(**APPENDIX_A, n_gpus=n) for n in n_gpus])
        closed = toy_min_latency_s(**APPENDIX_A)
        # The grid minimum is within (grid step)^2 x curvature ≈ 1e-9 of the true one: 1e-3 is generous.
        assert latency.min() == pytest.approx(closed, rel=1e-3)
        assert latency.min() >= closed * (1 - 1e-12)  # the closed form is a true lower bound
        assert n_gpus[latency.argmin()] == pytest.approx(toy_optimal_gpus(**APPENDIX_A), rel=1e-3)

    def test_small_model_is_fastest_on_one_gpu(self):
        """When one GPU reads the model faster than one forward pass of hops, N* = 1 and eq. 14 gives p N / B."""
        # p N / B = 2 x 1e8 / 3.3e12 = 60.6 µs < n_layers n_reduce t_hop = 32 x 4 x 1 µs = 128 µs.
        small = dict(APPENDIX_A, n_params=1e8, n_layers=32)
        assert toy_optimal_gpus(**small) == 1.0
        assert toy_min_latency_s(**small) == pytest.approx(2 * 1e8 / HBM_BYTES_PER_S, rel=1e-12)
        n_gpus = np.geomspace(1, 100, 10_001)
        assert min(toy_token_latency_s(**small, n_gpus=n) for n in n_gpus) == pytest.approx(
            toy_token_latency_s(**small, n_gpus=1), rel=1e-12)

    def test_appendix_a_llama_3_70b(self):
        """For Llama 3 70B (N = 70.6e9, 80 layers, 2 bytes, 3.3 TB/s, 1 µs hops) N* ≈ 26.1 and max speed ≈ 234 tok/s."""
        # ratio = 2 x 70.6e9 / (80 x 4 x 1e-6 x 3.3e12) = 1.412e11 / 1.056e9 = 133.7; N* = 133.7^(2/3) = 26.16.
        # latency = 3 (3.2e-4)^(2/3) (0.04279)^(1/3) - 2 x 3.2e-4 = 4.91 ms - 0.64 ms = 4.27 ms -> 234 tok/s.
        # The notes round to 3 figures; 2% is the brief's tolerance and well above that rounding.
        n_star = toy_optimal_gpus(**APPENDIX_A)
        assert n_star == pytest.approx(26.1, rel=0.02)
        assert n_star == pytest.approx((2 * 70.6e9 / (80 * 4 * 1e-6 * 3.3e12)) ** (2 / 3), rel=1e-12)
        assert 1 / toy_min_latency_s(**APPENDIX_A) == pytest.approx(234, rel=0.02)

    def test_min_latency_large_model_approximation(self):
        """Eq. 18 (dropping the -2 L n t term) overestimates eq. 14's latency by the notes' 234/204 factor."""
        serial_s = 80 * 4 * T_HOP_S
        read_s = 2 * 70.6e9 / HBM_BYTES_PER_S
        approx = 3 * serial_s ** (2 / 3) * read_s ** (1 / 3)
        # 4.91 ms vs 4.27 ms: 204 vs 234 tok/s in the notes' appendix A (3-figure rounding: 1%).
        assert 1 / approx == pytest.approx(204, rel=0.01)
        assert approx - toy_min_latency_s(**APPENDIX_A) == pytest.approx(2 * serial_s, rel=1e-9)
