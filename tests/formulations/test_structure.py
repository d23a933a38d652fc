"""The step structure (``perf.step_structure``): coefficients an encoding can read reproduce the step time exactly."""

from __future__ import annotations

import numpy as np
import pytest

from infecon.formulations.perf import collective_lines, collective_time_s, decode_step, step_structure
from infecon.formulations.specs import Workload
from infecon.instances.loader import get_hardware, get_model

LAYOUTS = [dict(tp_rows=1, tp_cols=8, pp=1, ep=1), dict(tp_rows=1, tp_cols=16, pp=2, ep=8),
           dict(tp_rows=4, tp_cols=8, pp=1, ep=4), dict(tp_rows=1, tp_cols=1, pp=4, ep=1)]


def assembled_step_s(structure, micro_batch: np.ndarray) -> np.ndarray:
    """The step time written out from the coefficients, with the protocol minimum as ``np.min`` over lines."""
    m = micro_batch.astype(float)
    x = m * structure.tokens_per_sequence
    compute = structure.compute_s_per_token * x
    hbm = (structure.hbm_fixed_s + structure.hbm_routed_s * (1 - structure.expert_idle_share ** x)
           + structure.hbm_s_per_sequence * m + structure.hbm_s_per_token * x)
    serial = np.full_like(m, structure.kernel_s)
    for term in structure.collectives:
        lines = term.lines.latency_s[:, None] + term.lines.s_per_token[:, None] * x[None, :]
        serial += np.where(term.lines.active, term.calls * lines.min(axis=0), 0.0)
    return np.maximum(compute, hbm) + serial


class TestStepStructure:
    @pytest.mark.parametrize("name", ["llama-3-70b", "mixtral-8x22b", "deepseek-v3"])
    @pytest.mark.parametrize("layout", LAYOUTS)
    @pytest.mark.parametrize("tokens_per_sequence", [1, 4])
    def test_structure_reproduces_the_step_time_at_every_integer_batch(self, name, layout, tokens_per_sequence):
        """max(compute, hbm) + sum of cheapest-protocol lines + kernels equals decode_step for micro-batches 1..4096."""
        model, hw = get_model(name), get_hardware("h100")
        workload = Workload(context_tokens=8000)
        structure = step_structure(model, hw, workload, **layout, tokens_per_sequence=tokens_per_sequence)
        m = np.arange(1, 4097)
        step = decode_step(model, hw, workload, **layout, micro_batch=m, tokens_per_sequence=tokens_per_sequence)
        # Same terms summed in a different order: equal to a few ulps (1e-12 relative is 10^4 ulps of slack).
        np.testing.assert_allclose(assembled_step_s(structure, m), step.total_s, rtol=1e-12)

    def test_terms_are_affine_apart_from_the_expert_share_and_the_protocol_choice(self):
        """Compute is linear in the batch, and HBM time minus the routed-expert term has zero second differences."""
        model, hw = get_model("mixtral-8x22b"), get_hardware("h100")
        structure = step_structure(model, hw, Workload(context_tokens=8000), **LAYOUTS[1])
        m = np.arange(1, 200, dtype=float)
        step = structure.at(m)
        affine_hbm = step.hbm_read_s - structure.hbm_routed_s * (1 - structure.expert_idle_share ** m)
        scale = float(step.hbm_read_s.max())
        assert np.abs(np.diff(affine_hbm, 2)).max() < 1e-12 * scale
        np.testing.assert_allclose(step.compute_s, structure.compute_s_per_token * m, rtol=1e-15)
        # Mixtral 8x22B: top-2 of 8 experts, so one token leaves each expert idle with probability 3/4.
        assert structure.expert_idle_share == pytest.approx(0.75, rel=1e-15)

    def test_collective_lines_are_the_collective_time(self):
        """A line evaluated at one token carrying the message is collective_time_s for that message."""
        hw = get_hardware("h100")
        for message in (1.0, 1e4, 1e6, 1e9):
            latency, bandwidth = collective_time_s(hw, "all_reduce", 16, 8, 2, message)
            lines = collective_lines(hw, "all_reduce", 16, 8, 2, message)
            totals = lines.latency_s + lines.s_per_token
            assert float(latency + bandwidth) == pytest.approx(float(totals.min()), rel=1e-15)
