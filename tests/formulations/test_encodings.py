"""The encodings' building blocks: the relaxation's lines bound the physics, and the models read like the design."""

import dataclasses
import itertools
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ortools.sat.python import cp_model

from infecon.formulations.cpsat import build_cpsat, to_ns
from infecon.formulations.milp import build_milp, to_pulp
from infecon.formulations.relaxation import SEGMENTS_PER_LAYOUT, _segments, build_options, option_floors
from infecon.formulations.space import tabulate
from infecon.formulations.specs import CollectiveCurve, MeasuredKernels
from infecon.instances.loader import get_hardware
from infecon.solver import api

CASES = [("mixtral-8x7b", dict(max_gpus=16, context_tokens=8000, demand_tokens_per_s=5000, budget_usd_per_hour=20)),
         ("llama-3-8b", dict(max_gpus=8, context_tokens=0, max_batch=4096)),
         ("deepseek-v3", dict(context_tokens=100_000, weight_bits=8, max_batch=256)),
         ("llama-3-70b", dict(max_gpus=16, draft="llama-3-8b", max_batch=64)),
         ("mixtral-8x7b", dict(max_gpus=16, engine="sglang", isl=2000, osl=200, max_batch=256)),
         ("llama-3-70b", dict(max_gpus=8, engine="generic", draft="llama-3-8b", max_batch=64)),
         ("llama-3-70b", dict(max_gpus=16, engine="vllm", mode="disaggregated", max_batch=128)),
         ("mixtral-8x7b", dict(max_gpus=16, engine="trtllm", mode="static_batch", isl=128, osl=64, max_batch=256)),
         # MLA under an engine: every layout with TP > 1 comes in both attention shardings (heads and data-parallel).
         ("deepseek-v3", dict(max_gpus=32, engine="generic", isl=8000, osl=1000, weight_bits=8, kv_bits=8,
                              max_batch=256))]


def _problem(name, kwargs):
    return api.build_problem(name, "h100", batch_mode="all", **kwargs)



def assert_options_bound_latency(problem) -> None:
    """Every option's weighted lines plus its prefill line <= the enumeration's latency at every integer batch of
    its segment (1e-12 relative absorbs summation-order rounding only)."""
    options = build_options(problem)
    table = tabulate(problem)
    layout_of = {tuple(row): k for k, row in enumerate(options.layouts.tolist())}
    rows = np.array([layout_of[tuple(row)] for row in table.layouts.tolist()])
    for k in range(len(options)):
        here = np.flatnonzero((rows == options.layout[k]) & (table.draft_tokens == options.draft_tokens[k]))
        m = table.batch[here] // options.pp[k]
        inside = here[(m >= options.m_lo[k]) & (m <= options.m_hi[k])]
        m = table.batch[inside] // options.pp[k]
        busy = np.maximum(options.compute_s_per_sequence[k] * m,
                          options.hbm_intercept_s[k] + options.hbm_s_per_sequence[k] * m)
        bound = (options.decode_weight[k] * (busy + options.serial_intercept_s[k]
                                             + options.serial_s_per_sequence[k] * m)
                 / options.tokens_per_iteration[k]
                 + options.prefill_intercept_s[k] + options.prefill_s_per_sequence[k] * m)
        assert (bound <= table.latency_s[inside] * (1 + 1e-12)).all(), (k, options.layouts[options.layout[k]])


