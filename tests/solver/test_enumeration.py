"""The enumeration at integer resolution: piece by piece, it returns exactly what one whole table returns."""

from __future__ import annotations

import dataclasses
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infecon.formulations.errors import InstanceError
from infecon.formulations.space import (
    BatchAxis,
    batches_within_hbm,
    latency_floor,
    searched_layouts,
    tabulate,
    tabulate_rows,
)
from infecon.formulations.specs import ModelSpec
from infecon.solver import api, enumeration
from infecon.solver.enumeration import (
    enumerate_frontier,
    enumerate_point,
    may_skip_dominated_batches,
    pareto_indices,
)
from infecon.solver.epsilon import solve_point, trace_frontier
from infecon.solver.frontier import configuration_frame
from tests.strategies import problems, serving_problems

SLOW = [HealthCheck.too_slow]


def whole_table_frontier(problem) -> pd.DataFrame:
    """Today's reference: one table of every configuration, filtered once."""
    table = tabulate(problem)
    return configuration_frame(table, pareto_indices(table))


def fine_pieces():
    """Cut batch intervals at 2 points down to 2 batches, so small spaces exercise every skip and split."""
    return mock.patch.multiple(enumeration, SPLIT_POINTS=2, WHOLE_INTERVAL_BATCHES=2, CHUNK_CONFIGURATIONS=97)


class TestEnumerateFrontier:
    """``enumerate_frontier`` equals ``pareto_indices`` on the whole table: points, config_index, columns, ties."""

    @settings(max_examples=150, deadline=None, suppress_health_check=SLOW)
    @given(problem=problems())
    def test_equals_the_whole_table_on_generated_problems(self, problem):
        """Paper-model problems (toy and MoE/MLA models, speculative decoding, demand and budget caps)."""
        self.check(problem)

    @settings(max_examples=100, deadline=None, suppress_health_check=SLOW)
    @given(problem=serving_problems())
    def test_equals_the_whole_table_on_generated_serving_problems(self, problem):
        """Every engine and serving mode, with TTFT and TPOT caps that bind."""
        self.check(problem)

    @staticmethod
    def check(problem) -> None:
        """Equal to the whole table's frontier, with the default pieces and with pieces small enough to split."""
        expected = whole_table_frontier(problem)
        pd.testing.assert_frame_equal(enumerate_frontier(problem), expected)
        with fine_pieces():
            pd.testing.assert_frame_equal(enumerate_frontier(problem), expected)

    def test_equals_the_whole_table_on_a_builtin_model_at_every_integer_batch(self):
        """Llama 3 70B on H100s, every batch to 1,024 (a frontier of runs): identical to the table's."""
        problem = api.build_problem("llama-3-70b", "h100", engine="paper", max_batch=1024, batch_mode="all")
        expected = whole_table_frontier(problem)
        assert len(expected) > 1000
        pd.testing.assert_frame_equal(trace_frontier(problem, "enumerate").points, expected)

    def test_it_skips_what_it_proves_dominated(self):
        """Most of Llama 3 70B's 700,000 configurations up to batch 8,192 are never evaluated."""
        problem = api.build_problem("llama-3-70b", "h100", engine="paper", max_batch=8192, batch_mode="all")
        _, evaluated = counted(lambda: enumerate_frontier(problem))
        assert evaluated < 100_000

    def test_a_space_the_old_table_refused(self):
        """The README example at integer resolution (over 10 million configurations) has a frontier, in runs."""
        # Without the engine's limits (1024 sequences, 90 % of HBM, PP <= 8), which make the table small enough.
        problem = api.build_problem("llama-3-70b", "h100", engine="generic", batch_mode="all", max_seqs=10**9,
                                    memory_fraction=1.0, max_pp=80)
        with pytest.raises(InstanceError, match="exceed 10,000,000 configurations"):
            tabulate(problem)
        points = enumerate_frontier(problem)
        assert len(points) > 100
        assert (np.diff(points["tokens_per_second"]) < 0).all()
        assert (np.diff(points["usd_per_million_tokens"]) < 0).all()


    def test_a_space_nothing_feasible_prunes_is_refused_not_walked(self):
        """A cap no configuration meets leaves nothing to skip with: past the budget it says so, in one error.
        (A demand cap bounds the batch, ``demand_broken_onwards``, but not at a confidence, whose speed factor
        falls past the measured batches.)"""
        problem = api.build_problem("llama-3-70b", "h100", engine="paper", demand_tokens_per_s=1.0, max_batch=8192,
                                    confidence=0.9)
        with (mock.patch.object(enumeration, "MAX_TABULATED_CONFIGURATIONS", 20_000),
              pytest.raises(InstanceError, match="would evaluate more than 20,000 configurations") as raised):
            enumerate_frontier(problem)
        assert raised.value.nothing_feasible

    def test_the_frontier_names_the_rule_nothing_meets(self):
        """Through ``api.frontier`` the same refusal names the binding rule first (it was only the budget)."""
        problem = api.build_problem("llama-3-70b", "h100", engine="paper", demand_tokens_per_s=1.0, max_batch=8192,
                                    confidence=0.9)
        with (mock.patch.object(enumeration, "MAX_TABULATED_CONFIGURATIONS", 20_000),
              pytest.raises(InstanceError, match=r"^demand_cap: every configuration that fits serves more.*"
                                                 r"would evaluate more than 20,000")):
            api.frontier(problem, None, backend="enumerate")

    def test_a_budget_refusal_with_feasible_points_keeps_its_message(self):
        """With feasible points found the budget is the real limit: the error stays the budget's."""
        problem = api.build_problem("llama-3-70b", "h100", engine="paper", max_batch=8192)
        with (mock.patch.object(enumeration, "MAX_TABULATED_CONFIGURATIONS", 2_000),
              pytest.raises(InstanceError, match=r"^'max_batch': the enumeration would evaluate") as raised):
            api.frontier(problem, None, backend="enumerate")
        assert not raised.value.nothing_feasible


