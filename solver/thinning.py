"""Which exact frontier points a person needs to see: near-ties with a simpler deployment are thinned.

Why: an exact frontier at integer batch resolution holds every deployment that is strictly better somewhere,
however slightly. DeepSeek-V3 on H200 alternates EP 1 and EP 2 rows 0.1 % apart; a reader wants the dozen
deployments that matter and the CSV for the rest. A point is *shown* unless a simpler shown deployment is
within ``tolerance`` of it on both axes: at least ``(1 - tolerance)`` times as fast per request and at most
``(1 + tolerance)`` times as expensive. Simpler means a smaller ``complexity_key``: fewer GPUs, then fewer
pipeline stages, then attention split by heads rather than data-parallel, then fewer expert-parallel ranks,
then a 1-D rather than a 2-D TP grid. Points of one layout (different batches only) never thin each other:
their runs are already one row each in the table.

Every hidden point is within ``tolerance`` of the shown point that stands for it (``representative``), as
layouts are decided simplest first and a point is hidden only for a point already shown. Computes nothing of
the physics: it reads the frontier's columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DEFAULT_TOLERANCE = 0.01  # 1 %: the default; ~the run-to-run noise of published serving benchmarks

# Lexicographic order of simplicity (smaller is simpler): the "fewer GPUs, lower PP, no attention-DP",
# then fewer EP ranks (one less kind of parallelism to run) and a 1-D TP group (what engines ship).
COMPLEXITY_COLUMNS = ("gpus", "pp", "attention_dp", "ep", "tp_rows", "tp_cols")


def complexity_key(points: pd.DataFrame) -> np.ndarray:
    """Each point's layout as a row of ``COMPLEXITY_COLUMNS`` (integers; rows compare lexicographically)."""
    return np.column_stack([points[c].to_numpy().astype(np.int64) for c in COMPLEXITY_COLUMNS])


def representatives(points: pd.DataFrame, tolerance: float = DEFAULT_TOLERANCE) -> np.ndarray:
    """For each point, the row of the shown point that stands for it (itself when shown).

    Args:
        points: an exact frontier, fastest first (``Frontier.points``).
        tolerance: the relative gap on speed and on cost below which a simpler deployment stands for a point
            (0.01 = 1 %); 0 hides only exact ties.

    Returns:
        An int64 array of row positions; ``representatives(p) == arange(len(p))`` where every point is shown.
    """
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance!r}")
    n = len(points)
    chosen = np.arange(n, dtype=np.int64)
    if n == 0:
        return chosen
    speed = points["tokens_per_second"].to_numpy(dtype=float)
    cost = points["usd_per_million_tokens"].to_numpy(dtype=float)
    keys = complexity_key(points)
    layouts, layout_of = np.unique(keys, axis=0, return_inverse=True)  # sorted lexicographically: simplest first
    layout_of = layout_of.reshape(-1)
    shown_rows: list[np.ndarray] = []  # per layout decided so far: its shown rows, fastest first
    for layout in range(len(layouts)):
        rows = np.flatnonzero(layout_of == layout)
        rows = rows[np.argsort(-speed[rows], kind="stable")]
        hidden = np.zeros(len(rows), dtype=bool)
        for simpler in shown_rows:
            if len(simpler) == 0:
                continue
            # On a Pareto frontier cost falls with speed, so among the simpler layout's points at least
            # (1 - tolerance) as fast, the slowest is the cheapest: the one to compare with.
            slower_first = simpler[::-1]
            floor = speed[rows] * (1 - tolerance)
            count_fast = len(simpler) - np.searchsorted(speed[slower_first], floor, side="left")
            has_one = count_fast > 0
            candidate = simpler[np.maximum(count_fast - 1, 0)]
            near = has_one & (cost[candidate] <= cost[rows] * (1 + tolerance)) & ~hidden
            chosen[rows[near]] = candidate[near]
            hidden |= near
        shown_rows.append(rows[~hidden])
    return chosen


def shown(points: pd.DataFrame, tolerance: float = DEFAULT_TOLERANCE) -> np.ndarray:
    """A boolean mask: the points the thinned table prints (``representatives`` of themselves)."""
    return representatives(points, tolerance) == np.arange(len(points))


def stands_for(points: pd.DataFrame, tolerance: float = DEFAULT_TOLERANCE) -> np.ndarray:
    """For each point, how many exact points it stands for (0 for a hidden point, >= 1 for a shown one)."""
    return np.bincount(representatives(points, tolerance), minlength=len(points))
