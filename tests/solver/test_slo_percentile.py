"""SLOs at a percentile of requests (issue 22): the frontier, its columns, the CLI, validate, plans and fleets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from infecon.formulations.errors import InstanceError
from infecon.formulations.latency import md1_waiting_quantile
from infecon.formulations.space import tabulate
from infecon.solver import api, cli
from infecon.solver.epsilon import trace_frontier
from infecon.solver.fleet.plan import plan_fleet
from infecon.solver.validation import predict_frame, read_measurements

LONG = dict(engine="generic", isl=9400, osl=680, weight_bits=8, max_gpus=8, max_batch=96)
MEASURED = Path(__file__).resolve().parents[2] / "measured" / "serving_percentiles.csv"


def test_closed_loop_ttft_percentile_by_hand():
    """TTFT at p99 = request_s + D (1 + w_99(lambda D)), D = max(P1, carried + max(1, isl / chunk) s0), from the
    metrics' own pieces; static batch has no spread (every percentile is the mean)."""
    problem = api.build_problem("llama-3-70b", "h100", engine="generic", isl=9400, osl=680, max_batch=32)
    table = tabulate(problem, layouts=[(1, 8, 1, 1)], batches=np.array([16]))
    m = table.metrics
    s = m.spread
    engine = problem.engine
    carried = float(s.prefill_s_per_arrival[0]) * (680 - 1)
    decode = float(s.tpot_bare_s[0])
    rate = (16 / 680) * carried / float(m.tpot_s[0]) / carried  # rho / carried
    service = max(float(m.prefill_s[0]), carried + max(1.0, 9400 / engine.chunk_tokens) * decode)
    expected = engine.request_s + service * (1 + float(md1_waiting_quantile(99, rate * service)))
    assert float(m.ttft_at(99.0)[0]) == pytest.approx(expected, rel=1e-12)
    assert m.ttft_at(50.0)[0] <= m.ttft_at(90.0)[0] <= m.ttft_at(99.0)[0]
    assert m.tpot_at(50.0)[0] <= m.tpot_at(90.0)[0] <= m.tpot_at(99.0)[0]
    static = api.build_problem("llama-3-70b", "h100", engine="generic", isl=2000, osl=200, mode="static_batch",
                               max_batch=8)
    metrics = tabulate(static).metrics
    np.testing.assert_array_equal(metrics.ttft_at(99.0), metrics.ttft_s)
    np.testing.assert_array_equal(metrics.tpot_at(99.0), metrics.tpot_s)


def test_frontier_at_p99_meets_the_limits_and_reports_its_load():
    """Every point of the p99 frontier has p99 TTFT and TPOT within the limits; some mean-feasible deployment is
    not (the p99 frontier's cheapest point costs more), and ``requests_per_s`` is output tok/s over osl."""
    mean = trace_frontier(api.build_problem("llama-3-1-405b", "h200", ttft_max_s=6.0, tpot_max_s=0.175, **LONG),
                          "enumerate").points
    p99 = trace_frontier(api.build_problem("llama-3-1-405b", "h200", ttft_max_s=6.0, tpot_max_s=0.175,
                                           slo_percentile=99, **LONG), "enumerate").points
    assert (p99["ttft_p99_ms"] <= 6000).all() and (p99["tpot_p99_ms"] <= 175).all()
    assert (mean["ttft_ms"] <= 6000).all() and not ((mean["ttft_p99_ms"] <= 6000)
                                                    & (mean["tpot_p99_ms"] <= 175)).all()
    assert p99["usd_per_million_tokens"].min() > mean["usd_per_million_tokens"].min()
    np.testing.assert_allclose(p99["requests_per_s"], p99["total_tokens_per_second"] / 680, rtol=1e-12)
    for kind in ("ttft", "tpot"):
        assert (p99[f"{kind}_p50_ms"] <= p99[f"{kind}_p90_ms"]).all()
        assert (p99[f"{kind}_p90_ms"] <= p99[f"{kind}_p99_ms"]).all()


