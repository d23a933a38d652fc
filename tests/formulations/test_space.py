"""The search space: which layouts a problem searches, attention shardings included, and the HBM rule per layout."""

import numpy as np
import pytest

from infecon.formulations.errors import InstanceError
from infecon.formulations.space import (
    BatchAxis,
    SearchSpace,
    as_layouts,
    attention_dp_choices,
    batches_within_hbm,
    candidate_layouts,
    largest_batch,
    searched_layouts,
)
from infecon.solver import api

# All of HBM and no cap on sequences: the hand calculations below are about how attention shards, not engine limits.
DEEPSEEK_SERVING = dict(engine="generic", isl=8000, osl=1000, weight_bits=8, kv_bits=8, max_gpus=64,
                        memory_fraction=1.0, max_seqs=10**9)


def _problem(model="deepseek-v3", hardware="h200", **kwargs):
    return api.build_problem(model, hardware, **{**DEEPSEEK_SERVING, **kwargs})


class TestSearchedLayouts:
    def test_mla_under_an_engine_searches_both_shardings_where_tp_splits(self):
        """DeepSeek-V3 under an engine: each layout with TP > 1 twice (heads, then data-parallel), TP 1 once."""
        problem = _problem()
        heads = candidate_layouts(problem.model, problem.hardware, problem.space)
        both = searched_layouts(problem)
        assert attention_dp_choices(problem) == (False, True)
        assert not heads[:, 4].any()
        multi = heads[:, 0] * heads[:, 1] > 1
        assert len(both) == len(heads) + multi.sum()
        assert (both[:, 4] == 1).sum() == multi.sum()
        # Canonical order: the two shardings of a layout are neighbours, heads first (ties resolve to heads).
        data = np.flatnonzero(both[:, 4] == 1)
        assert (both[data - 1, :4] == both[data, :4]).all() and (both[data - 1, 4] == 0).all()

    def test_on_keeps_only_data_parallel_attention_where_it_applies(self):
        """--attention-dp on: every layout with TP > 1 is data-parallel; a single GPU has no TP group to split."""
        layouts = searched_layouts(_problem(attention_dp="on"))
        tp = layouts[:, 0] * layouts[:, 1]
        assert (layouts[tp > 1, 4] == 1).all() and (layouts[tp == 1, 4] == 0).all()

    @pytest.mark.parametrize(("model", "kwargs"), [
        ("deepseek-v3", dict(attention_dp="off")),
        ("deepseek-v3", dict(engine="paper")),  # the paper's even split: nothing to choose
        ("deepseek-v3", dict(engine=None, isl=None, osl=None, context_tokens=8500)),
        ("llama-3-70b", dict()),  # not MLA: engines' heads, as before (asking for "on" is refused: build_problem)
    ])
    def test_no_choice_leaves_the_layouts_as_they_were(self, model, kwargs):
        """Heads only (or the paper's split) for --attention-dp off, the paper's model and non-MLA models."""
        problem = _problem(model, **kwargs)
        assert attention_dp_choices(problem) == (False,)
        np.testing.assert_array_equal(searched_layouts(problem),
                                      candidate_layouts(problem.model, problem.hardware, problem.space))

    def test_an_unknown_mode_is_refused_naming_the_field(self):
        """'attention_dp' must be auto, on or off; the message names the field, the rule and the value."""
        with pytest.raises(InstanceError, match="'attention_dp' must be one of auto, on, off"):
            SearchSpace(attention_dp="yes")

    def test_four_column_layouts_are_by_heads(self):
        """Layout rows without the attention flag (callers written before it existed) are read as heads."""
        np.testing.assert_array_equal(as_layouts([(1, 8, 1, 1)]), [[1, 8, 1, 1, 0]])


class TestHbmRulePerLayout:
    def test_each_sharding_holds_its_own_batch(self):
        """DeepSeek-V3 (8-bit) on 8 H200s at context 8,500: 191 sequences fit by heads, 1,260 data-parallel.

        Weights: 671.03e9 B / 8 = 83.88 GB per GPU, so 141 - 83.88 = 57.12 GB are left.
        Heads: MLA's latent cache (576 elements x 61 layers = 35,136 B per token) is whole on every rank:
        8,500 x 35,136 = 298.66 MB per sequence, plus 61 KB of live activations ((14,336 + 129,280 / 8) x 2 B):
        57.12 GB / 298.72 MB = 191.2 -> 191.
        Data: attention weights (11.41e9) whole on every rank add 7/8 x 11.41 = 9.99 GB (room 47.14 GB);
        the cache splits by sequence, 298.66 / 8 = 37.33 MB + 61 KB per sequence: 47.14 GB / 37.39 MB = 1,260.
        Integer rules, so exact.
        """
        problem = _problem(max_gpus=8)
        layouts = np.array([[1, 8, 1, 1, 0], [1, 8, 1, 1, 1]])
        assert largest_batch(problem, layouts[:1]) == 191
        assert largest_batch(problem, layouts) == 1260
        axis = BatchAxis.of(problem, layouts)
        np.testing.assert_array_equal(batches_within_hbm(problem, layouts, axis), [191, 1260])
