"""The paper-reproduction and scaling-law scripts: their report table and their fits.

The scripts are not a package, so they are loaded from their files; each test runs a reduced subset
(a few sections, small instance caps) to stay fast.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def load_script(name: str):
    """Import ``scripts/<name>.py`` as a module (registered in ``sys.modules`` so its dataclasses resolve)."""
    spec = importlib.util.spec_from_file_location(f"_script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reproduce():
    return load_script("reproduce_paper")


@pytest.fixture(scope="module")
def scaling():
    return load_script("study_scaling_laws")


def table_rows(markdown: str) -> dict[str, list[str]]:
    """Body rows of a markdown table, keyed by their first cell."""
    rows = {}
    for line in markdown.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        rows[cells[0]] = cells
    return rows


class TestReproducePaper:
    @pytest.mark.parametrize("section_name", ["toy_model_checks", "fig8_quantization", "fig9_mistral_long_context"])
    def test_every_claim_has_a_row_with_a_finite_ratio(self, reproduce, tmp_path, section_name):
        """Each claim of a section gets one table row; a numeric claim's ours/paper ratio is finite and positive."""
        section = getattr(reproduce, section_name)(tmp_path, max_gpus=64)
        markdown = reproduce.claims_markdown(section.claims)
        header = markdown.splitlines()[0]
        assert [c.strip() for c in header.strip("|").split("|")] == reproduce.CLAIM_COLUMNS
        rows = table_rows(markdown)
        ratio_column = reproduce.CLAIM_COLUMNS.index("ours/paper")
        assert sorted(rows) == sorted(c.key for c in section.claims)
        for claim in section.claims:
            if claim.paper is not None:
                ratio = float(rows[claim.key][ratio_column])
                assert math.isfinite(ratio) and ratio > 0, claim.key

    def test_full_report_has_one_row_per_unique_claim_key(self, reproduce, tmp_path):
        """The whole report (~6 s) lists each claim once, with a ratio if numeric and a cause if it deviates."""
        markdown, sections = reproduce.build_report(tmp_path)
        claims = [c for s in sections for c in s.claims]
        keys = [c.key for c in claims]
        assert len(keys) == len(set(keys))
        table = markdown.split("## All claims")[1].split("\n## ")[0].strip()
        rows = table_rows(table)
        assert sorted(rows) == sorted(keys)
        ratio_column = reproduce.CLAIM_COLUMNS.index("ours/paper")
        numeric = [c for c in claims if c.paper is not None]
        assert all(math.isfinite(float(rows[c.key][ratio_column])) for c in numeric)
        # Issue 12: every deviation beyond 5% has a cause (discreteness, modelling choice, known difference).
        unexplained = [c.key for c in claims if c.cause_text == "unknown"]
        assert unexplained == [], f"deviations without a cause: {unexplained}"
        assert "unknown" not in markdown
        headline = reproduce.headline_frame(sections)
        assert set(headline["study"]) == set(reproduce.HEADLINES)

    def test_section_plots_are_written(self, reproduce, tmp_path):
        """A figure section writes the PNG it lists."""
        section = reproduce.fig8_quantization(tmp_path, max_gpus=16)
        assert section.images and all(p.exists() and p.stat().st_size > 0 for p in section.images)

    def test_critical_batch_matches_the_notes(self, reproduce, tmp_path):
        """b* = pC/(2B) = 2 * 1e15 / (2 * 3.3e12) = 303.03 on the H100 file's numbers, within 0.1%."""
        claims = {c.key: c for c in reproduce.toy_model_checks(tmp_path).claims}
        assert claims["critical_batch"].ours == pytest.approx(303.03, rel=1e-3)


