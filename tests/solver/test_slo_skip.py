"""The enumeration's SLO skip (``enumeration.slo_broken_onwards``): a configuration that breaks a TTFT or TPOT
cap by its bound breaks it at every larger batch of its layout, so those batches are never evaluated."""

from __future__ import annotations

import dataclasses
from unittest import mock

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infecon.formulations.latency import prefill_arrivals_quantile
from infecon.formulations.space import tabulate
from infecon.solver import api, enumeration
from infecon.solver.enumeration import enumerate_frontier, slo_broken_onwards
from tests.solver.test_enumeration import whole_table_frontier
from tests.strategies import serving_problems

SLOW = [HealthCheck.too_slow]
RELATIVE = 1e-12  # two evaluations of a monotone formula differ by a few ulps, far below this


def per_layout(table):
    """Rows of each layout, in batch order (canonical order is batch ascending within a layout)."""
    for one in np.unique(table.layouts, axis=0):
        yield np.flatnonzero((table.layouts == one).all(axis=1))


@st.composite
def percentile_problems(draw):
    """Serving problems with TTFT and TPOT caps, at the mean or at any percentile from 1 to 99.9."""
    problem = draw(serving_problems())
    percentile = draw(st.none() | st.floats(1.0, 99.9))
    return dataclasses.replace(problem, constraints=dataclasses.replace(problem.constraints,
                                                                        slo_percentile=percentile))


class TestBounds:
    @settings(max_examples=80, deadline=None, suppress_health_check=SLOW)
    @given(problem=percentile_problems())
    def test_ttft_at_any_percentile_never_falls_as_the_batch_grows(self, problem):
        """Every mode, mean and percentile TTFT, per layout in batch order: nondecreasing (NaN: no prompt)."""
        if problem.speculative is not None:  # a drafter: no SLO skip (``slo_broken_onwards``), draft lengths per batch
            return
        table = tabulate(problem)
        ttft = table.metrics.ttft_at(problem.constraints.slo_percentile)
        for mine in per_layout(table):
            values = ttft[mine]
            if np.isnan(values).all():
                continue
            assert (values[1:] >= values[:-1] * (1 - RELATIVE)).all(), values

    @settings(max_examples=80, deadline=None, suppress_health_check=SLOW)
    @given(problem=percentile_problems())
    def test_the_tpot_bound_never_falls_and_bounds_every_larger_batch(self, problem):
        """The bare step s0 (mean: the mean TPOT) grows with the batch and is at most the TPOT at the percentile
        at that batch, so it is at most the TPOT at every larger batch."""
        if problem.speculative is not None:  # as above
            return
        table = tabulate(problem)
        metrics, percentile = table.metrics, problem.constraints.slo_percentile
        tpot = metrics.tpot_at(percentile)
        bound = metrics.tpot_s if percentile is None else metrics.spread.tpot_bounds_s(metrics.tpot_s)[0]
        for mine in per_layout(table):
            assert (bound[mine][1:] >= bound[mine][:-1] * (1 - RELATIVE)).all()
            assert (bound[mine] <= tpot[mine] * (1 + RELATIVE)).all()

    @settings(max_examples=80, deadline=None, suppress_health_check=SLOW)
    @given(problem=percentile_problems())
    def test_a_flagged_batch_and_every_larger_one_break_a_cap(self, problem):
        """The claim the skip rests on, on the whole table: flagged means infeasible from there on."""
        table = tabulate(problem)
        flagged = slo_broken_onwards(table)
        breaks = np.zeros(len(table), dtype=bool)
        for rule in ("ttft_max", "tpot_max"):
            breaks |= table.violations.get(rule, np.zeros(len(table), dtype=bool))
        for mine in per_layout(table):
            first = np.flatnonzero(flagged[mine])
            if len(first):
                assert breaks[mine][first[0]:].all()

    def test_the_prompts_quantile_is_not_monotone_in_the_utilisation(self):
        """Why TPOT's bound is s0 and not the percentile itself: the approximated quantile of the prompts in a
        window (``latency.prefill_arrivals_quantile``) falls slightly as rho grows where mu0 < 1 (found on a
        grid of mu0 1e-4..1e5 x rho 0..0.999; at p50 mu0 0.11-0.74, at p99 mu0 < 0.01)."""
        low, high = prefill_arrivals_quantile(50.0, 0.2062, [0.2701, 0.2713])
        assert high < low


class TestSkip:
    @settings(max_examples=60, deadline=None, suppress_health_check=SLOW)
    @given(problem=percentile_problems())
    def test_equals_the_whole_table(self, problem):
        """With the skip, at the default pieces and at pieces small enough to split: the table's frontier."""
        expected = whole_table_frontier(problem)
        pd.testing.assert_frame_equal(enumerate_frontier(problem), expected)
        with mock.patch.multiple(enumeration, SPLIT_POINTS=2, WHOLE_INTERVAL_BATCHES=2, CHUNK_CONFIGURATIONS=97):
            pd.testing.assert_frame_equal(enumerate_frontier(problem), expected)

    def test_it_skips_batches_past_a_p99_cap(self):
        """Llama 3 70B, closed loop at p99 TTFT 1 s and TPOT 50 ms: the same frontier from fewer evaluations."""
        problem = api.build_problem("llama-3-70b", "h100", engine="generic", isl=2000, osl=500, ttft_max_s=1.0,
                                    tpot_max_s=0.05, slo_percentile=99.0, batch_mode="all")
        counts = {}
        frames = {}
        for label, skip in (("with", slo_broken_onwards), ("without", lambda table: np.zeros(len(table), bool))):
            evaluated = []
            real = enumeration.tabulate_rows

            def counting(problem, real=real, evaluated=evaluated, **rows):
                evaluated.append(len(rows["batch"]))
                return real(problem, **rows)

            with (mock.patch.object(enumeration, "tabulate_rows", counting),
                  mock.patch.object(enumeration, "slo_broken_onwards", skip)):
                frames[label] = enumerate_frontier(problem)
            counts[label] = sum(evaluated)
        pd.testing.assert_frame_equal(frames["with"], frames["without"])
        assert counts["with"] < 0.8 * counts["without"], counts