class TestEnumeratePoint:
    """Single-point queries equal ``best_index`` on the whole table."""

    @settings(max_examples=60, deadline=None, suppress_health_check=SLOW)
    @given(problem=st.one_of(problems(), serving_problems()), quantile=st.sampled_from([0.0, 0.3, 0.7, 1.0]),
           which=st.sampled_from(["speed", "cost"]))
    def test_equals_the_whole_table(self, problem, quantile, which):
        """At a speed or cost between the frontier's ends (or at them, or where nothing qualifies)."""
        table = tabulate(problem)
        feasible = table.feasible
        if which == "speed":
            speeds = table.metrics.tokens_per_second[feasible]
            query = {"min_tokens_per_s": float(np.quantile(speeds, quantile)) if len(speeds) else 1.0}
        else:
            costs = table.usd_per_million_tokens[feasible]
            query = {"max_usd_per_million_tokens": float(np.quantile(costs, quantile)) if len(costs) else 1.0}
        expected = solve_point(problem, "enumerate", table=table, **query).points
        pd.testing.assert_frame_equal(enumerate_point(problem, **query), expected)
        with fine_pieces():
            pd.testing.assert_frame_equal(solve_point(problem, "enumerate", **query).points, expected)


class TestSkippingPremise:
    """What the skipped intervals rely on (``may_skip_dominated_batches``), checked at every integer batch."""

    @settings(max_examples=60, deadline=None, suppress_health_check=SLOW)
    @given(problem=st.one_of(problems(), serving_problems()))
    def test_latency_and_cost_times_batch_never_fall_as_the_batch_grows(self, problem):
        """Per layout, in batch order: latency and cost x batch are nondecreasing (to 1e-12 relative)."""
        if problem.speculative is not None:  # a drafter has its floor instead (the next test)
            return
        table = tabulate(problem)
        layout = table.layouts
        cost_times_batch = table.usd_per_million_tokens * table.batch
        for one in np.unique(layout, axis=0):
            mine = np.flatnonzero((layout == one).all(axis=1))  # canonical order: batch ascending
            for values in (table.latency_s[mine], cost_times_batch[mine]):
                assert (values[1:] >= values[:-1] * (1 - 1e-12)).all()

    @settings(max_examples=40, deadline=None, suppress_health_check=SLOW)
    @given(problem=st.one_of(problems(), serving_problems()))
    def test_batches_past_the_hbm_count_never_fit(self, problem):
        """``batches_within_hbm`` is exact: the batches past it break hbm_capacity, the last one within may fit."""
        layouts = searched_layouts(problem)  # both attention shardings where the problem searches them
        axis = BatchAxis.of(problem, layouts)
        counts = batches_within_hbm(problem, layouts, axis)
        batches = axis.values if axis.values is not None else np.arange(1, axis.largest + 1)
        for layout, count in zip(layouts, counts, strict=True):
            if axis.size(int(layout[2])) == 0:
                continue
            table = tabulate(problem, layout[None, :], batches=batches)  # this layout's batches, in position order
            assert table.violations["hbm_capacity"][count:].all()
            assert not table.feasible[count:].any()

    def test_an_engines_speculation_is_evaluated_at_every_batch(self):
        """A drafter under a fitted engine has no latency floor: no skipping; under the paper's model it has one."""
        problem = api.build_problem("llama-3-70b", "h100", draft="llama-3-8b", engine="generic", max_gpus=8,
                                    max_batch=64)
        assert not may_skip_dominated_batches(problem)
        assert may_skip_dominated_batches(dataclasses.replace(problem, speculative=None))
        assert may_skip_dominated_batches(dataclasses.replace(problem, engine=None, requests=None,
                                                              mode="decode_only"))

    @settings(max_examples=60, deadline=None, suppress_health_check=SLOW)
    @given(problem=problems())
    def test_the_speculative_floor_bounds_every_larger_batch(self, problem):
        """``space.latency_floor`` at a batch is at most the latency of that batch and of every larger one."""
        if problem.speculative is None:
            return
        table = tabulate(problem)
        floor = latency_floor(problem, tp_rows=table.tp_rows, tp_cols=table.tp_cols, pp=table.pp, ep=table.ep,
                              batch=table.batch)
        layout = table.layouts
        for one in np.unique(layout, axis=0):
            mine = np.flatnonzero((layout == one).all(axis=1))  # batch ascending
            later_min = np.minimum.accumulate(table.latency_s[mine][::-1])[::-1]
            assert (floor[mine] <= later_min * (1 + 1e-12)).all()
            # Cost x batch is the layout's price per second x latency, so its floor scales with the latency's.
            finite = mine[np.isfinite(table.latency_s[mine])]
            price = table.usd_per_million_tokens[finite] * table.batch[finite] / table.latency_s[finite]
            np.testing.assert_allclose(price, price[0] if len(price) else price, rtol=1e-12)


