"""Capacity planning over periods: a hand-worked optimum, brute force on tiny plans, both backends, every rule of
every plan re-checked, the one-period case against ``fleet``, and bad input (one line, exit 2, --out untouched)."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infecon.formulations.fleet.horizon import SHARE_SCALE, HorizonData, horizon_cost, horizon_rows, merge_periods
from infecon.formulations.fleet.model import FleetData
from infecon.instances.fleet_horizon import default_ratios, load_horizon_scenario
from infecon.instances.fleet_scenario import load_fleet_scenario
from infecon.solver import cli
from infecon.solver.fleet.horizon import plan_horizon, solve_horizon
from infecon.solver.fleet.plan import plan_fleet
from tests.fleet_oracle import horizon_broken_rules


def hand_example(**changes) -> HorizonData:
    """Two workloads, two GPU types, three periods (units: capacity 1 per replica, prices per GPU and period).

    Type A: on demand 10, reserved 6. Type B: on demand 8, spot 4 with 2 spot GPUs in period 1 only.
    w0 needs 2 units every period, on A or B (1 GPU per unit); w1 needs 1 unit in period 1, on B only (2 GPUs).
    """
    fleet = FleetData(("w0", "w1"), [0, 0], ("never", "never"), ("A", "B"), [-1, -1], [8, 8], [1, 1],
                      workload=[0, 0, 1], pool=[0, 1, 1], kind=[0, 0, 0], gpus=[1, 1, 2], capacity=[1, 1, 1],
                      scale_rank=[0, 0, 0])
    data = HorizonData(fleet, demand=[[2, 2, 2], [0, 1, 0]], on_demand_cost=[10, 8], reserved_cost=[6, -1],
                       spot_cost=[-1, 4], spot_available=[[0, 0, 0], [0, 2, 0]], spot_share=[SHARE_SCALE] * 2,
                       min_replicas=[0, 0])
    return dataclasses.replace(data, **changes)


class TestHandExample:
    """Optimum by hand: w0's 2 GPUs are needed in all 3 periods: reserved A costs 2 x 6 x 3 = 36, on-demand B
    2 x 8 x 3 = 48, on-demand A 60; reserving only 1 A costs 18 + 8 + 8 + 8 = 42 for w0 and leaves w1's 2 B GPUs
    in period 1 to on demand once spot is used by w0 (4 + 8 = 12 for w1): 54 in all; nothing reserved: 16 + 16
    + (2 spot + 2 on demand) 24 = 56. So: reserve 2 A (36), w1 on the 2 spot B GPUs in period 1 (8): 44."""

    @pytest.mark.parametrize("backend", ["milp", "cpsat"])
    @pytest.mark.parametrize("reduce", [True, False])
    def test_optimum(self, backend, reduce):
        data = hand_example()
        plan = solve_horizon(data, backend, reduce=reduce)
        assert (plan.status, plan.objective) == ("OPTIMAL", 44)
        assert plan.reserved.tolist() == [2, 0]
        assert plan.spot.tolist() == [[0, 0, 0], [0, 2, 0]]
        assert plan.on_demand.sum() == 0
        assert horizon_cost(data, plan) == 44 and horizon_broken_rules(data, plan) == []

    def test_spot_share(self):
        """w1 at most half its capacity on spot: its one replica (all its capacity) cannot be on spot. Then w1 pays
        on-demand B in period 1 (2 x 8 = 16): 36 + 16 = 52; reserving 1 A instead: 18 + 8 + (4 + 16) + 8 = 54;
        nothing reserved: 16 + (8 + 16) + 16 = 56."""
        data = hand_example(spot_share=[SHARE_SCALE, 500])
        for backend in ("milp", "cpsat"):
            plan = solve_horizon(data, backend)
            assert (plan.status, plan.objective) == ("OPTIMAL", 52), backend
            assert plan.spot_replicas.sum() == 0 and horizon_broken_rules(data, plan) == []

    def test_warm_floor(self):
        """w1 keeps one replica (2 B GPUs) warm in periods 0 and 2 too, on demand: 44 + 2 x 16 = 76."""
        data = hand_example(min_replicas=[0, 1])
        plan = solve_horizon(data, "milp")
        assert (plan.status, plan.objective) == ("OPTIMAL", 76)
        assert plan.replicas[2].tolist() == [1, 1, 1] and horizon_broken_rules(data, plan) == []

    def test_budget(self):
        """A budget per period of 20 admits the optimum (period 1: 2 x 6 reserved + 8 spot = 20); of 19 nothing:
        reserving 1 A makes period 1 cost 6 + 2 x 4 + 8 = 22, nothing reserved 24."""
        assert solve_horizon(hand_example(budget=20), "milp").objective == 44
        assert solve_horizon(hand_example(budget=19), "milp").status == "INFEASIBLE"
        assert solve_horizon(hand_example(budget=19), "cpsat").status == "INFEASIBLE"

    def test_whole_nodes(self):
        """Whole nodes of 8 GPUs: w0's 2 GPUs take a node either way; a reserved A node costs 8 x 6 x 3 = 144, an
        on-demand B node 8 x 8 = 64 a period (192), so reserve A; w1's period-1 B GPUs: no spot node (only 2 spot
        GPUs), an on-demand B node 64: 208. Serving w0 on B instead: 3 B nodes on demand, w1 sharing period 1's:
        192 < 208."""
        fleet = dataclasses.replace(hand_example().fleet, whole_nodes=True)
        plan = solve_horizon(hand_example(fleet=fleet), "milp")
        assert (plan.status, plan.objective) == ("OPTIMAL", 192)

    def test_rows_are_named(self):
        rows = horizon_rows(hand_example(spot_share=[SHARE_SCALE, 500], min_replicas=[0, 1], budget=30))
        names = {r.name for r in rows.model.rows}
        assert {"demand_w0_p0", "demand_w1_p1", "cover_A_p0", "cover_B_p1", "spot_available_B_p1",
                "spot_share_w1_aggregated_p1", "min_replicas_w1_p2", "budget_p2", "not_on_spot_B_p1"} <= names
        assert {v.name for v in rows.model.variables} >= {"reserved_A", "on_demand_B_p1", "spot_B_p1"}

    def test_merging_alike_periods_is_exact(self):
        """Periods 0 and 2 are alike: one column of weight 2, the same optimum, the plan given for all three."""
        merged, column = merge_periods(hand_example())
        assert merged.periods == 2 and merged.weight.tolist() == [2, 1] and column.tolist() == [0, 1, 0]
        assert solve_horizon(hand_example(), "milp", reduce=True).replicas.shape == (3, 3)


@st.composite
def tiny_horizons(draw) -> HorizonData:
    """1-2 workloads (aggregated replicas), 1-2 GPU types, 1-3 periods, small numbers; any offers and rules."""
    n_w, n_t, n_k = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 3))
    n_c = draw(st.integers(n_w, 3))
    workload = list(range(n_w)) + [draw(st.integers(0, n_w - 1)) for _ in range(n_c - n_w)]
    fleet = FleetData(tuple(f"w{i}" for i in range(n_w)), [0] * n_w, ("never",) * n_w,
                      tuple(f"g{i}" for i in range(n_t)),
                      [draw(st.sampled_from([-1, -1, 2, 4, 6])) for _ in range(n_t)], [1] * n_t, [1] * n_t,
                      workload=workload, pool=[draw(st.integers(0, n_t - 1)) for _ in range(n_c)], kind=[0] * n_c,
                      gpus=[draw(st.sampled_from([1, 2])) for _ in range(n_c)],
                      capacity=[draw(st.integers(1, 3)) for _ in range(n_c)], scale_rank=[0] * n_c)
    od = [draw(st.sampled_from([-1, 3, 5, 8])) for _ in range(n_t)]
    reserved = [draw(st.sampled_from([-1, 2, 4, 6])) for _ in range(n_t)]
    spot = [draw(st.sampled_from([-1, 1, 2, 4])) for _ in range(n_t)]
    return HorizonData(
        fleet, demand=[[draw(st.integers(0, 3)) for _ in range(n_k)] for _ in range(n_w)], on_demand_cost=od,
        reserved_cost=reserved, spot_cost=spot,
        spot_available=[[draw(st.integers(0, 3)) if spot[t] >= 0 else 0 for _ in range(n_k)] for t in range(n_t)],
        spot_share=[draw(st.sampled_from([SHARE_SCALE, SHARE_SCALE, 500, 0])) for _ in range(n_w)],
        min_replicas=[draw(st.sampled_from([0, 0, 1])) for _ in range(n_w)],
        budget=draw(st.none() | st.none() | st.integers(5, 40)))


def _rent(data: HorizonData, t: int, k: int, reserved: int, used: int, off_spot: int) -> float:
    """Least cost of on-demand and spot GPUs of type ``t`` in period ``k`` covering ``used`` GPUs of which
    ``off_spot`` may not be spot, on top of ``reserved``; inf if no choice fits. Enumerated, not reasoned."""
    best = np.inf
    limit = data.fleet.available[t]
    for spot in range(int(data.spot_available[t, k]) + 1 if data.spot_cost[t] >= 0 else 1):
        for od in range(used + 1 if data.on_demand_cost[t] >= 0 else 1):
            if reserved + od + spot < used or reserved + od < off_spot or (0 <= limit < reserved + od + spot):
                continue
            best = min(best, od * data.on_demand_cost[t] + spot * max(data.spot_cost[t], 0))
    return best


def brute_force(data: HorizonData) -> int | None:
    """Least cost by enumerating every period's replicas (spot copies too), reservations and sources."""
    f = data.fleet
    T, C = len(f.pool_names), len(f.gpus)
    restricted = np.array([data.restricted(int(w)) for w in f.workload])
    cap = 4  # replicas per candidate and period: demand <= 3 and capacity >= 1 need at most 3, a warm floor 1
    usages = []  # per period: the distinct (GPUs used, GPUs that may not be spot) per type of plans meeting its rules
    for k in range(data.periods):
        found = set()
        choices = [range(cap) for _ in range(C)] + [range(cap) if restricted[c] else [0] for c in range(C)]
        for counts in itertools.product(*choices):
            n, s = np.array(counts[:C]), np.array(counts[C:])
            ok = True
            for w in range(len(f.workload_names)):
                mine = f.workload == w
                every = int(((n + s) * f.capacity)[mine].sum())
                ok &= every >= data.demand[w, k] and int((n + s)[mine].sum()) >= data.min_replicas[w]
                if data.restricted(w):
                    ok &= int((s * f.capacity)[mine].sum()) * SHARE_SCALE <= data.spot_share[w] * every
            if ok:
                found.add(tuple((int(((n + s) * f.gpus)[f.pool == t].sum()),
                                 int((n * f.gpus)[(f.pool == t) & restricted].sum())) for t in range(T)))
        usages.append(found)
    most = [max([u[t][0] for found in usages for u in found], default=0) for t in range(T)]
    best = None
    for reserved in itertools.product(*(range(most[t] + 1) if data.reserved_cost[t] >= 0 else [0]
                                        for t in range(T))):
        if any(0 <= f.available[t] < reserved[t] for t in range(T)):
            continue
        total = sum(r * data.reserved_cost[t] * data.periods for t, r in enumerate(reserved))
        spend_reserved = sum(r * max(data.reserved_cost[t], 0) for t, r in enumerate(reserved))
        for k, found in enumerate(usages):
            cheapest = np.inf
            for usage in found:
                rent = sum(_rent(data, t, k, reserved[t], used, off) for t, (used, off) in enumerate(usage))
                if data.budget is None or spend_reserved + rent <= data.budget:
                    cheapest = min(cheapest, rent)
            total += cheapest
        if total < np.inf and (best is None or total < best):
            best = int(total)
    return best


