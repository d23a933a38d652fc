"""The frontier's runs view: one row per run of consecutive points on one layout."""

from __future__ import annotations

import itertools

from infecon.solver import api
from infecon.solver.reports import format_frontier, run_starts, runs_table


class TestRunsTable:
    """``runs_table`` splits exactly where the layout changes and reads each column at the run's ends."""

    def test_runs_partition_the_frontier_by_layout(self):
        """Runs cover every point once; within a run the layout is one, between runs it changes."""
        frontier = api.frontier("llama-3-70b", "h100", engine="paper", context_tokens=8000, max_batch=512)
        points = frontier.points
        starts = [*run_starts(points), len(points)]
        table = runs_table(frontier)
        assert len(table) == len(starts) - 1 and table["points"].sum() == len(points)
        layout = ["tp_rows", "tp_cols", "pp", "ep"]
        for k, (first, end) in enumerate(itertools.pairwise(starts)):
            run = points.iloc[first:end]
            assert (run[layout].nunique() == 1).all()
            if end < len(points):
                assert tuple(points.iloc[end][layout]) != tuple(run.iloc[-1][layout])
            batches = f"{run['batch'].iloc[0]}-{run['batch'].iloc[-1]}" if len(run) > 1 else str(run["batch"].iloc[0])
            assert table["batch"].iloc[k] == batches
            assert table["tok/s/req"].iloc[k].split("-")[0] == f"{run['tokens_per_second'].iloc[0]:.1f}"
            assert table["GPUs"].iloc[k] == run["gpus"].iloc[0]

    def test_speculative_runs_show_their_draft_lengths(self):
        """With a drafter the draft length is a column, as a span over the run."""
        frontier = api.frontier("llama-3-70b", "h100", draft="llama-3-8b", engine="paper", context_tokens=8000,
                                max_batch=64, max_gpus=8)
        table = runs_table(frontier)
        assert "draft" in table.columns
        text = format_frontier(frontier, runs=True)
        assert f"{len(frontier)} Pareto-optimal configurations in {len(table)} run" in text
