"""Fleet planning end to end: every plan re-checked from the single-deployment model, bad input, frontier, Ray."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from infecon.formulations.errors import InstanceError, NoFeasibleLayoutError
from infecon.formulations.serving import DEFAULT_PREFILL_UTILIZATION
from infecon.instances.fleet_scenario import load_fleet_scenario
from infecon.solver import api, cli
from infecon.solver.fleet.candidates import CANDIDATE_COLUMNS
from infecon.solver.fleet.plan import fleet_data, fleet_frontier, generate_candidates, plan_fleet, solve

EXAMPLE = Path(__file__).resolve().parents[2] / "instances" / "scenarios" / "fleet_example.toml"

SMALL = """
[fleet]
disaggregated = "{disaggregated}"
[[gpu]]
hardware = "h100_sxm"
available = {h100}
price_usd_per_hour = 2.1
[[gpu]]
hardware = "a100_sxm"
[[workload]]
name = "chat-8b"
model = "llama_3_8b"
isl = 1000
osl = 300
requests_per_s = 30.0
ttft_max_s = 0.5
tpot_max_s = {tpot}
[[workload]]
name = "docs-70b"
model = "llama_3_70b"
isl = 4000
osl = 200
output_tok_per_s = 400.0
ttft_max_s = 3.0
tpot_max_s = 0.05
weight_bits = 8
"""


def write(tmp_path: Path, text: str, name: str = "fleet.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def small(tmp_path: Path, disaggregated: str = "allow", h100: int = 8, tpot: float = 0.02) -> Path:
    return write(tmp_path, SMALL.format(disaggregated=disaggregated, h100=h100, tpot=tpot))


def route_of(workload, gpu) -> str | None:
    """Where a KV cache may go from a prefill replica of ``workload`` on ``gpu``: its type, vendor, or anywhere."""
    return {"same_hardware": gpu.key, "same_vendor": gpu.hardware.name.split()[0], "any": ""}[workload.kv_transfer]


def recheck(plan) -> None:
    """Every row re-evaluated with ``api.explain`` at its deployment meets its SLOs; the rows meet every rule."""
    scenario = plan.scenario
    workloads = {w.name: w for w in scenario.workloads}
    gpus = {g.key: g for g in scenario.gpus}
    capacity: dict[tuple[str, str], float] = {}
    for row in plan.plan.itertuples():
        w, g = workloads[row.workload], gpus[row.hardware]
        serving_mode = "closed_loop" if row.mode == "closed_loop" else "disaggregated"
        e = api.explain(w.model, g.hardware, tp_rows=int(row.tp_rows), tp_cols=int(row.tp_cols), pp=int(row.pp),
                        ep=int(row.ep), batch=int(row.batch), isl=w.isl, osl=w.osl, engine=w.engine,
                        mode=serving_mode, weight_bits=w.weight_bits, kv_bits=w.kv_bits,
                        attention_dp="on" if row.attention_dp else "off")
        assert e.rule_violation is None and e.fits, row
        m = e.metrics
        assert int(m.gpus) * g.hardware.price_usd_per_hour * row.replicas == pytest.approx(row.usd_per_hour)
        if row.mode == "disaggregated_prefill":
            rho = scenario.settings.prefill_utilization
            if rho == DEFAULT_PREFILL_UTILIZATION:  # explain sizes a prefill pool at the default utilisation
                assert w.ttft_max_s is None or float(m.ttft_s) <= w.ttft_max_s
            else:  # the plan's TTFT, at its own utilisation, meets the SLO; a less busy pool waits less
                assert w.ttft_max_s is None or row.ttft_s <= w.ttft_max_s
                assert (row.ttft_s < float(m.ttft_s)) == (rho < DEFAULT_PREFILL_UTILIZATION)
            # Hand check of the prefill rate: a pool at utilisation rho runs rho * pp / P1 requests/s per replica.
            per_replica = rho * row.pp / float(m.prefill_s)
        else:
            if w.tpot_max_s is not None:
                assert float(m.tpot_s) <= w.tpot_max_s
            if row.mode == "closed_loop" and w.ttft_max_s is not None:
                assert float(m.ttft_s) <= w.ttft_max_s
            per_replica = float(m.total_tokens_per_second) / w.osl  # output tokens/s over osl
        assert row.capacity_requests_per_s == pytest.approx(per_replica * row.replicas, rel=1e-9)
        key = (row.workload, row.mode, None if row.mode == "closed_loop" else route_of(w, g))
        capacity[key] = capacity.get(key, 0.0) + row.capacity_requests_per_s
    for name, w in workloads.items():
        aggregated = capacity.get((name, "closed_loop", None), 0.0)
        routes = {route for (n, mode, route) in capacity if n == name and mode != "closed_loop"}
        pools = sum(min(capacity.get((name, "disaggregated_prefill", r), 0.0),
                        capacity.get((name, "disaggregated_decode", r), 0.0)) for r in routes)
        # demand, with prefill and decode pools balanced within each route (the KV cache moves only within one)
        assert aggregated + pools >= w.requests_per_s * (1 - 1e-9), name
        if w.kv_transfer == "same_hardware":  # no prefill pool without a decode pool on its GPU type, nor back
            mine = plan.plan[(plan.plan["workload"] == name)]
            assert set(mine.loc[mine["mode"] == "disaggregated_prefill", "hardware"]) == \
                set(mine.loc[mine["mode"] == "disaggregated_decode", "hardware"]), name
    for key, g in gpus.items():
        used = plan.plan.loc[plan.plan["hardware"] == key, "gpus"].sum()
        assert plan.summary["gpus_by_hardware"][key] >= used
        if g.available is not None:
            assert plan.summary["gpus_by_hardware"][key] <= g.available
    assert plan.summary["total_usd_per_hour"] == pytest.approx(plan.plan["usd_per_hour"].sum()) \
        or scenario.settings.whole_nodes
    if plan.summary["naive_usd_per_hour"] is not None:
        assert plan.summary["total_usd_per_hour"] <= plan.summary["naive_usd_per_hour"] + 1e-9


@pytest.fixture(scope="module")
def example():
    """The shipped example's plan, solved once for the tests that read it (a module-level fixture: pytest
    deprecates class-scoped fixtures defined as instance methods)."""
    return plan_fleet(load_fleet_scenario(EXAMPLE), jobs=1)


class TestPlanFleet:
    def test_example_plan_rechecks(self, example):
        """The shipped example's plan is proven optimal, passes every re-check, and an inventory binds."""
        assert example.status == "optimal" and example.summary["mip_gap"] == 0.0
        recheck(example)
        binding = [g for g in example.scenario.gpus
                   if g.available is not None and example.summary["gpus_by_hardware"][g.key] == g.available]
        assert binding, "the example is meant to have an inventory that binds"

    def test_kv_transfer_rule(self, example):
        """Issue 19: by default no workload's prefill pool sits on a GPU type without its decode pool (re-checked
        in ``recheck``); ``kv_transfer = "any"`` lifts the rule, which can only lower the cost, and on the shipped
        example the unrestricted optimum does pair pools across GPU types (what the rule forbids)."""
        assert all(w.kv_transfer == "same_hardware" for w in example.scenario.workloads)
        free = plan_fleet(dataclasses.replace(example.scenario, workloads=tuple(
            dataclasses.replace(w, kv_transfer="any") for w in example.scenario.workloads)), jobs=1)
        recheck(free)
        assert free.status == "optimal"
        assert free.summary["total_usd_per_hour"] <= example.summary["total_usd_per_hour"] + 1e-9
        crossed = [name for name, rows in free.plan.groupby("workload")
                   if set(rows.loc[rows["mode"] == "disaggregated_prefill", "hardware"])
                   != set(rows.loc[rows["mode"] == "disaggregated_decode", "hardware"])]
        assert crossed, "the shipped example is meant to show the rule binding"

    def test_kv_transfer_key_is_read(self, tmp_path):
        """``kv_transfer`` in [fleet] is every workload's default; a workload may override it; a bad value names
        the field."""
        text = SMALL.format(disaggregated="allow", h100=8, tpot=0.02).replace(
            "[fleet]\n", '[fleet]\nkv_transfer = "same_vendor"\n', 1).replace(
            'name = "docs-70b"', 'name = "docs-70b"\nkv_transfer = "any"')
        scenario = load_fleet_scenario(write(tmp_path, text))
        assert [w.kv_transfer for w in scenario.workloads] == ["same_vendor", "any"]
        with pytest.raises(InstanceError, match="'kv_transfer' must be one of same_hardware, same_vendor, any"):
            load_fleet_scenario(write(tmp_path, text.replace('"any"', '"nvlink"')))

    @pytest.mark.parametrize("disaggregated", ["allow", "never", "only"])
    def test_small_fleets_recheck(self, tmp_path, disaggregated):
        """Small fleets in every disaggregation setting: re-checked, never above the naive plan."""
        plan = plan_fleet(load_fleet_scenario(small(tmp_path, disaggregated)), jobs=1)
        recheck(plan)
        modes = set(plan.plan["mode"])
        if disaggregated == "never":
            assert modes == {"closed_loop"}
        if disaggregated == "only":
            assert "closed_loop" not in modes

    def test_prefill_utilization_setting(self, tmp_path):
        """A prefill pool sized at 50 % busy instead of 70 %: each replica serves 0.5 pp / P1 requests/s (re-checked
        from explain's P1), its TTFT is shorter, and the plan can only cost the same or more."""
        text = SMALL.format(disaggregated="only", h100=64, tpot=0.02)
        default = plan_fleet(load_fleet_scenario(write(tmp_path, text)), jobs=1)
        idle = plan_fleet(load_fleet_scenario(write(tmp_path, text.replace(
            "[fleet]", "[fleet]\nprefill_utilization = 0.5"), "idle.toml")), jobs=1)
        assert idle.scenario.settings.prefill_utilization == 0.5
        assert default.scenario.settings.prefill_utilization == DEFAULT_PREFILL_UTILIZATION
        recheck(idle)
        assert "disaggregated_prefill" in set(idle.plan["mode"])
        assert idle.summary["total_usd_per_hour"] >= default.summary["total_usd_per_hour"]

    def test_inventory_binding_raises_cost(self, tmp_path):
        """Fewer H100s can only make the fleet cost more (or the same), and the plan stays within them."""
        loose = plan_fleet(load_fleet_scenario(small(tmp_path, h100=64)), jobs=1)
        tight = plan_fleet(load_fleet_scenario(small(tmp_path, h100=1)), jobs=1)
        assert tight.summary["gpus_by_hardware"]["h100_sxm"] <= 1
        assert tight.summary["total_usd_per_hour"] >= loose.summary["total_usd_per_hour"]
        recheck(tight)

    def test_mla_fleet_searches_attention_data_parallelism(self, tmp_path):
        """DeepSeek-V3 (MLA) with long prompts and a loose TPOT on H200s: its candidates come in both attention
        shardings, as in ``infecon frontier`` (here data-parallel wins at every GPU count, so only it is a
        candidate), and the cheapest fleet runs attention data-parallel (its latent KV
        cache is split by sequence instead of whole on every TP rank, so far larger batches fit); re-checked."""
        text = """
[fleet]
disaggregated = "never"
[[gpu]]
hardware = "h200"
[[workload]]
name = "reasoning"
model = "deepseek_v3"
isl = 8000
osl = 1000
requests_per_s = 2.0
tpot_max_s = 0.2
weight_bits = 8
"""
        plan = plan_fleet(load_fleet_scenario(write(tmp_path, text)), jobs=1)
        assert plan.candidates["attention_dp"].any()
        assert plan.plan["attention_dp"].all()
        recheck(plan)
        llama = plan_fleet(load_fleet_scenario(small(tmp_path, "never")), jobs=1)
        assert not llama.candidates["attention_dp"].any()

    def test_backends_agree(self, tmp_path):
        scenario = load_fleet_scenario(small(tmp_path, "never"))
        milp = plan_fleet(scenario, jobs=1)
        cpsat = solve(milp.data, "cpsat", time_limit_s=60)
        assert cpsat.status == "OPTIMAL" and cpsat.objective == milp.solution.objective

    def test_whole_nodes(self, tmp_path):
        """In whole nodes every type's GPU count is a multiple of its node size, and the bill covers them."""
        text = SMALL.format(disaggregated="never", h100=64, tpot=0.02).replace("[fleet]", "[fleet]\nwhole_nodes = true")
        plan = plan_fleet(load_fleet_scenario(write(tmp_path, text)), jobs=1)
        prices = {g.key: g.hardware.price_usd_per_hour for g in plan.scenario.gpus}
        nodes = {g.key: g.hardware.node_size_gpus for g in plan.scenario.gpus}
        billed = 0.0
        for key, count in plan.summary["gpus_by_hardware"].items():
            assert count % nodes[key] == 0
            billed += count * prices[key]
        assert plan.summary["total_usd_per_hour"] == pytest.approx(billed)
        recheck(plan)

    def test_budget_names_itself(self, tmp_path):
        text = SMALL.format(disaggregated="never", h100=8, tpot=0.02).replace("[fleet]",
                                                                                "[fleet]\nbudget_usd_per_hour = 1")
        with pytest.raises(NoFeasibleLayoutError, match=r"^budget: the least-cost fleet costs \$"):
            plan_fleet(load_fleet_scenario(write(tmp_path, text)), jobs=1)

    def test_budget_names_itself_in_the_frontier_too(self, tmp_path):
        """An infeasible fleet's frontier was an empty table and exit 0; it names the rule, as a plan does."""
        text = SMALL.format(disaggregated="never", h100=8, tpot=0.02).replace("[fleet]",
                                                                                "[fleet]\nbudget_usd_per_hour = 1")
        with pytest.raises(NoFeasibleLayoutError, match=r"^budget: the least-cost fleet costs \$"):
            fleet_frontier(load_fleet_scenario(write(tmp_path, text)), jobs=1)

    def test_unmeetable_slo_names_the_workload(self, tmp_path):
        with pytest.raises(NoFeasibleLayoutError, match=r"^demand_chat-8b: workload 'chat-8b'.*tpot_max"):
            plan_fleet(load_fleet_scenario(small(tmp_path, tpot=1e-5)), jobs=1)

    def test_process_pool_matches_in_process(self, tmp_path):
        scenario = load_fleet_scenario(small(tmp_path))
        serial = generate_candidates(scenario, jobs=1)
        pooled = generate_candidates(scenario, jobs=2)
        for a, b in zip(serial, pooled, strict=True):
            assert a.frame.equals(b.frame)

    def test_ray_matches_in_process(self, tmp_path):
        """The Ray path (a local runtime) generates exactly the in-process candidates."""
        scenario = load_fleet_scenario(small(tmp_path, "never"))
        scenario = dataclasses.replace(scenario, workloads=scenario.workloads[:1])
        serial = generate_candidates(scenario, jobs=1)
        remote = generate_candidates(scenario, ray=True)
        for a, b in zip(serial, remote, strict=True):
            assert a.frame.equals(b.frame)


