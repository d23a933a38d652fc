"""Attention data parallelism as a decision of the search, end to end: frontier, explain and the command line.

DeepSeek-V3 (MLA) under a serving engine at a long context: split by heads, every TP rank holds the whole
latent KV cache; data-parallel, the cache splits by sequence. The cases are small (8 GPUs) so that each
frontier takes about a second.
"""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from infecon.formulations.errors import InstanceError
from infecon.formulations.space import tabulate
from infecon.solver import api
from infecon.solver.cli import main
from infecon.solver.enumeration import pareto_indices
from infecon.solver.frontier import cheapest_row_at_least, configuration_frame

# 8 H200s hold DeepSeek-V3 in 8 bits (83.9 GB of 141 GB per GPU); isl 8,000 + osl 1,000 decode at context 8,500.
# Without the engine's limits (all of HBM, no cap on sequences, PP 1 only: 61 layers split evenly only at PP 1
# or 61), the case these tests were written for; engine limits have their own tests (test_engine_limits.py).
NO_LIMITS = dict(memory_fraction=1.0, max_seqs=10**9, max_pp=1)
CASE = dict(engine="generic", isl=8000, osl=1000, weight_bits=8, kv_bits=8, max_gpus=8, **NO_LIMITS)


@pytest.fixture(scope="module")
def frontiers():
    """The case's frontier with both shardings searched (auto) and with heads only (off)."""
    return {mode: api.frontier("deepseek-v3", "h200", attention_dp=mode, **CASE) for mode in ("auto", "off")}


class TestAttentionDpOnTheFrontier:
    def test_data_parallel_attention_wins_the_cheap_end(self, frontiers):
        """Every data-parallel point is strictly cheaper than anything heads-only reaches at its speed.

        By heads 191 sequences fit (``tests/formulations/test_space.py``: the 298.7 MB latent cache of each
        is on all 8 GPUs), so the heads-only frontier ends at batch 191; data-parallel attention holds 1,260,
        and its cheapest point costs about a third of the heads-only cheapest.
        """
        auto, off = frontiers["auto"].points, frontiers["off"].points
        data = auto[auto["attention_dp"]]
        assert len(data) > 0 and not off["attention_dp"].any()
        for _, row in data.iterrows():
            k = cheapest_row_at_least(off, row["tokens_per_second"])
            assert k is None or off["usd_per_million_tokens"].iloc[k] > row["usd_per_million_tokens"]
        assert int(off["batch"].max()) == 191 and int(data["batch"].max()) == 1260
        assert auto["usd_per_million_tokens"].min() < 0.4 * off["usd_per_million_tokens"].min()

    def test_off_is_the_heads_only_frontier(self, frontiers):
        """--attention-dp off equals the Pareto set of the heads layouts of the whole (auto) table, number for number:
        adding the data-parallel layouts changes no heads configuration's metrics."""
        problem = frontiers["auto"].problem
        table = tabulate(problem)
        heads = configuration_frame(table, pareto_indices(table, ~table.attention_dp))
        off = frontiers["off"].points
        # canonical indices count the data layouts too; "shown" (thinning) depends on the other points
        columns = [c for c in off.columns if c not in ("config_index", "shown")]
        pd.testing.assert_frame_equal(off[columns], heads[columns], check_exact=True)

    def test_off_reproduces_the_frontier_before_attention_dp_was_searched(self):
        """DeepSeek-V3 on H100s (generic engine, isl 8,000 / osl 1,000, 8-bit), heads only: the points faster than
        87.404 tok/s that the search gave before attention data parallelism was a choice (main at dab372b; all PP 1,
        which the pipeline physics of issue 18 leaves as it was). The rest of that frontier was TP 8 x PP 61 on 488
        GPUs, which engines do not run (engine limits, ``test_engine_limits.py``)."""
        points = api.frontier("deepseek-v3", "h100", engine="generic", isl=8000, osl=1000, weight_bits=8,
                              kv_bits=8, attention_dp="off", **NO_LIMITS).points
        fast = points[points["tokens_per_second"] > 87.40398378583144]
        assert len(fast) == 3 and set(fast["pp"]) == {1}
        assert fast["tokens_per_second"].iloc[0] == pytest.approx(108.48075293403456, rel=1e-12)
        assert fast["usd_per_million_tokens"].iloc[-1] == pytest.approx(30.5835328942267, rel=1e-12)
        assert (int(fast["batch"].sum()), int(fast["gpus"].sum())) == (6, 48)