class TestRelaxationBoundsThePhysics:
    @pytest.mark.parametrize(("name", "kwargs"), CASES)
    def test_every_option_is_a_lower_bound_at_every_integer_batch(self, name, kwargs):
        """On each option's segment, the weighted lines of the iteration plus the prefill's line <= the latency.

        Checked against ``tabulate`` (the enumeration's numbers) at every integer batch of every
        layout; 1e-12 relative absorbs summation-order rounding only.
        """
        problem = _problem(name, kwargs)
        assert_options_bound_latency(problem)

    @pytest.mark.parametrize(("name", "kwargs"), CASES)
    def test_floors_are_at_most_every_configuration_of_their_option(self, name, kwargs):
        """An option's latency and cost floors never exceed a configuration on its segment (what pruning needs).

        Against ``tabulate`` at every integer batch; 1e-12 relative absorbs summation-order rounding only.
        """
        problem = _problem(name, kwargs)
        options = build_options(problem)
        floors = option_floors(problem, options)
        table = tabulate(problem)
        layout_of = {tuple(row): k for k, row in enumerate(options.layouts.tolist())}
        rows = np.array([layout_of[tuple(row)] for row in table.layouts.tolist()])
        checked = 0
        for k in range(len(options)):
            here = np.flatnonzero((rows == options.layout[k]) & (table.draft_tokens == options.draft_tokens[k]))
            m = table.batch[here] // options.pp[k]
            inside = here[(m >= options.m_lo[k]) & (m <= options.m_hi[k])]
            assert (floors.latency_s[k] <= table.latency_s[inside] * (1 + 1e-12)).all(), k
            assert (floors.usd_per_million_tokens[k] <= table.usd_per_million_tokens[inside] * (1 + 1e-12)).all(), k
            checked += len(inside)
        assert checked > 0

    def test_each_layout_has_at_most_a_fixed_number_of_segments(self):
        """The model's size does not grow with the largest batch: 8 segments per layout from 64 to 10^6."""
        for m_max in (1, 2, 9, 64, 8192, 1_000_000):
            segments = _segments(m_max)
            assert len(segments) <= SEGMENTS_PER_LAYOUT
            assert segments[0][0] == 1 and segments[-1][1] == m_max
            assert all(a[1] == b[0] for a, b in itertools.pairwise(segments))
        sizes = [len(build_options(_problem("llama-3-70b", dict(context_tokens=0, max_batch=b))))
                 for b in (8192, 1_000_000)]
        assert sizes[0] == sizes[1] <= SEGMENTS_PER_LAYOUT * len(build_options(_problem(
            "llama-3-70b", dict(context_tokens=0, max_batch=8192))).layouts)

    def test_chords_are_tight_for_a_dense_model(self):
        """For a dense model at context 0 the HBM time is affine in the batch, so its chord is exact (1e-12)."""
        problem = _problem("llama-3-8b", dict(max_gpus=1, max_batch=64))
        options = build_options(problem)
        table = tabulate(problem)
        k = len(options) - 1  # the last segment of the one layout, [38, 64]
        m = table.batch[(table.batch >= options.m_lo[k]) & (table.batch <= options.m_hi[k])]
        hbm = table.metrics.target.hbm_read_s[m - 1]
        np.testing.assert_allclose(options.hbm_intercept_s[k] + options.hbm_s_per_sequence[k] * m, hbm, rtol=1e-12)


class TestIntegerScaling:
    def test_lower_bounds_round_down_and_caps_up(self):
        """to_ns floors a bound and ceils a cap, so the integer model only ever relaxes the physics."""
        assert to_ns(1.0000000009e-3, rounding="down") == 1_000_000
        assert to_ns(1.0000000001e-3, rounding="up") == 1_000_001
        values = np.random.default_rng(0).uniform(1e-6, 1.0, 1000)
        assert (to_ns(values, rounding="down") <= values * 1e9).all()
        assert (to_ns(values, rounding="up") >= values * 1e9).all()