class TestFleetFrontier:
    def test_frontier_against_per_scale_solves(self, tmp_path):
        """The loop's frontier equals the non-dominated set of least costs solved at every candidate scale."""
        scenario = load_fleet_scenario(small(tmp_path, "never", tpot=0.03))
        front = fleet_frontier(scenario, tpot_scale_max=1.0, jobs=1)
        assert front.attrs["complete"] and len(front) >= 2
        costs = front["total_usd_per_hour"].to_numpy()
        scales = front["tpot_scale"].to_numpy()
        assert np.all(np.diff(costs) < 0) and np.all(np.diff(scales) > 0)
        # Oracle: the least cost at each distinct scale rank, then keep the strictly cheaper ones.
        generated = generate_candidates(scenario, tpot_scale_max=1.0, jobs=1)
        candidates = pd.concat([c.frame for c in generated], ignore_index=True).reindex(columns=CANDIDATE_COLUMNS)
        data = fleet_data(scenario, candidates)
        distinct = np.unique(candidates["tpot_scale"].to_numpy(dtype=float))
        expected, best = [], None
        for rank, scale in enumerate(distinct):
            s = solve(data, "milp", max_scale_rank=rank)
            if s.status == "OPTIMAL" and (best is None or s.objective < best):
                best = s.objective
                expected.append((float(scale), s.objective / 1e6))
        assert [(round(s, 12), round(c, 6)) for s, c in expected] == \
            [(round(s, 12), round(c, 6)) for s, c in zip(scales, costs, strict=True)]


    def test_grid_of_scales(self, tmp_path):
        """``tpot_scales``: at every candidate scale it is the exact frontier; at a coarse grid, each scale's least
        cost from a plain solve, the ones no cheaper than a tighter scale left out."""
        scenario = load_fleet_scenario(small(tmp_path, "never", tpot=0.03))
        exact = fleet_frontier(scenario, tpot_scale_max=1.0, jobs=1)
        generated = generate_candidates(scenario, tpot_scale_max=1.0, jobs=1)
        candidates = pd.concat([c.frame for c in generated], ignore_index=True).reindex(columns=CANDIDATE_COLUMNS)
        distinct = np.unique(candidates["tpot_scale"].to_numpy(dtype=float))
        every = fleet_frontier(scenario, tpot_scales=list(distinct), jobs=1)
        assert every[["tpot_scale", "total_usd_per_hour"]].equals(exact[["tpot_scale", "total_usd_per_hour"]])
        grid = [0.3, 0.5, 0.55, 0.7, 1.0]
        coarse = fleet_frontier(scenario, tpot_scales=grid, jobs=1)
        data = fleet_data(scenario, candidates)
        expected, best = [], None
        for scale in grid:
            s = solve(data, "milp", max_scale_rank=int(np.searchsorted(distinct, scale, side="right")) - 1)
            if s.status == "OPTIMAL" and (best is None or s.objective < best):
                best = s.objective
                expected.append((scale, s.objective / 1e6))
        assert list(zip(coarse["tpot_scale"], coarse["total_usd_per_hour"].round(6), strict=True)) == \
            [(scale, round(cost, 6)) for scale, cost in expected]


