"""The error band (``formulations/bands.py``): coverage on data with known noise, the widening rule, the table."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from infecon.formulations.bands import (
    LEVELS,
    BandTable,
    EngineBand,
    Widening,
    band_factors,
    fit_quantiles,
    pessimistic_factor,
    regime,
)
from infecon.formulations.errors import InstanceError
from infecon.instances.bands import BANDS_DIR, load_bands, shipped_bands

Z90 = NormalDist().inv_cdf(0.9)  # 1.2816


WIDENING = Widening(hardware=0.3, architecture=0.4, pp=0.5, attention_dp=0.5, batch_per_doubling=0.1)


def _table(quantiles, *, batch_max=1000) -> BandTable:
    band = EngineBand("eng", 100, tuple(quantiles), ("GPU A",), ("standard-dense",), batch_max)
    return BandTable({"eng": band}, WIDENING, "eng")


def _coverage(table: BandTable, fresh: np.ndarray, **where) -> float:
    args = {"hardware_name": "GPU A", "arch": "standard-dense", "pp": 1, "batch": 10, **where}
    rg = regime(table, "eng", args.pop("hardware_name"), args.pop("arch"), **args)
    low, high = band_factors(rg)
    ratio = np.exp(fresh)
    return float(np.mean((ratio >= low[0]) & (ratio <= high[0])))


def test_band_covers_80_percent_of_fresh_draws_from_a_skewed_distribution():
    """Residuals with a known, skewed law: normal plus an exponential tail (slower than predicted, as engines are).

    The empirical [q10, q90] of n draws covers a fresh draw with probability F(q90^) - F(q10^), whose standard
    deviation is sqrt(0.16 / n) (order statistics: var 0.09/n each, covariance 0.01/n), 0.023 at n = 300; 20000
    fresh draws add 0.003. Tolerance 0.07 is three of them. Over 20 replicates the mean coverage has standard
    deviation 0.005; its expectation is 0.8 (n - 1) / (n + 1) = 0.795 for interpolated order statistics:
    tolerance 0.02.
    """
    rng = np.random.default_rng(7)

    def draw(n):
        return rng.normal(0.02, 0.12, n) - rng.exponential(0.15, n)

    coverages = []
    for _ in range(20):
        table = _table(fit_quantiles(draw(300)))
        coverages.append(_coverage(table, draw(20000)))
    assert all(abs(c - 0.8) < 0.07 for c in coverages), coverages
    assert abs(np.mean(coverages) - 0.8) < 0.02


def test_widened_band_covers_80_percent_where_the_extra_error_is_as_assumed():
    """Base residuals N(0, 0.2); out of domain (unmeasured hardware) the truth is N(0, sqrt(0.2^2 + 0.3^2)), the
    widening the table states: the widened band covers ~80 % of it (same tolerance reasoning, n = 400)."""
    rng = np.random.default_rng(3)
    table = _table(fit_quantiles(rng.normal(0, 0.2, 400)))
    fresh = rng.normal(0, math.hypot(0.2, 0.3), 20000)
    assert abs(_coverage(table, fresh, hardware_name="GPU B") - 0.8) < 0.06
    assert _coverage(table, fresh) < 0.6  # unwidened, the same band covers far less: the rule matters


def test_factors_by_hand():
    """Quantiles of N(0, 0.2) exactly: q_p = 0.2 z_p. In domain the band is exp(-+0.2 x 1.2816) = 0.7739 / 1.2922.
    PP 2 (sigma 0.5) and 4x past the largest batch (2 doublings x 0.1): extra sigma sqrt(0.25 + 0.04) = 0.5385,
    so the low end is exp(-1.2816 sqrt(0.04 + 0.29)) = exp(-0.7362) = 0.4789."""
    quantiles = [0.2 * NormalDist().inv_cdf(p) for p in LEVELS]
    table = _table(quantiles)
    low, high = band_factors(regime(table, "eng", "GPU A", "standard-dense", pp=[1, 2], batch=[100, 4000]))
    assert low[0] == pytest.approx(math.exp(-0.2 * Z90), rel=1e-9)
    assert high[0] == pytest.approx(math.exp(0.2 * Z90), rel=1e-9)
    assert low[1] == pytest.approx(math.exp(-Z90 * math.sqrt(0.04 + 0.25 + 0.04)), rel=1e-9)
    assert low[1] * high[1] == pytest.approx(1.0, rel=1e-9)  # symmetric residuals, symmetric widening
    # Confidence 0.9 is the 80 % band's low end; 0.7 the 30th percentile: exp(0.2 z_0.3) = exp(-0.1049).
    assert pessimistic_factor(regime(table, "eng", "GPU A", "standard-dense", pp=1, batch=1), 0.9)[0] == \
        pytest.approx(low[0], rel=1e-9)
    assert pessimistic_factor(regime(table, "eng", "GPU A", "standard-dense", pp=1, batch=1), 0.7)[0] == \
        pytest.approx(math.exp(0.2 * NormalDist().inv_cdf(0.3)), rel=1e-6)


def test_reasons_name_each_way_out_of_the_domain():
    table = _table(fit_quantiles(np.linspace(-0.3, 0.2, 50)))
    rg = regime(table, "other", "GPU B", "mla-moe", pp=[1, 4], batch=[10, 4000], attention_dp=[False, True])
    assert "engine 'other' unmeasured" in rg.reasons[0] and "unmeasured on GPU B" in rg.reasons[0]
    assert "mla-moe models unmeasured" in rg.reasons[0] and "pp>1" not in rg.reasons[0]
    assert "pp>1 unmeasured" in rg.reasons[1] and "attention-dp unmeasured" in rg.reasons[1]
    assert "batch 4x past measured (1000)" in rg.reasons[1]
    assert regime(table, "eng", "GPU A", "standard-dense", pp=1, batch=1000).reasons[0] == ""


def test_pessimistic_factor_never_rises_with_the_batch():
    """What keeps the enumeration exact at a confidence (``space._at_confidence``): a layout's factor is flat inside
    the measured range and falls past it, so latency / factor and cost x batch / factor never fall."""
    table = shipped_bands()
    batch = np.arange(1, 100_000, 97)
    factor = pessimistic_factor(regime(table, "generic", "NVIDIA H100 SXM", "standard-dense", pp=2, batch=batch), 0.9)
    assert np.all(np.diff(factor) <= 0)


def test_shipped_table_is_the_quantiles_of_its_rows():
    """bands.toml's quantiles are those of the residuals.csv rows it names (scripts/fit_bands.py wrote both)."""
    table = shipped_bands()
    rows = pd.read_csv(BANDS_DIR / "residuals.csv")
    for name, band in table.engines.items():
        mine = rows[(rows["band"] == name) & rows["experiment"].isin(["leave_one_group_out", "unfitted"])]
        assert len(mine) == band.rows
        np.testing.assert_allclose(fit_quantiles(mine["log_residual"].to_numpy()), band.quantiles, atol=2e-6)
    for name in ("generic", "trtllm", "vllm", "sglang", "paper"):
        low, high = band_factors(regime(table, name, table.engines[name].hardware[0],
                                        table.engines[name].architectures[0], pp=1, batch=1))
        assert low[0] < 1.05 and high[0] > 0.95 and low[0] < high[0]


@pytest.mark.parametrize("edit, fragment", [
    (lambda t: t.replace("[widening]", "[widenning]"), "unknown field 'widenning'"),
    (lambda t: t.replace("hardware = { value = 0.", "hardware = { value = -0.", 1), "'widening.hardware'"),
    (lambda t: t.replace("quantiles = { value = [", "quantiles = { value = [9, ", 1), "quantiles' must be 19"),
    (lambda t: t.replace('fallback = { value = "generic"', 'fallback = { value = "nope"'), "'fallback'"),
])
def test_bad_band_table_names_file_and_field(tmp_path, edit, fragment):
    path = tmp_path / "bands.toml"
    path.write_text(edit((BANDS_DIR / "bands.toml").read_text()))
    with pytest.raises(InstanceError, match=str(path)) as info:
        load_bands(path)
    assert fragment in str(info.value)