def test_other_percentile_gets_its_own_columns():
    points = trace_frontier(api.build_problem("llama-3-8b", "h100", engine="generic", max_gpus=1, max_batch=16,
                                              ttft_max_s=0.5, slo_percentile=95), "enumerate").points
    assert (points["ttft_p95_ms"] <= 500).all()
    assert (points["ttft_p90_ms"] <= points["ttft_p95_ms"]).all()


@pytest.mark.parametrize(("argv", "message"), [
    (["--slo-percentile", "100"], "--slo-percentile"),
    (["--slo-percentile", "0"], "--slo-percentile"),
    (["--slo-percentile", "x"], "--slo-percentile"),
])
def test_cli_refuses_bad_percentiles(capsys, argv, message):
    try:
        code = cli.main(["frontier", "--model", "llama-3-8b", "--hardware", "h100", "--max-gpus", "1", *argv])
    except SystemExit as exc:  # argparse's own refusals exit; the others return the code
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]


def test_api_refuses_a_percentile_without_a_serving_engine():
    with pytest.raises(InstanceError, match="slo_percentile"):
        api.build_problem("llama-3-8b", "h100", slo_percentile=99)


def test_validate_compares_published_percentiles():
    """The shipped percentile file: every row predicted, with predicted and error columns for each percentile."""
    predicted = predict_frame(read_measurements(MEASURED))
    assert predicted["status"].str.startswith("ok").all()
    for column in ("ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p90_ms", "tpot_p99_ms"):
        errors = predicted[f"error_{column.removesuffix('_ms')}"]
        measured = pd.to_numeric(predicted[column], errors="coerce")
        np.testing.assert_allclose(errors[measured.notna()],
                                   predicted[f"predicted_{column}"][measured.notna()] / measured.dropna() - 1)


def test_plan_scenario_takes_the_percentile(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[[scenario]]\nname = "p99"\nmodel = "llama-3-8b"\nmax_gpus = 1\nmax_batch = 32\n'
                    'ttft_max_s = 0.3\nslo_percentile = 99\n')
    assert cli.main(["plan", str(plan), "--out", str(tmp_path / "out")]) == 0
    rows = pd.read_csv(tmp_path / "out" / "plan.csv")
    assert len(rows) and (rows["ttft_p99_ms"] <= 300).all()


def test_fleet_candidates_apply_the_percentile(tmp_path):
    """A workload with slo_percentile = 99: every planned deployment meets both limits at p99 (plan columns)."""
    path = tmp_path / "fleet.toml"
    path.write_text('[fleet]\ndisaggregated = "never"\n[[gpu]]\nhardware = "h100_sxm"\n[[workload]]\n'
                    'name = "chat"\nmodel = "llama_3_8b"\nisl = 1000\nosl = 300\nrequests_per_s = 20.0\n'
                    'ttft_max_s = 0.3\ntpot_max_s = 0.02\nslo_percentile = 99\n')
    plan = plan_fleet(api.load_fleet(path)).plan
    assert len(plan) and (plan["ttft_s"] <= 0.3).all() and (plan["tpot_s"] <= 0.02).all()
    workload = api.load_fleet(path).workloads[0]
    for row in plan.itertuples():
        table = tabulate(api.build_problem("llama_3_8b", "h100_sxm", engine=workload.engine, isl=1000, osl=300,
                                           batch_sizes=[int(row.batch)]),
                         layouts=[(int(row.tp_rows), int(row.tp_cols), int(row.pp), int(row.ep))])
        assert float(table.metrics.tpot_at(99.0)[0]) == pytest.approx(row.tpot_s, rel=1e-9)