class TestModelsReadLikeTheDesign:
    def test_lp_file_names_each_rule_and_the_batch(self, tmp_path):
        """The PuLP model's LP file names the batch and each rule (it reads like the design)."""
        problem = _problem(*CASES[0])
        lp, _ = to_pulp(build_milp(problem, build_options(problem)))
        path = tmp_path / "model.lp"
        lp.writeLP(str(path))
        text = path.read_text()
        for name in ("one_configuration", "hbm_capacity", "demand_cap", "budget", "max_gpus", "batch",
                     "segment_start", "compute_bound", "hbm_bound"):
            assert name in text, name
        # Issue 21: options named by layout and segment (choose_tp8_pp1_ep1_s0), and no vacuous rows for open caps
        # (cost_cap_7: ... >= -1e+30 was written for every option).
        assert re.search(r"choose_tp\d+(x\d+)?_pp\d+_ep\d+_s\d+", text)
        assert "cost_cap" not in text and "latency_cap" not in text and "1e+30" not in text

    def test_cpsat_names_its_rules(self):
        """The CP-SAT model's constraints carry the rule names, the divisibility rules included."""
        problem = _problem(*CASES[0])
        model = build_cpsat(problem, build_options(problem), max_usd_per_million_tokens=1e3).model
        names = [c.name for c in model.proto.constraints]
        for name in ("one_configuration", "hbm_capacity", "tp_divides_heads", "ep_divides_experts", "max_gpus",
                     "budget", "demand_cap", "cost_cap", "batch_definition"):
            assert any(n == name or n.startswith(f"{name}_") for n in names), name
        assert any(re.fullmatch(r"hbm_capacity_tp\d+(x\d+)?_pp\d+_ep\d+_s\d+", n) for n in names)
        assert cp_model.CpSolver().solve(model) == cp_model.OPTIMAL
        open_model = build_cpsat(problem, build_options(problem)).model  # no cost cap: no cost_cap row at all
        assert not any(c.name.startswith("cost_cap") for c in open_model.proto.constraints)

    def test_service_level_rows_are_named(self, tmp_path):
        """With TTFT and TPOT caps on a closed loop, both models hold rows named ttft_max and tpot_max."""
        # A 0.3 s TTFT cap binds for llama-3-70b at isl 2000 on 1-8 H100s: P1 is 0.10-0.52 s there, plus 0.12 s
        # per request.
        problem = _problem("llama-3-70b", dict(max_gpus=8, engine="generic", isl=2000, osl=200, max_batch=64,
                                                ttft_max_s=0.3, tpot_max_s=0.05))
        options = build_options(problem)
        assert (options.ttft_iteration_share > 0).any() and (options.ttft_iteration_share < 1).any()
        lp, _ = to_pulp(build_milp(problem, options))
        path = tmp_path / "model.lp"
        lp.writeLP(str(path))
        text = path.read_text()
        assert "ttft_max_" in text and "tpot_max_" in text
        names = {c.name for c in build_cpsat(problem, options).model.proto.constraints}
        assert "tpot_max" in names and any(name.startswith("ttft_max_") for name in names)


class TestRelaxationWithMeasuredKernels:
    """The relaxation's lines bound the physics whatever the measured curves (instances/kernels/) say."""

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ratio=st.floats(0.3, 3.0), latency_s=st.floats(0.0, 3e-5), hop_s=st.floats(0.0, 3e-6),
           share=st.floats(0.05, 1.5), a2a_share=st.floats(0.05, 1.5))
    def test_bounds_hold_with_any_curves(self, ratio, latency_s, hop_s, share, a2a_share):
        """A KV stream ratio and in-node all-reduce / all-to-all curves drawn at random: every option's lines are
        below the enumeration's latency at every integer batch (groups of 16 span two nodes: NCCL's lines)."""
        kernels = MeasuredKernels(ratio, {"all_reduce": CollectiveCurve(latency_s, hop_s, share),
                                          "all_to_all": CollectiveCurve(2 * latency_s, hop_s, a2a_share)})
        hw = dataclasses.replace(get_hardware("h100"), measured_kernels={"trtllm": kernels})
        problem = api.build_problem("mixtral-8x7b", hw, batch_mode="all", max_gpus=16, engine="trtllm", isl=2000,
                                    osl=200, max_batch=64)
        assert_options_bound_latency(problem)
