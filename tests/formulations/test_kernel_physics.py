"""Measured GEMM curves in the one physics: flat equals the constants, a curve adds x_half tokens of weight
arithmetic, a scaled peak scales it, the paper's model and user hardware files never see it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from infecon.formulations.params import parameter_counts
from infecon.formulations.serving import forward_pass, serving_metrics, unit_hardware
from infecon.formulations.specs import Requests, Workload
from infecon.instances.engines import get_engine
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