class TestAgainstBruteForce:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(tiny_horizons())
    def test_both_backends_prove_the_brute_force_optimum(self, data):
        """HiGHS (with every reduction) and CP-SAT (the plain model) prove the exhaustive optimum; each plan meets
        every rule, checked directly, and costs what is reported."""
        expected = brute_force(data)
        for backend, reduce in (("milp", True), ("cpsat", False)):
            plan = solve_horizon(data, backend, reduce=reduce)
            if expected is None:
                assert plan.status == "INFEASIBLE", backend
                continue
            assert plan.status == "OPTIMAL", backend
            assert plan.objective == expected == horizon_cost(data, plan), backend
            assert horizon_broken_rules(data, plan) == [], backend


SMALL = """
[periods]
count = {count}
[fleet]
disaggregated = "never"
[[gpu]]
hardware = "h100_sxm"
available = 16
price_usd_per_hour = 2.1
{offers}
[[gpu]]
hardware = "a100_sxm"
[[workload]]
name = "chat-8b"
model = "llama_3_8b"
isl = 1000
osl = 300
requests_per_s = {chat}
ttft_max_s = 0.5
tpot_max_s = 0.02
[[workload]]
name = "docs-70b"
model = "llama_3_70b"
isl = 4000
osl = 200
output_tok_per_s = {docs}
ttft_max_s = 3.0
tpot_max_s = 0.05
weight_bits = 8
"""


