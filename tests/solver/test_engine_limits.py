"""Engine limits: usable HBM, running sequences, largest PP; overridable by flag and by plan, sweep and fleet keys."""

from __future__ import annotations

import dataclasses

import pytest

from infecon.formulations.errors import InstanceError
from infecon.instances.engines import get_engine, load_engine
from infecon.instances.fleet_scenario import load_fleet_scenario as load_fleet
from infecon.instances.loader import get_hardware
from infecon.solver import api
from infecon.solver.cli import main


def run(capsys, *argv: str) -> tuple[int, str]:
    """``main(argv)`` as (exit code, stderr); an argparse exit counts as a return."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err.strip()

H200 = get_hardware("h200")


class TestProfiles:
    @pytest.mark.parametrize("family", ["generic", "vllm", "sglang", "trtllm"])
    def test_every_engine_limit_carries_a_source(self, family):
        """Each shipped engine profile sets the limits, each with a source naming where the default comes from."""
        profile = get_engine(family)
        for key in ("memory_fraction", "max_seqs", "max_pp", "attention_dp", "stage_overhead_share"):
            assert profile.sources[key].strip(), key
        assert 0.5 < profile.memory_fraction < 1.0
        assert profile.max_seqs >= 256 and profile.max_pp >= 2

    def test_paper_profile_has_no_limits(self):
        """The paper's model keeps all of HBM, any batch and any PP (its reproduction is unchanged)."""
        paper = get_engine("paper")
        assert (paper.memory_fraction, paper.max_seqs, paper.max_pp, paper.stage_overhead_share) == (1.0, None, None,
                                                                                                    0.0)

    @pytest.mark.parametrize(("line", "message"), [
        ("memory_fraction = { value = 1.5, source = 's' }", "'memory_fraction' must be <= 1.0"),
        ("max_seqs = { value = 0, source = 's' }", "'max_seqs' must be >= 1"),
        ("max_pp = { value = 2.5, source = 's' }", "'max_pp' must be an integer"),
        ("stage_overhead_share = { value = -1, source = 's' }", "'stage_overhead_share' must be >= 0"),
        ("attention_dp = { value = 1, source = 's' }", "'attention_dp' must be true or false"),
    ])
    def test_bad_values_name_file_and_field(self, tmp_path, line, message):
        path = tmp_path / "mine.toml"
        path.write_text(f"name = {{ value = 'mine', source = 's' }}\n{line}\n")
        with pytest.raises(InstanceError, match=message):
            load_engine(path)


class TestBuildProblem:
    def test_memory_fraction_scales_the_capacity_rule(self):
        """vLLM fills 0.9 of HBM: the capacity every rule reads is 0.9 x 141 GB; an override replaces it."""
        assert api.build_problem("llama-3-8b", "h200", engine="vllm").hardware.hbm_capacity_bytes == pytest.approx(
            0.9 * H200.hbm_capacity_bytes, rel=1e-15)
        half = api.build_problem("llama-3-8b", "h200", engine="vllm", memory_fraction=0.5)
        assert half.hardware.hbm_capacity_bytes == pytest.approx(0.5 * H200.hbm_capacity_bytes, rel=1e-15)
        assert api.build_problem("llama-3-8b", "h200").hardware.hbm_capacity_bytes == H200.hbm_capacity_bytes
        assert api.build_problem("llama-3-8b", "h200", engine="paper").hardware.hbm_capacity_bytes == \
            H200.hbm_capacity_bytes

    def test_limits_reach_the_search_space(self):
        """max_seqs and max_pp come from the profile, or the user; engines may leave stages uneven, the paper not."""
        space = api.build_problem("llama-3-8b", "h200", engine="sglang").space
        assert (space.max_seqs, space.max_pp, space.uneven_stages) == (4096, 8, True)
        space = api.build_problem("llama-3-8b", "h200", engine="sglang", max_seqs=7, max_pp=1).space
        assert (space.max_seqs, space.max_pp) == (7, 1)
        assert not api.build_problem("llama-3-8b", "h200", engine="paper").space.uneven_stages

    @pytest.mark.parametrize(("name", "value"), [("memory_fraction", 0.0), ("memory_fraction", 1.01),
                                                 ("max_seqs", 0), ("max_pp", 0), ("max_pp", 1.5)])
    def test_out_of_range_knobs_are_refused(self, name, value):
        with pytest.raises(InstanceError, match=name):
            api.build_problem("llama-3-8b", "h200", engine="vllm", **{name: value})


