"""Measured kernel curves in the one physics: flat equals the constants, a curve adds x_half tokens of weight
arithmetic, a scaled peak scales it, the paper's model and user hardware files never see it."""

from __future__ import annotations

import dataclasses
import tomllib

import numpy as np
import pytest

from infecon.formulations.params import parameter_counts
from infecon.formulations.perf import collective_time_s
from infecon.formulations.serving import forward_pass, serving_metrics, unit_hardware
from infecon.formulations.specs import CollectiveCurve, MeasuredKernels, Requests, Workload
from infecon.instances.engines import get_engine
from infecon.instances.kernel_curves import KERNELS_DIR
from infecon.instances.loader import HARDWARE_DIR, get_hardware, get_model, load_hardware

LAYOUTS = dict(tp_rows=np.array([1, 1, 1, 2]), tp_cols=np.array([1, 2, 8, 4]), pp=np.array([1, 1, 2, 1]),
               ep=np.array([1, 1, 1, 1]))
BATCHES = np.array([1, 7, 64, 512])


def metrics(hw, engine, workload=None):
    workload = workload or Workload(context_tokens=1536, weight_bits=8, kv_bits=8)
    return serving_metrics(get_model("llama_3_70b"), hw, workload, Requests(1024, 1024), engine, "closed_loop",
                           **LAYOUTS, batch=BATCHES)


def assert_same(a, b):
    """Every array of two metrics (and of their step breakdowns) equal, bit for bit."""
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if dataclasses.is_dataclass(x):
            assert_same(x, y)
        elif isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=field.name)


class TestFlatCurve:
    def test_flat_curve_is_the_constant_efficiency(self):
        """half_tokens 0 for every precision: every serving metric bit for bit as without any curve."""
        hw = get_hardware("h100")
        flat = dataclasses.replace(hw, kernel_curves={"trtllm": {8: 0.0, 16: 0.0}})
        none = dataclasses.replace(hw, kernel_curves={})
        assert_same(metrics(flat, get_engine("trtllm")), metrics(none, get_engine("trtllm")))

    def test_paper_engine_ignores_curves(self):
        hw = get_hardware("h100")
        assert hw.kernel_curves  # the built-in H100 has measured curves
        none = dataclasses.replace(hw, kernel_curves={})
        assert_same(metrics(hw, get_engine("paper")), metrics(none, get_engine("paper")))

    def test_hardware_without_tables_and_user_files_have_no_curves(self):
        assert get_hardware("mi300x").kernel_curves == {}
        assert get_hardware("tpu_v6e").kernel_curves == {}
        assert load_hardware(HARDWARE_DIR / "h100_sxm.toml").kernel_curves == {}
        assert set(get_hardware("b200").kernel_curves) == {"trtllm", "vllm", "sglang"}