def small(tmp_path: Path, *, count: int = 3, offers: str = "reserved = true", chat="[30.0, 10.0, 30.0]",
          docs="[400.0, 800.0, 100.0]") -> Path:
    path = tmp_path / "horizon.toml"
    path.write_text(SMALL.format(count=count, offers=offers, chat=chat, docs=docs))
    return path


class TestPlanHorizon:
    def test_one_period_equals_fleet(self, tmp_path):
        """A one-period file without offers is today's fleet: the same least cost, both proven."""
        path = small(tmp_path, count=1, offers="", chat="30.0", docs="400.0")
        plan = plan_horizon(load_horizon_scenario(path))
        fleet_text = path.read_text().replace("[periods]\ncount = 1\n", "")
        (tmp_path / "fleet.toml").write_text(fleet_text)
        fleet = plan_fleet(load_fleet_scenario(tmp_path / "fleet.toml"))
        assert plan.status == fleet.status == "optimal"
        assert plan.summary["total_usd"] == pytest.approx(fleet.summary["total_usd_per_hour"], abs=1e-6)

    def test_plan_meets_every_rule_and_beats_both_baselines(self, tmp_path):
        plan = plan_horizon(load_horizon_scenario(small(tmp_path)), time_limit_s=60)
        assert horizon_broken_rules(plan.data, plan.solution) == []
        s = plan.summary
        assert s["total_usd"] == pytest.approx(plan.schedule["usd"].sum())  # the schedule adds up to the total
        assert s["total_usd"] <= s["on_demand_baseline_usd"] + 1e-9
        assert s["total_usd"] <= s["reserved_at_peak_baseline_usd"] + 1e-9
        assert set(plan.schedule["source"]) <= {"reserved", "on_demand", "spot"}

    def test_cpsat_cross_checks_highs(self, tmp_path):
        """On a small real plan (two workloads, two GPU types, three periods, reservations) CP-SAT on the plain
        model and HiGHS on the reduced one prove the same least cost."""
        scenario = load_horizon_scenario(small(tmp_path, offers="reserved = true\nspot_available = [0, 8, 0]"))
        highs = plan_horizon(scenario, backend="milp", time_limit_s=60)
        plain = solve_horizon(highs.data, "cpsat", reduce=False, time_limit_s=60)
        assert highs.status == "optimal" and plain.status == "OPTIMAL"
        assert plain.objective == highs.solution.objective
        assert horizon_broken_rules(highs.data, plain) == []

    def test_default_ratios_are_cited(self):
        """The defaults: reserved 0.70 and spot 0.80 of on demand, from list prices cited in the file."""
        assert default_ratios() == {"reserved_over_on_demand": 0.70, "spot_over_on_demand": 0.80}
        scenario = load_horizon_scenario(_written(SMALL.format(
            count=3, offers="reserved = true\nspot_available = 4", chat="[1.0, 2.0, 3.0]", docs="[1.0, 1.0, 1.0]")))
        h100 = scenario.offers[0]
        assert h100.reserved_usd_per_hour == pytest.approx(2.1 * 0.70)
        assert h100.spot_usd_per_hour == pytest.approx(2.1 * 0.80)
        assert scenario.offers[1].reserved_usd_per_hour is None and scenario.offers[1].spot_usd_per_hour is None

    def test_demand_csv(self, tmp_path):
        """Profiles from a CSV (period,workload,requests_per_s) equal the same profiles written inline."""
        text = SMALL.format(count=2, offers="", chat="[5.0, 6.0]", docs="[100.0, 200.0]")
        inline = load_horizon_scenario(_written(text, tmp_path / "a.toml"))
        (tmp_path / "demand.csv").write_text("period,workload,requests_per_s\n0,chat-8b,5\n1,chat-8b,6\n")
        with_csv = text.replace("[periods]\n", '[periods]\ndemand_csv = "demand.csv"\n').replace(
            "requests_per_s = [5.0, 6.0]\n", "")
        read = load_horizon_scenario(_written(with_csv, tmp_path / "b.toml"))
        assert np.array_equal(read.demand_requests_per_s, inline.demand_requests_per_s)


