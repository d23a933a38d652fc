"""The result of a search: frontier points as a DataFrame with unit-named columns, plus solver statuses.

Reports and plots only read a ``Frontier``; they never recompute physics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from infecon.formulations.bands import band_factors, pessimistic_factor, problem_regime
from infecon.formulations.latency import SHOWN_PERCENTILES
from infecon.formulations.space import ConfigTable, Problem
from infecon.instances.bands import shipped_bands

# The stable CSV contract: these columns come first, in this order (README, "Output columns").
CONTRACT_COLUMNS = [
    "tokens_per_second", "usd_per_million_tokens", "gpus", "tp", "pp", "ep", "batch", "latency_ms", "utilization",
]


def configuration_frame(table: ConfigTable, indices: Sequence[int]) -> pd.DataFrame:
    """One row per configuration index, with every metric the model computes for it."""
    idx = np.asarray(indices, dtype=np.int64)
    m = table.metrics
    target = m.target
    memory_bound = target.hbm_read_s[idx] >= target.compute_s[idx]
    frame = pd.DataFrame({
        "tokens_per_second": m.tokens_per_second[idx],
        "usd_per_million_tokens": m.usd_per_million_tokens[idx],
        "gpus": m.gpus[idx],
        "tp": table.tp_rows[idx] * table.tp_cols[idx],
        "pp": table.pp[idx],
        "ep": table.ep[idx],
        "batch": table.batch[idx],
        "latency_ms": m.latency_s[idx] * 1e3,
        "utilization": m.utilization[idx],
        "tp_layout": np.where(table.tp_rows[idx] > 1, "2D", "1D"),
        "tp_rows": table.tp_rows[idx],
        "tp_cols": table.tp_cols[idx],
        "attention_dp": table.attention_dp[idx].astype(bool),
        "draft_tokens": table.draft_tokens[idx],
        "drafter_tp_rows": m.drafter_tp_rows[idx],
        "drafter_tp_cols": m.drafter_tp_cols[idx],
        "drafter_pp": m.drafter_pp[idx],
        "total_tokens_per_second": m.total_tokens_per_second[idx],
        "hbm_used_gb_per_gpu": m.hbm_used_bytes_per_gpu[idx] / 1e9,
        "compute_ms": target.compute_s[idx] * 1e3,
        "hbm_read_ms": target.hbm_read_s[idx] * 1e3,
        "network_ms": target.network_s[idx] * 1e3,
        "collective_latency_ms": target.collective_latency_s[idx] * 1e3,
        "kernel_latency_ms": target.kernel_latency_s[idx] * 1e3,
        "step_bound": np.where(memory_bound, "memory", "compute"),
        "config_index": idx,
    })
    for column, values in serving_columns(m, idx, table.problem.constraints.slo_percentile).items():
        frame[column] = values
    for column, values in band_columns(table.problem, frame).items():
        frame[column] = values
    return frame.reset_index(drop=True)


BAND_COLUMNS = ("tokens_per_second_low", "tokens_per_second_high", "usd_per_million_tokens_low",
                "usd_per_million_tokens_high", "extrapolated")


CONFIDENCE_COLUMNS = ("confidence", "tokens_per_second_predicted", "usd_per_million_tokens_predicted")


def band_columns(problem: Problem, points: pd.DataFrame) -> dict[str, np.ndarray]:
    """The 80 % band of each point's speed and cost, and why it is extrapolated (``formulations/bands.py``).

    At a ``confidence`` the points' speed and cost are already the pessimistic ones; the model's own
    prediction is added (``*_predicted``) and the band is around it.
    """
    if len(points) == 0:
        columns = BAND_COLUMNS + (CONFIDENCE_COLUMNS if problem.confidence is not None else ())
        return {c: (pd.Series([], dtype=str) if c == "extrapolated" else np.zeros(0)) for c in columns}
    table = problem.bands or shipped_bands()
    regime = problem_regime(table, problem, pp=points["pp"].to_numpy(), batch=points["batch"].to_numpy(),
                            attention_dp=points["attention_dp"].to_numpy())
    low, high = band_factors(regime)
    speed = points["tokens_per_second"].to_numpy(dtype=float)
    cost = points["usd_per_million_tokens"].to_numpy(dtype=float)
    extra = {}
    if problem.confidence is not None:
        factor = pessimistic_factor(regime, problem.confidence)
        speed, cost = speed / factor, cost * factor
        extra = {"confidence": np.full(len(points), problem.confidence), "tokens_per_second_predicted": speed,
                 "usd_per_million_tokens_predicted": cost}
    return {"tokens_per_second_low": speed * low, "tokens_per_second_high": speed * high,
            "usd_per_million_tokens_low": cost / high, "usd_per_million_tokens_high": cost / low,
            "extrapolated": extrapolated_column(regime.reasons, points.index), **extra}


def extrapolated_column(reasons, index) -> pd.Series:
    """The reasons as a string column, missing (an empty CSV cell) where nothing is extrapolated."""
    return pd.Series([str(r) if r else None for r in reasons], index=index, dtype=str)


SERVING_COLUMNS = {"ttft_ms": ("ttft_s", 1e3), "tpot_ms": ("tpot_s", 1e3),
                   "usd_per_million_input_tokens": ("usd_per_million_input_tokens", 1.0),
                   "blended_usd_per_million_tokens": ("blended_usd_per_million_tokens", 1.0),
                   "engine_overhead_ms": ("engine_overhead_s", 1e3), "prefill_ms": ("prefill_s", 1e3)}


def percentile_column(kind: str, percentile: float) -> str:
    """``ttft_p99_ms``: the column of TTFT or TPOT at a percentile of requests (``p99.9`` keeps its decimal)."""
    return f"{kind}_p{percentile:g}_ms"


def serving_columns(metrics, idx, slo_percentile: float | None = None) -> dict[str, np.ndarray]:
    """The serving model's extra columns (TTFT, TPOT, input and blended prices), when it produced the metrics.

    Then ``ttft_p50_ms`` ... ``tpot_p99_ms`` (``latency.SHOWN_PERCENTILES`` of requests under Poisson arrivals,
    ``latency.py``), those at ``slo_percentile`` if it is another, and ``requests_per_s``, the offered load
    per instance that holds the batch in flight.
    """
    if getattr(metrics, "ttft_s", None) is None:
        return {}
    columns = {column: np.asarray(getattr(metrics, name), dtype=float)[idx] * scale
               for column, (name, scale) in SERVING_COLUMNS.items()}
    shown = sorted({*map(float, SHOWN_PERCENTILES), *([] if slo_percentile is None else [float(slo_percentile)])})
    for percentile in shown:
        columns[percentile_column("ttft", percentile)] = metrics.ttft_at(percentile, idx) * 1e3
    for percentile in shown:
        columns[percentile_column("tpot", percentile)] = metrics.tpot_at(percentile, idx) * 1e3
    columns["requests_per_s"] = np.asarray(metrics.requests_per_second, dtype=float)[idx]
    return columns


def cheapest_row_at_least(points: pd.DataFrame, tokens_per_second: float) -> int | None:
    """Position of the cheapest frontier point at least this fast per request, or None if none is.

    On an exact frontier this is the cheapest deployment meeting the speed, so sweeps and planning
    runs need no solve of their own.
    """
    fast_enough = np.flatnonzero(points["tokens_per_second"].to_numpy(dtype=float) >= tokens_per_second)
    if len(fast_enough) == 0:
        return None
    cost = points["usd_per_million_tokens"].to_numpy(dtype=float)
    return int(fast_enough[np.argmin(cost[fast_enough])])


@dataclass(frozen=True)
class Frontier:
    """Non-dominated configurations, fastest first.

    ``points`` holds one row per point (``CONTRACT_COLUMNS`` first); ``statuses`` is the solver
    status of each point (``"OPTIMAL"`` for a proven optimum; the enumeration is exact by
    construction); ``complete`` is False when a time limit stopped the search, in which case the
    points are a prefix of the frontier and the caller must say so.
    """

    problem: Problem
    backend: str
    points: pd.DataFrame
    statuses: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    complete: bool = True
    solves: int = 0
    near_tie_tolerance: float | None = None  # set when ``points`` has its ``shown`` column (``solver.thinning``)

    def __len__(self) -> int:
        return len(self.points)

    def with_shown(self, tolerance: float) -> Frontier:
        """This frontier with a ``shown`` column: False for near-ties a simpler deployment stands for
        (``solver.thinning``); every exact point stays."""
        from infecon.solver.thinning import shown

        points = self.points.assign(shown=shown(self.points, tolerance))
        return dataclasses.replace(self, points=points, near_tie_tolerance=tolerance)

    def layouts(self) -> list[tuple[int, ...]]:
        """The points as (tp_rows, tp_cols, pp, ep, attention_dp, batch, draft_tokens) tuples, for comparisons."""
        cols = ["tp_rows", "tp_cols", "pp", "ep", "attention_dp", "batch", "draft_tokens"]
        return [tuple(int(v) for v in row) for row in self.points[cols].itertuples(index=False)]
