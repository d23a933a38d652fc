"""Thinning the printed frontier: near-ties with a simpler deployment fold into it; nothing is lost."""

import numpy as np
import pandas as pd
import pytest

from infecon.solver import api
from infecon.solver.thinning import representatives, shown, stands_for


def frontier_of(rows) -> pd.DataFrame:
    """A hand-made frontier: rows of (tok/s, $/M, gpus, pp, attention_dp, ep), fastest first, 1-D TP over the GPUs."""
    frame = pd.DataFrame(rows, columns=["tokens_per_second", "usd_per_million_tokens", "gpus", "pp", "attention_dp",
                                        "ep"])
    frame["tp_rows"] = 1
    frame["tp_cols"] = frame["gpus"] // frame["pp"]
    return frame


class TestRepresentatives:
    def test_a_more_complex_near_tie_folds_into_the_simpler_one(self):
        """EP 2 at 100.5 tok/s, $10.05 is within 1 % of EP 1 at 100, $10 on both axes (0.5 %): it folds into it."""
        points = frontier_of([(100.5, 10.05, 8, 1, 0, 2), (100.0, 10.0, 8, 1, 0, 1)])
        assert list(representatives(points, 0.01)) == [1, 1]
        assert list(stands_for(points, 0.01)) == [0, 2]

    def test_the_simpler_point_is_never_folded_into_the_complex_one(self):
        """The same pair with the EP 2 point simpler-looking in speed: EP 1 stays, whatever EP 2 does."""
        points = frontier_of([(100.0, 10.0, 8, 1, 0, 1), (99.5, 9.96, 8, 1, 0, 2)])
        # EP 2 is 0.5 % slower and 0.4 % cheaper: within 1 % of EP 1, so it folds; EP 1 has nothing simpler.
        assert list(shown(points, 0.01)) == [True, False]

    def test_a_gap_just_over_the_tolerance_on_one_axis_keeps_the_point(self):
        """16 GPUs at 61.5 tok/s, $9.149 against 8 GPUs at 61.1, $8.703: 0.65 % slower, cheaper: folds at 1 %.
        Against 8 GPUs at 60.8 (1.14 % slower) it stays: the speed gap is over 1 %."""
        near = frontier_of([(61.5, 9.149, 16, 1, 1, 2), (61.1, 8.703, 8, 1, 0, 1)])
        far = frontier_of([(61.5, 9.149, 16, 1, 1, 2), (60.8, 8.703, 8, 1, 0, 1)])
        assert list(shown(near, 0.01)) == [False, True]
        assert list(shown(far, 0.01)) == [True, True]

    def test_runs_of_one_layout_never_thin_each_other(self):
        """Consecutive batches of one layout are 0.1 % apart but none is simpler than another: all stay."""
        points = frontier_of([(100.0, 10.0, 8, 1, 0, 1), (99.9, 9.99, 8, 1, 0, 1), (99.8, 9.98, 8, 1, 0, 1)])
        assert shown(points, 0.01).all()

    def test_zero_tolerance_shows_every_point_of_a_strict_frontier(self):
        points = frontier_of([(100.5, 10.05, 8, 1, 0, 2), (100.0, 10.0, 8, 1, 0, 1)])
        assert shown(points, 0.0).all()

    def test_a_hidden_point_folds_only_into_a_shown_one(self):
        """A chain 0.8 % apart: C (most complex) is within 1 % of B but B folds into A; C is 1.6 % from A, so C stays
        rather than folding into a hidden point."""
        points = frontier_of([(101.6, 10.16, 16, 2, 0, 1), (100.8, 10.08, 16, 1, 0, 1), (100.0, 10.0, 8, 1, 0, 1)])
        assert list(representatives(points, 0.01)) == [0, 2, 2]


@pytest.fixture(scope="module")
def points():
    """The issue's example: DeepSeek-V3 on H200, 8-bit weights, isl 8,000 / osl 1,000 (617 exact points under the
    engine's limits and pipeline physics; 1,935 before, most of them TP 8 x PP 61)."""
    return api.frontier("deepseek-v3", "h200", engine="generic", weight_bits=8, isl=8000, osl=1000).points


class TestOnARealFrontier:
    def test_every_hidden_point_is_within_the_tolerance_of_a_simpler_shown_point(self, points):
        rep = representatives(points, 0.01)
        hidden = np.flatnonzero(rep != np.arange(len(points)))
        assert len(hidden) > 0 and points["shown"].to_numpy().tolist() == (rep == np.arange(len(points))).tolist()
        speed, cost = points["tokens_per_second"].to_numpy(), points["usd_per_million_tokens"].to_numpy()
        assert (speed[rep[hidden]] >= speed[hidden] * 0.99).all()
        assert (cost[rep[hidden]] <= cost[hidden] * 1.01).all()
        assert (rep[rep] == rep).all()  # representatives are shown points
        simpler = points[["gpus", "pp", "attention_dp", "ep"]].to_numpy().astype(int)
        assert all(tuple(simpler[r]) < tuple(simpler[h]) for h, r in zip(hidden, rep[hidden], strict=True))

    def test_the_default_api_keeps_every_exact_point(self, points):
        # 1051 exact points (617 while an attention-DP replica was capped at max_seqs, not max_seqs per DP rank)
        assert len(points) == 1051 and points["shown"].sum() < len(points)
        assert stands_for(points, 0.01).sum() == len(points)

    def test_tolerance_is_checked(self):
        with pytest.raises(ValueError, match="near_tie_tolerance"):
            api.frontier("llama-3-8b", "h100", engine="generic", near_tie_tolerance=0.9)