def _written(text: str, path: Path | None = None) -> Path:
    import tempfile

    path = path or Path(tempfile.mkdtemp()) / "horizon.toml"
    path.write_text(text)
    return path


class TestCommand:
    def run(self, capsys, *args):
        code = cli.main(["fleet", *map(str, args)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    def test_writes_every_output(self, tmp_path, capsys):
        out = tmp_path / "out"
        code, stdout, _ = self.run(capsys, small(tmp_path), "--out", out, "--jobs", 1)
        assert code in (0, 3)
        assert {p.name for p in out.iterdir()} == {"reservations.csv", "schedule.csv", "schedule.parquet",
                                                   "summary.json", "horizon.png"}
        summary = json.loads((out / "summary.json").read_text())
        assert {"status", "mip_gap", "total_usd", "on_demand_baseline_usd", "reserved_at_peak_baseline_usd"} <= \
            set(summary)
        assert (out / "schedule.csv").read_text().splitlines()[0] == \
            "period,workload,hardware,mode,layout,tp,pp,ep,batch,replicas,gpus,source,usd"
        assert (out / "reservations.csv").read_text().splitlines()[0].startswith("hardware,reserved_gpus,")
        assert "Reserved for the whole horizon" in stdout

    @pytest.mark.parametrize(("edit", "message"), [
        (("chat=", "[30.0, 10.0]"), "workload 'chat-8b': 'requests_per_s' lists 2 periods, [periods] count is 3"),
        (("chat=", "[30.0, -1.0, 30.0]"), "workload 'chat-8b': 'requests_per_s' in period 1 must be >= 0 (got -1.0)"),
        (("offers=", "reserved_usd_per_hour = -1.0"), "gpu #1 (h100_sxm): 'reserved_usd_per_hour' must be > 0"),
        (("offers=", "spot_available = [1, 2]"), "gpu #1 (h100_sxm): 'spot_available' lists 2 periods"),
        (("docs=", "[400.0, 100000.0, 100.0]"), "workload 'docs-70b' in period 1"),
    ])
    def test_bad_input_is_one_line_exit_2_and_out_untouched(self, tmp_path, capsys, edit, message):
        kwargs = {edit[0].rstrip("="): edit[1]}
        path = small(tmp_path, **kwargs)
        if "100000" in edit[1]:  # no unlimited type: the A100s go, so period 1's demand exceeds every inventory
            path.write_text(path.read_text().replace('[[gpu]]\nhardware = "a100_sxm"\n', ""))
        out = tmp_path / "out"
        code, _, stderr = self.run(capsys, path, "--out", out, "--jobs", 1)
        assert code == 2
        assert len(stderr.strip().splitlines()) == 1 and message in stderr, stderr
        assert not out.exists()

    def test_spot_share_outside_0_1(self, tmp_path, capsys):
        path = small(tmp_path)
        path.write_text(path.read_text().replace('name = "chat-8b"', 'name = "chat-8b"\nmax_spot_share = 1.5'))
        code, _, stderr = self.run(capsys, path, "--out", tmp_path / "out")
        assert code == 2 and "workload 'chat-8b': 'max_spot_share' must be in [0, 1] (got 1.5)" in stderr

    def test_recipe_is_refused_not_ignored(self, tmp_path, capsys):
        code, _, stderr = self.run(capsys, small(tmp_path), "--recipe", "vllm", "--out", tmp_path / "out")
        assert code == 2 and "--recipe: a file with [periods]" in stderr
        assert not (tmp_path / "out").exists()

    def test_confidence_reaches_the_candidates(self, tmp_path, capsys):
        """--confidence applies to a plan over periods as to one hour: capacities from the band's pessimistic end
        can only need more GPUs, so the plan costs no less."""
        plain = plan_horizon(load_horizon_scenario(small(tmp_path)), time_limit_s=60)
        code, stdout, _ = self.run(capsys, small(tmp_path), "--confidence", "0.9", "--out", tmp_path / "out")
        assert code in (0, 3) and "Reserved for the whole horizon" in stdout
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())
        assert summary["total_usd"] >= plain.summary["total_usd"] - 1e-9