class TestExplainAttention:
    def test_data_parallel_attention_halves_the_all_reduces_and_shrinks_the_cache(self):
        """TP 8, batch 128: data-parallel attention drops one of the two all-reduces per layer (exactly half the
        network and collective-latency time) and needs 23.46 GB less HBM per GPU.

        Heads: 83.88 GB of weights + 128 x 298.72 MB = 122.11 GB. Data: 93.86 GB (weights plus 7/8 of the 11.41 GB
        of attention weights) + 128 x 37.39 MB = 98.65 GB.
        """
        layout = dict(tp=8, batch=128, **CASE)
        heads = api.explain("deepseek-v3", "h200", attention_dp="off", **layout)
        data = api.explain("deepseek-v3", "h200", attention_dp="on", **layout)
        assert (heads.attention_dp, data.attention_dp) == (False, True)
        for term in ("network_s", "collective_latency_s"):
            assert float(getattr(data.metrics.target, term)) == pytest.approx(
                0.5 * float(getattr(heads.metrics.target, term)), rel=1e-12)
        assert int(heads.metrics.hbm_used_bytes_per_gpu) == pytest.approx(122.114e9, rel=1e-5)
        assert int(data.metrics.hbm_used_bytes_per_gpu) == pytest.approx(98.651e9, rel=1e-5)
        assert float(data.metrics.latency_s) < float(heads.metrics.latency_s)

    def test_auto_shows_the_sharding_the_search_keeps(self):
        """auto: the faster of the two at this layout and batch (here data-parallel), and says so."""
        expl = api.explain("deepseek-v3", "h200", tp=8, batch=128, **CASE)
        assert expl.attention_dp and expl.attention_choice.startswith("auto: faster than heads")

    def test_one_gpu_or_a_non_mla_model_has_no_choice(self):
        """TP 1 has no group to split attention over; for Llama's GQA the option would change nothing, so asking for
        it is refused (issue 21: no option accepted and ignored)."""
        assert not api.explain("deepseek-v3", "h200", tp=1, engine="generic", attention_dp="on").attention_dp
        with pytest.raises(InstanceError, match="'attention_dp' 'on' changes nothing here"):
            api.explain("llama-3-70b", "h100", tp=8, engine="generic", attention_dp="on")