def test_explain_shows_percentiles_and_load(capsys):
    assert cli.main(["explain", "--model", "llama-3-70b", "--hardware", "h100", "--tp", "8", "--batch", "32",
                     "--isl", "4000", "--osl", "400"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("percentiles over requests at ") and "TTFT p50/p90/p99" in line and "req/s" in line


def test_percentiles_stretch_with_the_confidence_band():
    """--confidence divides speeds by a factor and multiplies TTFT and TPOT by it; their percentiles follow."""
    kwargs = dict(engine="generic", isl=4000, osl=400, max_gpus=8, max_batch=64)
    plain = tabulate(api.build_problem("llama-3-70b", "h100", **kwargs), layouts=[(1, 8, 1, 1)]).metrics
    banded = tabulate(api.build_problem("llama-3-70b", "h100", confidence=0.9, **kwargs),
                      layouts=[(1, 8, 1, 1)]).metrics
    for at, mean in (("ttft_at", "ttft_s"), ("tpot_at", "tpot_s")):
        stretch = np.asarray(getattr(banded, mean)) / np.asarray(getattr(plain, mean))
        np.testing.assert_allclose(getattr(banded, at)(99.0), getattr(plain, at)(99.0) * stretch, rtol=1e-9)


class TestCapsQuoteThePercentile:
    """Issue 21: with --slo-percentile the cap is compared with the percentile, so every message quotes that value
    (explain's verdict and the refusal's nearest value quoted the mean)."""

    def test_explain_quotes_the_percentile_it_compared(self, capsys):
        """Llama 3 70B TP 8, batch 64, isl 2000 / osl 500 at p99: mean TTFT 248 ms but p99 563 ms; the verdict says
        p99 and its value (it said 'TTFT 248.2 ms > 200 ms'; with a TPOT cap it raised an IndexError)."""
        problem = dict(engine="generic", isl=2000, osl=500, ttft_max_s=0.2, tpot_max_s=0.02, slo_percentile=99.0)
        expl = api.explain("llama-3-70b", "h100", tp_cols=8, batch=64, **problem)
        ttft_ms, tpot_ms = float(expl.metrics.ttft_at(99.0)) * 1e3, float(expl.metrics.tpot_at(99.0)) * 1e3
        assert ttft_ms > 1.5 * float(expl.metrics.ttft_s) * 1e3  # the two differ: the test can tell them apart
        assert expl.caps_broken == (f"ttft_max: p99 TTFT {ttft_ms:.4g} ms > 200 ms",
                                    f"tpot_max: p99 TPOT {tpot_ms:.4g} ms > 20 ms")
        code = cli.main(["explain", "--model", "llama-3-70b", "--tp", "8", "--batch", "64", "--isl", "2000", "--osl",
                         "500", "--ttft-max", "0.2", "--tpot-max", "0.02", "--slo-percentile", "99"])
        out = capsys.readouterr().out
        assert code == 1 and f"p99 TTFT {ttft_ms:.4g} ms > 200 ms" in out

    @pytest.mark.parametrize(("rule", "cap"), [("ttft_max", 0.01), ("tpot_max", 0.005)])
    def test_the_nearest_value_is_the_least_percentile(self, rule, cap):
        """A cap nothing meets: the refusal names the least p99 value of any configuration that fits, equal to the
        minimum over the whole table (with the table, and piece by piece without one)."""
        kwargs = dict(engine="generic", isl=2000, osl=500, max_gpus=8, batch_mode="ladder", slo_percentile=99.0)
        problem = api.build_problem("llama-3-70b", "h100", **kwargs, **{f"{rule}_s": cap})
        table = tabulate(problem)
        room = ~table.violations["hbm_capacity"]
        values = table.metrics.ttft_at(99.0) if rule == "ttft_max" else table.metrics.tpot_at(99.0)
        least_ms = float(np.nanmin(np.where(room, values, np.nan))) * 1e3
        mean = table.metrics.ttft_s if rule == "ttft_max" else table.metrics.tpot_s
        assert least_ms > 1.01 * float(np.nanmin(np.where(room, mean, np.nan))) * 1e3  # not the mean's minimum
        what = "TTFT" if rule == "ttft_max" else "TPOT"
        expected = f"{rule}: the least p99 {what} of any configuration that fits is {least_ms:.4g} ms"
        assert api.diagnose_infeasible(problem, table).startswith(expected)
        assert api.diagnose_infeasible(problem).startswith(expected)