class TestScalingLaws:
    def test_dense_family_recovers_inverse_square_root(self, scaling):
        """Max speed over the dense family fits N^k with k = -0.5 +- 0.15 and R² > 0.9."""
        dense = scaling.study_dense(scaling.FAMILY_SIZES[::2], max_gpus=256)
        family = dense[dense["group"] == "family"]
        fit = scaling.fit_power_law(family["params"], family["full_tokens_per_s"])
        assert fit.exponent == pytest.approx(-0.5, abs=0.15)
        assert fit.r2 > 0.9

    def test_family_depth_follows_chinchilla_quarter_power(self, scaling):
        """n_layers grows as N^(1/4) (within 0.05 after rounding d_model), as eq. 19 assumes."""
        models = [scaling.dense_model(n) for n in scaling.FAMILY_SIZES]
        fit = scaling.fit_power_law([scaling.matmul_params(m) for m in models], [m.n_layers for m in models])
        assert fit.exponent == pytest.approx(0.25, abs=0.05)

    def test_fit_recovers_an_exact_power_law(self, scaling):
        """y = 3 x^-0.5 sampled exactly gives exponent -0.5, prefactor 3 and R² = 1."""
        xs = [1.0, 4.0, 16.0, 64.0]
        fit = scaling.fit_power_law(xs, [3 * x ** -0.5 for x in xs])
        assert (fit.exponent, fit.prefactor, fit.r2) == pytest.approx((-0.5, 3.0, 1.0))

    def test_fit_rejects_non_positive_values(self, scaling):
        """A zero speed cannot be logged, so the fit refuses it and names the values."""
        with pytest.raises(ValueError, match="positive"):
            scaling.fit_power_law([1, 2], [1, 0])


class TestCpSatPresolveCheck:
    def test_counts_every_solve_and_finds_the_shipped_solver_right(self, monkeypatch, capsys):
        """A small seeded run: solves are compared for frontiers and fleets, and the shipped setting has no error."""
        from ortools.sat.python import cp_model

        honest_solve = cp_model.CpSolver.solve
        check = load_script("check_cpsat_presolve")
        monkeypatch.setattr(sys, "argv", ["check_cpsat_presolve.py", "--problems", "15", "--fleets", "15",
                                          "--seed", "1"])
        check.main()
        assert cp_model.CpSolver.solve is honest_solve  # the comparison hook is removed afterwards
        rows = {(kind, setting): counts for (kind, setting), counts in check.counts.items()}
        for kind in ("frontier", "fleet"):
            assert rows[kind, "configured"]["solves"] > 0
            assert rows[kind, "configured"]["wrong_optimum"] == rows[kind, "configured"]["wrong_status"] == 0
        assert "reference: presolve off" in capsys.readouterr().out


class TestFitBands:
    """scripts/fit_bands.py: the shipped widths follow from the shipped rows by its rule, and its table round-trips."""

    def test_shipped_widths_are_the_rule_applied_to_the_shipped_rows(self):
        import pandas as pd

        from infecon.instances.bands import BANDS_DIR, shipped_bands

        fit = load_script("fit_bands")
        rows = pd.read_csv(BANDS_DIR / "residuals.csv")
        part = {name: rows[rows["experiment"] == name] for name in rows["experiment"].unique()}
        base = part["leave_one_group_out"][part["leave_one_group_out"]["band"] == "generic"]
        width, sources = fit.widening(base, part["leave_one_hardware_out"], part["leave_one_architecture_out"],
                                      part["leave_high_batch_out"])
        shipped = shipped_bands().widening
        for name in ("hardware", "architecture", "pp", "attention_dp", "batch_per_doubling"):
            assert getattr(width, name) == pytest.approx(getattr(shipped, name), abs=2e-6), name  # 6 digits stored
            assert sources[name]
        assert width.pp == max(width.hardware, width.architecture)  # the rule for what no row measured

    def test_written_table_loads_back(self, tmp_path):
        from infecon.instances.bands import load_bands, shipped_bands

        fit = load_script("fit_bands")
        table = shipped_bands()
        sources = {name: "test" for name in ("hardware", "architecture", "pp", "attention_dp", "batch_per_doubling")}
        path = fit.write_table(tmp_path, "x.csv", 91, table.engines, table.widening, sources)
        again = load_bands(path)
        assert again.engines.keys() == table.engines.keys()
        for name, band in table.engines.items():
            assert again.engines[name].quantiles == pytest.approx(band.quantiles, abs=1e-5)
            assert again.engines[name].hardware == band.hardware and again.engines[name].batch_max == band.batch_max
