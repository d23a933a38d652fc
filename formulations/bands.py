"""An error band on every prediction: how far measured speed has fallen from the model's, by regime.

The band is empirical. ``scripts/fit_bands.py`` predicts each measured row with a profile fitted
without the row's group (leave-one-group-out, so the residuals are those of an unseen deployment),
takes r = log(measured / predicted) per-user tokens/s, and stores the quantiles of r per engine
profile (``instances/bands/bands.toml``, with the rows in ``residuals.csv``). A prediction p is then
inside the band [p exp(q_0.1), p exp(q_0.9)] for 80 % of deployments like the measured ones.

Outside the measured domain the band widens, by one documented rule: each way the configuration
leaves it (hardware the engine was not measured on, a model architecture the data lacks, PP > 1,
attention data parallelism, a batch past the largest measured) adds an independent log-normal error
of width sigma (``Widening``; each sigma and where it comes from is in the table), so every quantile's
distance from the median grows in quadrature: d'_p = sign(d_p) sqrt(d_p^2 + (z_p sigma)^2), with
z_p the standard normal quantile. This is exact when both errors are normal and keeps the empirical
shape (skew, tails) where nothing is extrapolated. A batch B past the largest measured batch B_max
adds sigma_batch x log2(B / B_max).

Cost per output token is GPU time per token, so it moves inversely to speed at a fixed layout and
batch: cost_low = cost / (speed factor at 0.9), cost_high = cost / (speed factor at 0.1). TPOT and
TTFT take the same factor as speed (the data has too few TTFT rows for a band of their own).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

BAND_LEVEL = 0.8  # the band every prediction carries: from the 10th to the 90th percentile of measured / predicted
LEVELS = tuple(round(0.05 * k, 2) for k in range(1, 20))  # quantile levels stored per engine: 0.05 ... 0.95
CONFIDENCE_RANGE = (0.5, 0.95)  # --confidence: beyond 0.95 the quantiles would rest on one or two rows


def fit_quantiles(residuals: np.ndarray) -> tuple[float, ...]:
    """The quantiles of log residuals at ``LEVELS`` (numpy's linear interpolation between order statistics)."""
    values = np.asarray(residuals, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        raise ValueError("a band needs at least two residuals")
    return tuple(float(q) for q in np.quantile(values, LEVELS))


def robust_sigma(residuals: np.ndarray) -> float:
    """The spread of residuals as a normal's sigma: the 10th-90th percentile range over 2 z_0.9 (robust to tails)."""
    q10, q90 = np.quantile(np.asarray(residuals, dtype=float), [0.1, 0.9])
    return float((q90 - q10) / (2 * NormalDist().inv_cdf(0.9)))


@dataclass(frozen=True)
class EngineBand:
    """One engine profile's residual quantiles and the domain its rows cover."""

    name: str
    rows: int
    quantiles: tuple[float, ...]  # log(measured / predicted) at LEVELS
    hardware: tuple[str, ...]  # HardwareSpec names measured
    architectures: tuple[str, ...]  # ``architecture`` of the models measured
    batch_max: int  # largest per-instance batch measured
    pp_max: int = 1
    attention_dp: bool = False  # any row ran attention data-parallel


@dataclass(frozen=True)
class Widening:
    """Log-normal widths added (in quadrature) where a configuration leaves the measured domain."""

    hardware: float  # hardware the engine's rows never ran on
    architecture: float  # a model architecture (attention kind x dense/MoE) no row ran
    pp: float  # PP deeper than any row
    attention_dp: float  # attention data parallelism where no row ran it
    batch_per_doubling: float  # per doubling of the batch past the largest measured


@dataclass(frozen=True)
class BandTable:
    engines: dict[str, EngineBand]
    widening: Widening
    fallback: str = "generic"  # the band of an engine profile the table does not know


def architecture(model) -> str:
    """``standard-dense``, ``mla-moe``, ...: what a model's kernels and weight reads differ by."""
    return f"{model.attention}-{'moe' if model.is_moe else 'dense'}"


def _interpolate(quantiles: tuple[float, ...], level: float) -> float:
    return float(np.interp(level, LEVELS, quantiles))


@dataclass(frozen=True)
class Regime:
    """Where a set of configurations sits: its engine's band, the extra width (per configuration) and why."""

    band: EngineBand
    sigma: np.ndarray  # extra log-normal width per configuration
    reasons: np.ndarray  # per configuration: empty, or '; '-joined reasons


def regime(table: BandTable, engine_name: str, hardware_name: str, arch: str, *, pp, batch,
           attention_dp=False, reasons: bool = True) -> Regime:
    """The band and the extrapolation of each configuration (arrays ``pp``, ``batch``, ``attention_dp``).

    ``reasons`` False skips the per-configuration text (a search tabulating millions only needs the widths).
    """
    pp = np.atleast_1d(np.asarray(pp, dtype=np.int64))
    batch = np.atleast_1d(np.asarray(batch, dtype=float))
    n = int(np.broadcast(pp, batch).size)
    pp, batch = np.broadcast_to(pp, n), np.broadcast_to(batch, n)
    data = np.broadcast_to(np.asarray(attention_dp, dtype=bool), n)
    w = table.widening
    fixed: list[str] = []
    variance = 0.0
    band = table.engines.get(engine_name)
    if band is None:
        band = table.engines[table.fallback]
        fixed.append(f"engine '{engine_name}' unmeasured ({table.fallback}'s band)")
    if hardware_name not in band.hardware:
        fixed.append(f"{band.name} unmeasured on {hardware_name}")
        variance += w.hardware ** 2
    if arch not in band.architectures:
        fixed.append(f"{arch} models unmeasured")
        variance += w.architecture ** 2
    sigma2 = np.full(n, variance)
    texts = np.full(n, "; ".join(fixed), dtype=object)
    deep = pp > band.pp_max
    sigma2 = sigma2 + np.where(deep, w.pp ** 2, 0.0)
    dp = data & (not band.attention_dp)
    sigma2 = sigma2 + np.where(dp, w.attention_dp ** 2, 0.0)
    doublings = np.log2(np.maximum(batch / band.batch_max, 1.0))
    sigma2 = sigma2 + (w.batch_per_doubling * doublings) ** 2
    for i in np.flatnonzero(deep | dp | (doublings > 0)) if reasons else ():
        extra = [f"pp>{band.pp_max} unmeasured"] if deep[i] else []
        if dp[i]:
            extra.append("attention-dp unmeasured")
        if doublings[i] > 0:
            extra.append(f"batch {batch[i] / band.batch_max:.3g}x past measured ({band.batch_max})")
        texts[i] = "; ".join([r for r in (texts[i],) if r] + extra)
    return Regime(band, np.sqrt(sigma2), texts)


def log_factor(rg: Regime, level: float) -> np.ndarray:
    """log(measured / predicted) speed at quantile ``level``, widened by the regime (the rule above)."""
    median = _interpolate(rg.band.quantiles, 0.5)
    d = _interpolate(rg.band.quantiles, level) - median
    z = NormalDist().inv_cdf(level)
    return median + np.sign(z if d == 0 else d) * np.sqrt(d * d + (z * rg.sigma) ** 2)


def band_factors(rg: Regime, level: float = BAND_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) speed factors of the central ``level`` band: measured / predicted at its two ends."""
    tail = (1 - level) / 2
    return np.exp(log_factor(rg, tail)), np.exp(log_factor(rg, 1 - tail))


def pessimistic_factor(rg: Regime, confidence: float) -> np.ndarray:
    """Speed factor exceeded with probability ``confidence`` (0.9: the band's low end)."""
    return np.exp(log_factor(rg, 1 - confidence))


def problem_regime(table: BandTable, problem, *, pp, batch, attention_dp=False, reasons: bool = True) -> Regime:
    """``regime`` of a ``space.Problem``'s configurations (the paper's model: the ``paper`` band)."""
    engine = problem.engine
    name = "paper" if engine is None or engine.paper else engine.name
    return regime(table, name, problem.hardware.name, architecture(problem.model), pp=pp, batch=batch,
                  attention_dp=attention_dp, reasons=reasons)


def pessimistic_metrics(metrics, factor: np.ndarray):
    """``metrics`` with speed times ``factor`` (< 1: slower) and time and price per token over it."""
    f = np.asarray(factor, dtype=float)
    changes = {"latency_s": metrics.latency_s / f, "tokens_per_second": metrics.tokens_per_second * f,
               "total_tokens_per_second": metrics.total_tokens_per_second * f,
               "usd_per_million_tokens": metrics.usd_per_million_tokens / f}
    for name in ("ttft_s", "tpot_s", "usd_per_million_input_tokens", "blended_usd_per_million_tokens"):
        if getattr(metrics, name, None) is not None:
            changes[name] = getattr(metrics, name) / f
    if getattr(metrics, "spread", None) is not None:  # TTFT and TPOT percentiles stretch like the means
        changes["spread"] = metrics.spread.stretched(f)
    return dataclasses.replace(metrics, **changes)


def check_confidence(value, label: str = "'confidence'") -> float:
    """A confidence in ``CONFIDENCE_RANGE``, or ValueError naming the rule."""
    low, high = CONFIDENCE_RANGE
    if isinstance(value, bool) or not isinstance(value, int | float) or not (low <= value <= high) \
            or math.isnan(value):
        raise ValueError(f"{label} must be a number in [{low}, {high}] (the band's quantiles rest on tens of rows; "
                         f"got {value!r})")
    return float(value)