class TestDiagnosis:
    """``rule_summary`` gives ``diagnose_infeasible`` the verdict the whole table gives."""

    @settings(max_examples=40, deadline=None, suppress_health_check=SLOW)
    @given(problem=st.one_of(problems(), serving_problems()))
    def test_same_message_as_the_whole_table(self, problem):
        """Binding rule and HBM need read the same with or without the table."""
        assert api.diagnose_infeasible(problem) == api.diagnose_infeasible(problem, tabulate(problem))


TINY = ModelSpec(name="tiny", n_layers=2, d_model=256, n_heads=8, n_kv_heads=8, d_head=32, d_ff=1024,
                 vocab_size=4096)  # at context 0 on a B200 one GPU holds 19.5 million sequences


def counted(call):
    """``call()``'s result and how many configurations it evaluated."""
    evaluated = []
    real = enumeration.tabulate_rows

    def counting(problem, **rows):
        evaluated.append(len(rows["batch"]))
        return real(problem, **rows)

    with mock.patch.object(enumeration, "tabulate_rows", counting):
        result = call()
    return result, sum(evaluated)


@st.composite
def capped_problems(draw):
    """Generated problems (paper and serving) with a demand cap and a budget that bind (quantiles of the totals and
    prices the uncapped problem reaches), and a cap on running sequences."""
    problem = draw(st.one_of(problems(), serving_problems()))
    metrics = tabulate(dataclasses.replace(problem, constraints=dataclasses.replace(
        problem.constraints, demand_tokens_per_s=None, budget_usd_per_hour=None))).metrics
    total = np.asarray(metrics.total_tokens_per_second, dtype=float)
    price = np.asarray(metrics.gpus * problem.hardware.price_usd_per_hour, dtype=float)
    total, price = total[np.isfinite(total) & (total > 0)], price[np.isfinite(price)]
    demand = float(np.quantile(total, draw(st.sampled_from([0.0, 0.2, 0.6, 1.0])))) if len(total) else None
    budget = float(np.quantile(price, draw(st.sampled_from([0.3, 1.0])))) if draw(st.booleans()) else None
    # An engine's cap on running sequences (per attention-DP rank: ``space.sequence_caps``), at or above the least
    # explicit batch size (below every one the problem is refused).
    space = problem.space
    least = 1 if space.batch_sizes is None else min(space.batch_sizes)
    max_seqs = draw(st.none() | st.integers(least, least + 40))
    return dataclasses.replace(problem, space=dataclasses.replace(space, max_seqs=max_seqs),
                               constraints=dataclasses.replace(problem.constraints, demand_tokens_per_s=demand,
                                                               budget_usd_per_hour=budget))


