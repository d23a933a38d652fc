"""Bands on frontiers, explain and validate; ``--confidence`` on frontier, plan and fleet (issue 18, items 4-5)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from infecon.formulations.bands import LEVELS, pessimistic_factor, problem_regime
from infecon.formulations.space import tabulate
from infecon.instances.bands import shipped_bands
from infecon.solver import api
from infecon.solver.validation import predict_frame, read_measurements, summary
from tests.solver.test_cli import assert_one_line_error, frontier_csv, run

ARGS = ("--model", "llama-3-70b", "--hardware", "h100")
Q10_GENERIC = float(np.interp(0.1, LEVELS, shipped_bands().engines["generic"].quantiles))


def test_frontier_csv_has_the_band_and_why_it_is_extrapolated(capsys):
    p = frontier_csv(capsys, *ARGS)
    for column in ("tokens_per_second_low", "tokens_per_second_high", "usd_per_million_tokens_low",
                   "usd_per_million_tokens_high", "extrapolated"):
        assert column in p
    assert (p["tokens_per_second_low"] < p["tokens_per_second"]).all()
    assert (p["tokens_per_second"] < p["tokens_per_second_high"]).all()
    # Cost is GPU time per token: its band is the speed band inverted (cost_low x speed_high = cost x speed).
    np.testing.assert_allclose(p["usd_per_million_tokens_low"] * p["tokens_per_second_high"],
                               p["usd_per_million_tokens"] * p["tokens_per_second"], rtol=1e-12)
    # Generic on H100 at PP 1 within the measured batches: the generic band itself, exp(q10) of its residuals.
    inside = p[(p["pp"] == 1) & (p["batch"] <= shipped_bands().engines["generic"].batch_max)]
    assert inside["extrapolated"].isna().all()
    np.testing.assert_allclose(inside["tokens_per_second_low"] / inside["tokens_per_second"], math.exp(Q10_GENERIC))
    deep = p[p["pp"] > 1]
    assert len(deep) and deep["extrapolated"].str.contains("pp>1 unmeasured").all()
    assert (deep["tokens_per_second_low"] / deep["tokens_per_second"] < math.exp(Q10_GENERIC)).all()  # wider


def test_table_and_explain_show_the_band(capsys):
    code, out, _ = run(capsys, "frontier", *ARGS)
    assert code == 0 and "band %" in out and "points extrapolated (wider): pp>1 unmeasured" in out
    code, out, _ = run(capsys, "explain", *ARGS, "--tp", "2", "--pp", "2", "--batch", "64")
    assert "80 % band:" in out and "extrapolated: pp>1 unmeasured" in out


def test_plot_shades_the_band(tmp_path, monkeypatch, capsys):
    import matplotlib.axes

    filled = []
    original = matplotlib.axes.Axes.fill
    monkeypatch.setattr(matplotlib.axes.Axes, "fill", lambda self, *a, **k: filled.append(a) or original(self, *a, **k))
    code, _, _ = run(capsys, "frontier", *ARGS, "--plot", str(tmp_path / "f.png"))
    assert code == 0 and (tmp_path / "f.png").is_file() and len(filled) == 1


def test_confidence_moves_the_min_speed_answer_by_hand(capsys):
    """At 0.9 the answer is the cheapest configuration whose pessimistic speed (prediction x exp(q10), the band's
    low end: x0.655 for generic in domain) reaches 30 tok/s. Checked against every configuration of the space."""
    nominal = frontier_csv(capsys, *ARGS, "--min-speed", "30").iloc[0]
    sure = frontier_csv(capsys, *ARGS, "--min-speed", "30", "--confidence", "0.9").iloc[0]
    assert sure["tokens_per_second"] >= 30 and sure["confidence"] == 0.9
    assert sure["tokens_per_second"] == pytest.approx(sure["tokens_per_second_predicted"] * math.exp(Q10_GENERIC))
    assert sure["tokens_per_second"] == pytest.approx(sure["tokens_per_second_low"])  # 0.9 is the band's low end
    assert nominal["tokens_per_second_low"] < 30  # the nominal answer would miss 30 tok/s one time in ten or more
    assert sure["usd_per_million_tokens"] > nominal["usd_per_million_tokens"]  # safety costs money
    # Brute force over the problem's whole space (the batch ladder keeps it small): every configuration's
    # nominal metrics times its pessimistic factor, exp(q10) by hand where nothing is extrapolated.
    problem = api.build_problem("llama-3-70b", "h100", engine="generic", batch_mode="ladder", confidence=0.9)
    table = tabulate(api.build_problem("llama-3-70b", "h100", engine="generic", batch_mode="ladder"))
    factor = pessimistic_factor(problem_regime(shipped_bands(), problem, pp=table.pp, batch=table.batch), 0.9)
    inside = (table.pp == 1) & (table.batch <= 1024)
    np.testing.assert_allclose(factor[inside], math.exp(Q10_GENERIC), rtol=1e-12)
    assert (factor[~inside] < math.exp(Q10_GENERIC)).all()
    ok = table.feasible & (table.metrics.tokens_per_second * factor >= 30)
    best = np.min(table.metrics.usd_per_million_tokens[ok] / factor[ok])
    ladder = api.cheapest_at_speed(problem, None, 30).points.iloc[0]
    assert ladder["usd_per_million_tokens"] == pytest.approx(best, rel=1e-12)


@pytest.mark.parametrize("value", ["0.3", "1", "x", "nan", "0.99"])
def test_bad_confidence_is_one_line_exit_2(capsys, value):
    code, _, err = run(capsys, "frontier", *ARGS, "--min-speed", "30", "--confidence", value)
    assert_one_line_error(code, err, "--confidence", "[0.5, 0.95]")


def test_confidence_needs_the_enumeration(capsys):
    code, _, err = run(capsys, "frontier", *ARGS, "--confidence", "0.9", "--backend", "milp")
    assert_one_line_error(code, err, "--confidence needs the enumerate backend")
    with pytest.raises(Exception, match="'confidence' must be a number in"):
        api.build_problem("llama-3-70b", "h100", engine="generic", confidence=0.2)


def test_validate_reports_coverage(tmp_path, capsys):
    data = tmp_path / "rows.csv"
    frame = pd.DataFrame([{
        "model": "llama_3_70b", "hardware": "h100_sxm", "engine": "trtllm", "benchmark": "closed_loop",
        "weight_bits": 8, "kv_bits": 8, "n_gpu": 8, "tp": tp, "pp": pp, "ep": 1, "instances": 1,
        "concurrency": 64, "isl": 1000, "osl": 1000, "per_user_tok_s": speed, "per_user_metric": "inverse_tpot"}
        for tp, pp, speed in ((8, 1, 40.0), (8, 1, 4.0), (4, 2, 30.0))])
    frame.to_csv(data, index=False)
    predicted = predict_frame(read_measurements(data))
    assert list(predicted["in_band"]) == [
        bool(lo <= m <= hi) for lo, m, hi in zip(predicted["tokens_per_second_low"], frame["per_user_tok_s"],
                                                 predicted["tokens_per_second_high"], strict=True)]
    assert not predicted["in_band"].iloc[1]  # 4 tok/s is 10x below any band here
    assert predicted["extrapolated"].iloc[2].startswith("pp>1 unmeasured")
    table = summary(predicted)
    assert table.iloc[-1]["coverage"] == pytest.approx(predicted["in_band"].mean())
    code, out, _ = run(capsys, "validate", "--data", str(data))
    assert code == 0 and "coverage" in out.splitlines()[0]


PLAN = """
[defaults]
hardware = "h100"
[[scenario]]
name = "chat"
model = "llama-3-70b"
isl = 2000
osl = 500
min_speed = 40
"""


def test_plan_at_confidence(tmp_path, capsys):
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN)
    code, out, _ = run(capsys, "plan", str(plan), "--out", str(tmp_path / "a"), "--jobs", "1", "--confidence", "0.9")
    assert code == 0 and "conf 0.9" in out and "pessimistic end" in out
    table = pd.read_csv(tmp_path / "a" / "plan.csv")
    chosen = table[table["recommended"]].iloc[0]
    assert chosen["tokens_per_second"] >= 40 and chosen["tokens_per_second_predicted"] > chosen["tokens_per_second"]
    plan.write_text(PLAN + "confidence = 0.8\n")
    code, _, err = run(capsys, "plan", str(plan), "--out", str(tmp_path / "b"), "--jobs", "1", "--confidence", "0.9")
    assert_one_line_error(code, err, "'confidence' = 0.8 but --confidence 0.9")


FLEET = """
[fleet]
disaggregated = "never"
{extra}
[[gpu]]
hardware = "h100_sxm"
[[workload]]
name = "chat"
model = "llama_3_70b"
isl = 2000
osl = 400
requests_per_s = 12.0
ttft_max_s = 1.5
tpot_max_s = 0.04
"""


def test_fleet_at_confidence_costs_more_and_meets_slos_pessimistically(tmp_path, capsys):
    path = tmp_path / "fleet.toml"
    path.write_text(FLEET.format(extra=""))
    base = api.plan_fleet(path)
    path.write_text(FLEET.format(extra="confidence = 0.9"))
    sure = api.plan_fleet(path)
    assert sure.summary["total_usd_per_hour"] > base.summary["total_usd_per_hour"]
    assert (sure.plan["tpot_s"] <= 0.04).all()  # the pessimistic TPOT meets the SLO
    code, out, _ = run(capsys, "fleet", str(path), "--confidence", "0.9")
    assert code == 0 and "at confidence 0.9" in out
    code, _, err = run(capsys, "fleet", str(path), "--confidence", "0.8")
    assert_one_line_error(code, err, "confidence = 0.9 but --confidence 0.8")
    path.write_text(FLEET.format(extra="confidence = 2"))
    code, _, err = run(capsys, "fleet", str(path))
    assert_one_line_error(code, err, "[fleet]", "confidence")


def test_paper_model_numbers_unchanged_by_the_band():
    """The band only adds columns: the paper's points are what ``tabulate`` gives without any confidence."""
    f = api.frontier("llama-3-70b", "h100", engine="paper", context_tokens=8000, batch_mode="ladder")
    table = tabulate(f.problem)
    idx = f.points["config_index"].to_numpy()
    np.testing.assert_array_equal(f.points["tokens_per_second"].to_numpy(), table.metrics.tokens_per_second[idx])


@pytest.mark.parametrize("command", ["plan", "fleet"])
@pytest.mark.parametrize("value", ["0", "0.96", "high"])
def test_bad_confidence_on_plan_and_fleet_is_one_line_exit_2(tmp_path, capsys, command, value):
    path = tmp_path / "file.toml"
    path.write_text(PLAN if command == "plan" else FLEET.format(extra=""))
    extra = ["--out", str(tmp_path / "out"), "--jobs", "1"] if command == "plan" else []
    code, _, err = run(capsys, command, str(path), *extra, "--confidence", value)
    assert_one_line_error(code, err, "--confidence", "[0.5, 0.95]")