class TestCommandLine:
    def test_frontier_csv_has_the_attention_dp_column(self, tmp_path, capsys):
        """--attention-dp on: every point with TP > 1 is data-parallel, in a boolean column attention_dp."""
        out = tmp_path / "f.csv"
        args = ["frontier", "--model", "deepseek-v3", "--hardware", "h200", "--engine", "generic", "--isl", "8000",
                "--osl", "1000", "--weight-bits", "8", "--kv-bits", "8", "--max-gpus", "8"]
        assert main([*args, "--attention-dp", "on", "--csv", str(out)]) == 0
        points = pd.read_csv(out)
        assert points["attention_dp"].dtype == bool and points["attention_dp"][points["tp"] > 1].all()
        assert "attn" in capsys.readouterr().out

    def test_explain_prints_the_sharding(self, capsys):
        """explain says how attention is split and why (auto's choice)."""
        code = main(["explain", "--model", "deepseek-v3", "--hardware", "h200", "--engine", "generic", "--isl",
                     "8000", "--osl", "1000", "--weight-bits", "8", "--kv-bits", "8", "--tp", "8", "--batch", "128"])
        out = capsys.readouterr().out
        assert code == 0 and "attention: data-parallel over the TP group" in out and "[auto: faster" in out

    def test_help_teaches_what_it_is_and_where_it_applies(self, capsys):
        """frontier --help names the option, its values, what it does and where it applies."""
        with pytest.raises(SystemExit):
            main(["frontier", "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--attention-dp {auto,on,off}" in text
        assert "MLA models" in text and "split by sequence" in text

    def test_a_bad_value_is_one_line(self, capsys):
        """An unknown value exits 2 naming the option and its choices."""
        with pytest.raises(SystemExit) as exit_info:
            main(["frontier", "--model", "deepseek-v3", "--attention-dp", "maybe"])
        assert exit_info.value.code == 2
        assert "--attention-dp" in capsys.readouterr().err


def test_layouts_lists_the_attention_sharding():
    """api.layouts shows the attention_dp column (bool) alongside the degrees."""
    frame = api.layouts("deepseek-v3", "h200", **CASE)
    assert frame["attention_dp"].dtype == bool and frame["attention_dp"].any()
    assert np.array_equal(frame.columns, ["tp_rows", "tp_cols", "pp", "ep", "attention_dp"])


def test_sweep_text_names_data_parallel_attention():
    """A sweep's deployment text says ``attention DP`` after EP where the point runs it, nothing otherwise."""
    from infecon.solver.sweeps import layout_text

    row = {"tp_rows": 1, "tp_cols": 8, "pp": 1, "ep": 1, "batch": 128, "attention_dp": True}
    assert layout_text(row, speculative=False) == "TP 8 PP 1 EP 1 attention DP batch 128"
    assert layout_text({**row, "attention_dp": False}, speculative=False) == "TP 8 PP 1 EP 1 batch 128"


LIMITED = dict(CASE, max_seqs=16, batch_mode="ladder")  # the case with an engine cap of 16 sequences per scheduler


class TestSequenceCapPerDataParallelRank:
    """Issue 21: engines cap running sequences per scheduler, one per attention-DP rank (vLLM: a DP rank is an
    engine core; TensorRT-LLM: max_batch_size per attention-DP rank; SGLang: each DP worker's pool), so an
    attention-DP replica of TP 8 runs up to 8 x max_seqs sequences (``space.sequence_caps``); it was max_seqs."""


    def test_caps_per_layout(self):
        from infecon.formulations.space import searched_layouts, sequence_caps

        problem = api.build_problem("deepseek-v3", "h200", **LIMITED)
        layouts = searched_layouts(problem)
        caps = sequence_caps(problem, layouts)
        ranks = np.where(layouts[:, 4] == 1, layouts[:, 0] * layouts[:, 1], 1)
        assert (caps == 16 * ranks).all() and (layouts[:, 4] == 1).any()
        uncapped = dataclasses.replace(problem, space=dataclasses.replace(problem.space, max_seqs=None))
        assert sequence_caps(uncapped, layouts) is None

    def test_the_frontier_runs_the_dp_ranks_full(self):
        """With max_seqs 16, data-parallel points run up to 128 sequences on TP 8 (the cheap end uses more than
        16); by heads none runs more than 16. The table's max_seqs rule agrees point by point."""
        problem = api.build_problem("deepseek-v3", "h200", **LIMITED)
        points = api.frontier(problem, None).points
        data, heads = points[points["attention_dp"]], points[~points["attention_dp"]]
        assert (data["batch"] <= 16 * data["tp_rows"] * data["tp_cols"]).all()
        assert (data["batch"] > 16).any()
        assert (heads["batch"] <= 16).all()
        table = tabulate(problem)
        ranks = np.where(table.attention_dp, table.tp_rows * table.tp_cols, 1)
        np.testing.assert_array_equal(table.violations["max_seqs"], table.batch > 16 * ranks)

    def test_the_enumeration_equals_the_whole_table(self):
        """Every integer batch to 8 x 16: the enumeration (its per-layout cap on what it walks) is the table's."""
        problem = api.build_problem("deepseek-v3", "h200", **{**LIMITED, "batch_mode": "all"})
        table = tabulate(problem)
        expected = configuration_frame(table, pareto_indices(table))
        pd.testing.assert_frame_equal(api.frontier(problem, None, backend="enumerate").points.drop(columns="shown"),
                                      expected)

    def test_explain_applies_the_cap_of_its_sharding(self):
        """TP 8, batch 100, max_seqs 16: within 16 x 8 data-parallel; by heads the engine caps it at 16."""
        kwargs = dict(CASE, max_seqs=16)
        ok = api.explain("deepseek-v3", "h200", tp_cols=8, batch=100, **{**kwargs, "attention_dp": "on"})
        assert ok.rule_violation is None and ok.attention_dp
        heads = api.explain("deepseek-v3", "h200", tp_cols=8, batch=100, **{**kwargs, "attention_dp": "off"})
        assert heads.rule_violation.startswith("max_seqs: a batch of 100 exceeds the engine's cap of 16 running")
        auto = api.explain("deepseek-v3", "h200", tp_cols=8, batch=100, **kwargs)
        assert auto.attention_dp and auto.rule_violation is None and "the only sharding" in auto.attention_choice
        over = api.explain("deepseek-v3", "h200", tp_cols=8, batch=200, **{**kwargs, "attention_dp": "on"})
        assert over.rule_violation.startswith("max_seqs: a batch of 200 exceeds the engine's cap of 128 running "
                                              "sequences per replica (16 per attention-DP rank x 8 ranks)")

    @pytest.mark.parametrize("backend", ["milp", "cpsat"])
    def test_the_solver_backends_bound_the_batch_alike(self, backend):
        """The encodings' batch ranges (``relaxation``) take the same per-layout cap: the same 21 points as the
        enumeration (14 when every replica was capped at 16)."""
        from infecon.solver.epsilon import trace_frontier

        problem = api.build_problem("deepseek-v3", "h200", **LIMITED)
        expected, found = trace_frontier(problem, "enumerate"), trace_frontier(problem, backend)
        assert found.layouts() == expected.layouts() and len(expected) == 21