class TestCurve:
    def test_curve_adds_half_tokens_of_weight_arithmetic(self):
        """At context 0 (no attention arithmetic) one TP-1 pass of x tokens computes 2 N x flop on weights; with
        x_half = 100 it costs 2 N (x + 100) / (peak e): compute(curve) / compute(flat) = (x + 100) / x."""
        hw = dataclasses.replace(get_hardware("h100"), kernel_curves={"vllm": {8: 100.0}})
        flat = dataclasses.replace(hw, kernel_curves={})
        model, engine = get_model("llama_3_70b"), get_engine("vllm")
        work = Workload(context_tokens=0, weight_bits=8, kv_bits=8)
        x = np.array([1.0, 10.0, 100.0, 1000.0])
        layout = dict(tp_rows=1, tp_cols=1, pp=1, ep=1, micro_batch=x)
        curve = forward_pass(model, hw, work, engine, **layout).physics.compute_s
        plain = forward_pass(model, flat, work, engine, **layout).physics.compute_s
        np.testing.assert_allclose(curve / plain, (x + 100.0) / x, rtol=1e-12)
        # Hand check of the flat term: 2 x 70.6e9 active flop per token (parameter_counts) at 1979 TFLOP/s FP8
        # over the engine's H100 flop efficiency.
        active = parameter_counts(model).active
        expected = 2 * active * x / (hw.peak_flop_per_s(8) * engine.on(hw).flop_efficiency)
        np.testing.assert_allclose(plain, expected, rtol=1e-12)

    def test_scaled_peak_scales_the_curve(self):
        """Doubling every peak halves the compute term, the curve's share included (x_half is in tokens)."""
        hw = dataclasses.replace(get_hardware("h100"), kernel_curves={"vllm": {8: 100.0}})
        fast = dataclasses.replace(hw, flop_per_s_by_bits={k: 2 * v for k, v in hw.flop_per_s_by_bits.items()})
        model, engine = get_model("llama_3_70b"), get_engine("vllm")
        work = Workload(context_tokens=0, weight_bits=8, kv_bits=8)
        layout = dict(tp_rows=1, tp_cols=1, pp=1, ep=1, micro_batch=np.array([1.0, 50.0]))
        np.testing.assert_allclose(forward_pass(model, fast, work, engine, **layout).physics.compute_s,
                                   forward_pass(model, hw, work, engine, **layout).physics.compute_s / 2, rtol=1e-12)

    def test_a_bandwidth_what_if_keeps_the_curve(self):
        """dataclasses.replace of the HBM bandwidth keeps the GEMM curve: it is a property of the arithmetic."""
        hw = get_hardware("h100")
        assert dataclasses.replace(hw, hbm_bandwidth_bytes_per_s=6.6e12).kernel_curves == hw.kernel_curves

    def test_engine_picks_its_own_curve(self):
        hw = get_hardware("h200")
        assert unit_hardware(hw, get_engine("trtllm")).gemm_half_tokens == hw.kernel_curves["trtllm"]
        assert unit_hardware(hw, get_engine("generic")).gemm_half_tokens == {}
        assert unit_hardware(hw, get_engine("paper")).gemm_half_tokens == {}

    @pytest.mark.parametrize("bits", [4, 8, 16])
    def test_half_tokens_follow_the_tensor_core_mode(self, bits):
        """4-bit weights on an H100 run at the FP8 rate (peak_flop_per_s), so they take the FP8 curve."""
        hw = unit_hardware(get_hardware("h100"), "trtllm")
        expected = hw.kernel_curves["trtllm"][8 if bits <= 8 else 16]
        assert hw.half_tokens(bits) == expected


def _without_measured(hw):
    return dataclasses.replace(hw, measured_kernels={})