class TestFrontier:
    def test_max_pp_1_removes_pipeline_parallelism(self):
        """405B (FP4) on at most 8 B200s: the engines' cheap end pipelines; --max-pp 1 leaves only PP 1."""
        kwargs = dict(engine="generic", weight_bits=4, max_gpus=8, batch_mode="ladder")
        assert (api.frontier("llama-3-1-405b", "b200", **kwargs).points["pp"] > 1).any()
        assert (api.frontier("llama-3-1-405b", "b200", max_pp=1, **kwargs).points["pp"] == 1).all()

    def test_uneven_stages_are_searched(self):
        """DeepSeek-V3's 61 layers (prime) split into 2-8 stages under an engine; the paper's model allows 1 or 61."""
        engine = api.build_problem("deepseek-v3", "h200", engine="generic", weight_bits=8)
        from infecon.formulations.space import searched_layouts
        assert set(searched_layouts(engine)[:, 2]) == set(range(1, 9))
        paper = api.build_problem("deepseek-v3", "h200", engine="paper", weight_bits=8, max_gpus=64)
        assert set(searched_layouts(paper)[:, 2]) == {1}

    def test_max_seqs_caps_every_batch(self):
        points = api.frontier("llama-3-8b", "h100", engine="vllm", max_seqs=40, batch_mode="ladder").points
        assert points["batch"].max() <= 40

    def test_explain_names_the_cap(self):
        expl = api.explain("llama-3-8b", "h100", engine="vllm", tp=1, batch=2000)
        assert expl.rule_violation.startswith("max_seqs: a batch of 2000 exceeds the engine's cap of 1024")


class TestFiles:
    @pytest.mark.parametrize(("flag", "value"), [("--memory-fraction", "0"), ("--memory-fraction", "2"),
                                                 ("--max-seqs", "0"), ("--max-seqs", "1.5"), ("--max-pp", "-1"),
                                                 ("--max-pp", "x")])
    def test_bad_flags_give_one_line_and_exit_2(self, capsys, flag, value):
        code, err = run(capsys, "frontier", "--model", "llama-3-8b", flag, value)
        assert code == 2 and len(err.splitlines()) == 1 and flag in err

    def test_plan_keys(self, tmp_path, capsys):
        plan = tmp_path / "plan.toml"
        plan.write_text('[[scenario]]\nname = "a"\nmodel = "llama-3-8b"\nmax_pp = 0\n')
        code, err = run(capsys, "plan", str(plan), "--out", str(tmp_path / "out"))
        assert code == 2 and len(err.splitlines()) == 1 and "max_pp" in err

    def test_sweep_base_keys(self, tmp_path, capsys):
        sweep = tmp_path / "sweep.toml"
        sweep.write_text('[base]\nmodel = "llama-3-8b"\nmemory_fraction = 3.0\n'
                         '[sweep]\nparameter = "price"\nvalues = [1.0, 2.0]\n')
        code, err = run(capsys, "sweep", str(sweep), "--out", str(tmp_path / "out"))
        assert code == 2 and len(err.splitlines()) == 1 and "memory_fraction" in err

    def test_fleet_keys_replace_the_profiles(self, tmp_path):
        """[fleet] sets a default for every workload, a workload its own; a bad value names the table and field."""
        fleet = tmp_path / "fleet.toml"
        body = ('[[gpu]]\nhardware = "h100"\n[[workload]]\nname = "a"\nmodel = "llama-3-8b"\nisl = 100\nosl = 100\n'
                'requests_per_s = 1\nmax_seqs = 64\n[[workload]]\nname = "b"\nmodel = "llama-3-8b"\nisl = 100\n'
                'osl = 100\nrequests_per_s = 1\n')
        fleet.write_text('[fleet]\nmax_pp = 2\nmemory_fraction = 0.8\n' + body)
        a, b = load_fleet(fleet).workloads
        assert (a.engine.max_seqs, a.engine.max_pp, a.engine.memory_fraction) == (64, 2, 0.8)
        assert (b.engine.max_seqs, b.engine.max_pp) == (get_engine("generic").max_seqs, 2)
        assert dataclasses.replace(b.engine, max_pp=8, memory_fraction=0.9) == get_engine("generic")
        fleet.write_text('[fleet]\nmax_seqs = 0\n' + body)
        with pytest.raises(InstanceError, match=r"\[fleet\]: 'max_seqs' must be"):
            load_fleet(fleet)


class TestDrafterStages:
    def test_a_drafter_pipelines_unevenly_where_the_target_does(self):
        """Under an engine the target runs Llama 3 8B at PP 3 (32 layers: 11 + 11 + 10); its drafter must have a
        layout on those 3 GPUs too (it had none with even stages only, and a fixed draft length divided by 0)."""
        from infecon.formulations.space import drafter_layouts
        drafter, h100 = api.resolve_model("llama-3-8b"), get_hardware("h100")
        assert len(drafter_layouts(drafter, h100, 3)) == 0
        assert drafter_layouts(drafter, h100, 3, uneven_stages=True).tolist() == [[1, 1, 3]]
