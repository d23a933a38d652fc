"""Issue 21: validate reads each data file once and scales to 10,000 rows (timed in scripts/bench_validate.py);
its CSV numbers go through the one grammar of numbers."""

from __future__ import annotations

import itertools
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from infecon.instances.loader import MODELS_DIR, load_model
from infecon.solver import validation
from tests.cli_fuzz import MEASUREMENTS


def _pairwise(measured, predicted) -> float:
    """The definition, pair by pair: share of pairs with different measured values ordered the same way."""
    pairs = [(i, j) for i, j in itertools.combinations(range(len(measured)), 2) if measured[i] != measured[j]]
    if not pairs:
        return math.nan
    return sum((measured[i] - measured[j]) * (predicted[i] - predicted[j]) > 0 for i, j in pairs) / len(pairs)


class TestRankAgreement:
    def test_equals_the_pairwise_definition(self):
        """The O(n log n) count equals the pair loop on 400 random tables with many ties."""
        rng = np.random.default_rng(21)
        for _ in range(400):
            n = int(rng.integers(0, 14))
            measured, predicted = rng.integers(0, 5, n).astype(float), rng.integers(0, 5, n).astype(float)
            fast, slow = validation._rank_agreement(measured, predicted), _pairwise(measured, predicted)
            assert (math.isnan(fast) and math.isnan(slow)) or fast == pytest.approx(slow, abs=1e-12)


class TestFilesReadOnce:
    def test_same_file_same_spec(self, tmp_path):
        path = tmp_path / "m.toml"
        shutil.copy(MODELS_DIR / "llama_3_8b.toml", path)
        assert load_model(path) is load_model(path)

    def test_edited_file_is_read_again(self, tmp_path):
        """The cache is keyed by the file's mtime and size: an edit is seen."""
        path = tmp_path / "m.toml"
        text = (MODELS_DIR / "llama_3_8b.toml").read_text()
        path.write_text(text)
        first = load_model(path)
        path.write_text(text.replace('name = { value = "Llama 3 8B"', 'name = { value = "Llama 3 8B edited"'))
        assert load_model(path).name == "Llama 3 8B edited" != first.name


class TestCsvNumbers:
    @pytest.mark.parametrize(("column", "text", "rule"), [("tp", "1_000", "must be a whole number >= 1"),
                                                         ("tp", "\u0663", "must be a whole number >= 1"),
                                                         ("concurrency", "10000000000000", "must be <= 1000000000000"),
                                                         ("kv_bits", "12", "must be one of 4, 8, 16, 32"),
                                                         ("per_user_tok_s", "0x10", "must be a number"),
                                                         ("per_user_tok_s", "inf", "must be a number")])
    def test_refused_naming_row_and_column(self, tmp_path, column, text, rule):
        if not MEASUREMENTS.is_file():
            pytest.skip("the development measurements are not on this machine")
        frame = pd.read_csv(MEASUREMENTS, dtype=str, keep_default_na=False).head(3)
        frame.loc[1, column] = text
        path = tmp_path / "d.csv"
        frame.to_csv(path, index=False)
        with pytest.raises(validation.InstanceError, match=f"row 3, column '{column}': {rule}"):
            validation.read_measurements(path)

    def test_repeated_rows_predict_alike(self):
        """Identical rows share one prediction: the same numbers as each predicted alone."""
        if not MEASUREMENTS.is_file():
            pytest.skip("the development measurements are not on this machine")
        frame = validation.read_measurements(MEASUREMENTS).head(5)
        doubled = validation.predict_frame(pd.concat([frame, frame], ignore_index=True))
        single = validation.predict_frame(frame)
        np.testing.assert_array_equal(doubled["predicted_per_user_tok_s"].to_numpy()[:5],
                                      single["predicted_per_user_tok_s"].to_numpy())
        np.testing.assert_array_equal(doubled["predicted_per_user_tok_s"].to_numpy()[5:],
                                      single["predicted_per_user_tok_s"].to_numpy())


def test_repeated_column_is_refused(tmp_path):
    """A header naming 'tp' twice: refused (pandas renamed the second 'tp.1' and it was silently ignored)."""
    if not MEASUREMENTS.is_file():
        pytest.skip("the development measurements are not on this machine")
    lines = MEASUREMENTS.read_text().splitlines()[:2]
    path = tmp_path / "dup.csv"
    path.write_text(f"{lines[0]},tp\n{lines[1]},3\n")
    with pytest.raises(validation.InstanceError, match="column 'tp' appears more than once"):
        validation.read_measurements(path)