class TestBoundedBatch:
    """Issue 21: a demand cap and a budget bound the batch (``caps_broken_onwards``); a point query skips what is
    slower or dearer than a point found; a frontier too dense to list says so."""

    @settings(max_examples=80, deadline=None, suppress_health_check=SLOW)
    @given(problem=capped_problems())
    def test_the_bounded_enumeration_equals_the_unbounded_one(self, problem):
        """With the cap bounds and without them (every batch walked), at default and fine pieces: one frontier,
        the whole table's."""
        expected = whole_table_frontier(problem)
        unbounded = lambda table: np.zeros(len(table), dtype=bool)  # noqa: E731
        with mock.patch.object(enumeration, "caps_broken_onwards", unbounded):
            pd.testing.assert_frame_equal(enumerate_frontier(problem), expected)
        pd.testing.assert_frame_equal(enumerate_frontier(problem), expected)
        with fine_pieces():
            pd.testing.assert_frame_equal(enumerate_frontier(problem), expected)

    @settings(max_examples=80, deadline=None, suppress_health_check=SLOW)
    @given(problem=capped_problems())
    def test_a_flagged_batch_and_every_larger_one_break_a_cap(self, problem):
        """The claim the bound rests on, on the whole table: total tok/s never falls as a layout's batch grows
        (no drafter, no confidence), and a batch flagged breaks a cap at every larger batch of its layout."""
        table = tabulate(problem)
        flagged = enumeration.caps_broken_onwards(table)
        broken = np.zeros(len(table), dtype=bool)
        for rule in ("ttft_max", "tpot_max", "demand_cap", "budget", "max_seqs"):
            broken |= table.violations.get(rule, np.zeros(len(table), dtype=bool))
        total = np.asarray(table.metrics.total_tokens_per_second, dtype=float)
        for one in np.unique(table.layouts, axis=0):
            mine = np.flatnonzero((table.layouts == one).all(axis=1))  # batch ascending
            if problem.speculative is None:
                assert (total[mine][1:] >= total[mine][:-1] * (1 - 1e-12)).all()
            first = np.flatnonzero(flagged[mine])
            if len(first):
                assert broken[mine][first[0]:].all()

    def test_a_demand_cap_bounds_a_tiny_models_batch(self):
        """A tiny model at context 0 on a B200 under the paper's model: 19.5 million batches fit one GPU. With a
        demand of 1M tok/s the batches past it are never evaluated: the frontier (1 GPU, batches 1-33) from a few
        thousand configurations, where it walked every batch and refused past 10 million."""
        problem = api.build_problem(TINY, "b200", engine="paper", demand_tokens_per_s=1e6)
        frame, evaluated = counted(lambda: enumerate_frontier(problem))
        assert evaluated < 20_000
        assert len(frame) > 0 and (frame["total_tokens_per_second"] <= 1e6).all()
        # the frontier's last point is the largest batch within the demand on its layout: one more breaks it
        last = frame.iloc[-1]
        one = np.array([1])
        more = tabulate_rows(problem, tp_rows=one * last["tp_rows"], tp_cols=one * last["tp_cols"], pp=one * last["pp"],
                             ep=one * last["ep"], batch=one * (last["batch"] + last["pp"]))
        assert more.metrics.total_tokens_per_second[0] > 1e6

    def test_a_point_query_skips_what_a_found_point_beats(self):
        """The fastest deployment of the tiny model within $1e-5 per million tokens, from a few thousand
        configurations (the frontier has millions): the least batch of its layout within that cost."""
        problem = api.build_problem(TINY, "b200", engine="paper")
        point, evaluated = counted(lambda: enumerate_point(problem, max_usd_per_million_tokens=1e-5))
        assert evaluated < 50_000
        row = point.iloc[0]
        assert row["usd_per_million_tokens"] <= 1e-5
        one = np.array([1])
        smaller = tabulate_rows(problem, tp_rows=one * row["tp_rows"], tp_cols=one * row["tp_cols"],
                                pp=one * row["pp"], ep=one * row["ep"], batch=one * (row["batch"] - row["pp"]))
        assert smaller.usd_per_million_tokens[0] > 1e-5  # one batch less is over the cost: none faster qualifies

    def test_a_frontier_too_dense_to_list_says_so(self):
        """Without caps each larger batch of the tiny model is a little cheaper per token (a step's fixed time
        spreads over more sequences) up to 19.5 million: the exact frontier has millions of points. Past the
        budget the error says that, not that too few feasible points rule out the rest."""
        problem = api.build_problem(TINY, "b200", engine="paper")
        with (mock.patch.object(enumeration, "MAX_TABULATED_CONFIGURATIONS", 100_000),
              pytest.raises(InstanceError, match=r"the frontier itself is that dense \([\d,]+ of the [\d,]+ "
                                                 r"evaluated are on it.*TP 1 PP 1 EP 1 at batch 19,530,339 of up to "
                                                 r"19,530,339 that fit\); set a max_batch") as raised):
            enumerate_frontier(problem)
        assert not raised.value.nothing_feasible