class TestMeasuredAttentionAndCollectives:
    """Decode attention's KV stream ratio and the in-node collectives (instances/kernels/ [attention.decode],
    [collective.*]) in the one physics."""

    def test_neutral_curves_are_todays_constants(self):
        """A ratio of 1 and no collective curves: every serving metric bit for bit as without measured kernels."""
        hw = get_hardware("h100")
        neutral = dataclasses.replace(hw, measured_kernels={"trtllm": MeasuredKernels()})
        assert_same(metrics(neutral, get_engine("trtllm")), metrics(_without_measured(hw), get_engine("trtllm")))

    def test_paper_engine_and_user_files_never_see_them(self):
        hw = get_hardware("h100")
        assert set(hw.measured_kernels) == {"trtllm", "vllm", "sglang"}
        assert_same(metrics(hw, get_engine("paper")), metrics(_without_measured(hw), get_engine("paper")))
        assert load_hardware(HARDWARE_DIR / "h100_sxm.toml").measured_kernels == {}
        assert get_hardware("mi300x").measured_kernels == {}
        assert unit_hardware(hw, get_engine("generic")).kernels_in_force is None
        assert unit_hardware(hw, get_engine("paper")).kernels_in_force is None

    def test_kv_ratio_is_the_files_gemm_over_attention_share(self):
        """Hand check on the shipped H100 TRT-LLM file: 16-bit GEMM bandwidth_share / decode attention's."""
        data = tomllib.loads((KERNELS_DIR / "trtllm" / "h100_sxm.toml").read_text())
        ratio = data["gemm"]["16"]["bandwidth_share"]["value"] / data["attention"]["decode"]["bandwidth_share"]["value"]
        assert get_hardware("h100").measured_kernels["trtllm"].kv_stream_ratio == pytest.approx(ratio, rel=1e-12)

    def test_kv_reads_scale_by_the_ratio(self):
        """Only the KV term of the HBM reads moves: (hbm(ratio r) - hbm(1)) = (r - 1) x KV read time, and the
        KV read time is hand-computed: 80 layers x 8 KV heads x 128 x 2 (K and V) x 1 byte x context per sequence."""
        model, engine = get_model("llama_3_70b"), get_engine("trtllm")
        hw = _without_measured(get_hardware("h100"))
        work = Workload(context_tokens=2048, weight_bits=8, kv_bits=8)
        m = np.array([1.0, 16.0, 256.0])
        layout = dict(tp_rows=1, tp_cols=1, pp=1, ep=1, micro_batch=m)
        slow = dataclasses.replace(hw, measured_kernels={"trtllm": MeasuredKernels(kv_stream_ratio=1.25)})
        base = forward_pass(model, hw, work, engine, **layout).physics.hbm_read_s
        more = forward_pass(model, slow, work, engine, **layout).physics.hbm_read_s
        kv_bytes = 80 * 8 * 128 * 2 * 1 * 2048 * m
        kv_s = kv_bytes / (hw.hbm_bandwidth_bytes_per_s * engine.on(hw).bandwidth_efficiency)
        np.testing.assert_allclose(more - base, 0.25 * kv_s, rtol=1e-9)

    def test_in_node_all_reduce_is_the_measured_line_across_nodes_nccl(self):
        """Within a node: latency_s + hop (r - 1) and 2 (r - 1)/r bytes at the share of NVLink; across: NCCL's."""
        curve = CollectiveCurve(latency_s=3e-6, hop_latency_s=0.5e-6, bandwidth_share=0.6)
        hw = get_hardware("h100")
        measured = dataclasses.replace(unit_hardware(hw, "trtllm"),
                                       kernels_in_force=MeasuredKernels(collectives={"all_reduce": curve}))
        plain = dataclasses.replace(measured, kernels_in_force=None)
        message = 8192 * 2.0
        latency, bandwidth = collective_time_s(measured, "all_reduce", 8, 8, 1, message)
        assert float(latency) == pytest.approx(3e-6 + 0.5e-6 * 7, rel=1e-12)
        assert float(bandwidth) == pytest.approx(2 * 7 / 8 * message / (hw.intra_node_bandwidth_bytes_per_s * 0.6),
                                                 rel=1e-12)
        for group in ((16, 8, 2), (2, 1, 2)):  # two nodes: NCCL's published latencies, as without a curve
            assert collective_time_s(measured, "all_reduce", *group, message) == collective_time_s(
                plain, "all_reduce", *group, message)
        # a what-if of the NVLink bandwidth scales the curve's bandwidth term (the curve is a share)
        fast = dataclasses.replace(measured, intra_node_bandwidth_bytes_per_s=2 * hw.intra_node_bandwidth_bytes_per_s)
        assert float(collective_time_s(fast, "all_reduce", 8, 8, 1, message)[1]) == pytest.approx(bandwidth / 2)

    def test_hbm_what_if_scales_the_kv_reads(self):
        """Doubling HBM bandwidth halves the HBM term with the measured ratio in force (it is a ratio of shares)."""
        model, engine = get_model("llama_3_70b"), get_engine("trtllm")
        hw = get_hardware("h100")
        fast = dataclasses.replace(hw, hbm_bandwidth_bytes_per_s=2 * hw.hbm_bandwidth_bytes_per_s)
        work = Workload(context_tokens=4096, weight_bits=8, kv_bits=8)
        layout = dict(tp_rows=1, tp_cols=8, pp=1, ep=1, micro_batch=np.array([1.0, 64.0]))
        np.testing.assert_allclose(forward_pass(model, fast, work, engine, **layout).physics.hbm_read_s,
                                   forward_pass(model, hw, work, engine, **layout).physics.hbm_read_s / 2, rtol=1e-12)