class TestFleetCli:
    def run(self, capsys, *argv):
        code = cli.main(["fleet", *map(str, argv)])
        out = capsys.readouterr()
        return code, out.out, out.err

    def test_writes_every_output(self, tmp_path, capsys):
        out = tmp_path / "out"
        code, stdout, _ = self.run(capsys, small(tmp_path, "never"), "--out", out, "--jobs", 1)
        assert code == 0
        assert {p.name for p in out.iterdir()} == {"plan.csv", "plan.parquet", "summary.json", "fleet.png"}
        summary = json.loads((out / "summary.json").read_text())
        assert {"status", "total_usd_per_hour", "naive_usd_per_hour", "gpus_by_hardware", "mip_gap",
                "wall_s"} <= set(summary)
        header = (out / "plan.csv").read_text().splitlines()[0].split(",")
        assert header[:13] == ["workload", "hardware", "mode", "tp", "pp", "ep", "batch", "replicas", "gpus",
                               "usd_per_hour", "capacity_requests_per_s", "ttft_s", "tpot_s"]
        assert "proven optimal" in stdout

    @pytest.mark.parametrize(("edit", "message"), [
        (("h100_sxm", "h999"), "gpu #1: 'hardware': unknown hardware 'h999'"),
        (('model = "llama_3_8b"', 'model = "llama_9"'), "workload 'chat-8b': 'model': unknown model 'llama_9'"),
        (("requests_per_s = 30.0", "requests_per_s = -3.0"), "'requests_per_s' must be > 0 (got -3.0)"),
        (("available = 8", "available = 8\ncolour = 1"), "gpu #1: unknown field 'colour'"),
        (("isl = 1000", "isl = [1000"), "malformed TOML"),
        (("[fleet]", "[fleet]\nprefill_utilization = 1.5"), "[fleet]: 'prefill_utilization' must be < 1 (got 1.5)"),
        (("tpot_max_s = 0.02", "tpot_max_s = 0.00001"), "demand_chat-8b: workload 'chat-8b'"),
        (("available = 8", "available = 0\n[[gpu]]\nhardware = \"h200\"\navailable = 0"), None),
    ])
    def test_bad_input_is_one_line_exit_2_and_out_untouched(self, tmp_path, capsys, edit, message):
        text = SMALL.format(disaggregated="never", h100=8, tpot=0.02).replace(*edit)
        if message is None:  # inventory 0 everywhere: drop the unlimited A100s
            text = text.replace('[[gpu]]\nhardware = "a100_sxm"\n', "")
            message = "'available' is 0 for every [[gpu]]"
        out = tmp_path / "out"
        code, _, stderr = self.run(capsys, write(tmp_path, text), "--out", out, "--jobs", 1)
        assert code == 2
        assert len(stderr.strip().splitlines()) == 1 and message in stderr, stderr
        assert not out.exists()

    def test_loader_rejects_both_demands(self, tmp_path):
        text = SMALL.format(disaggregated="never", h100=8, tpot=0.02).replace(
            "requests_per_s = 30.0", "requests_per_s = 30.0\noutput_tok_per_s = 10.0")
        with pytest.raises(InstanceError, match="give exactly one of 'requests_per_s' and 'output_tok_per_s'"):
            load_fleet_scenario(write(tmp_path, text))


def test_prefill_pool_diagnosis_problem_takes_explicit_batch_sizes():
    """A prefill kind with no candidate is diagnosed on its pipeline degrees as batch sizes: under a ladder fleet
    those sizes replace the ladder (they crashed as 'batch_sizes and batch_mode' before, on the 50 x 8 bench fleet)."""
    from infecon.solver.fleet.candidates import _problem

    scenario = load_fleet_scenario(EXAMPLE)
    assert scenario.settings.batch == "ladder"
    problem = _problem(scenario.workloads[0], scenario.gpus[0], scenario.settings, "disaggregated", ttft_max_s=1.0,
                       batch_sizes=[1, 2])
    assert problem.space.batch_sizes == (1, 2)
