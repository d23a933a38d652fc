"""Issue 21, item 3: the question must be consistent (context vs isl/osl, drafter vs target, precision vs the
hardware's rates) or it is refused in one line naming what disagrees."""

from __future__ import annotations

import dataclasses

import pytest

from infecon.formulations.errors import InstanceError
from infecon.instances.loader import get_model
from infecon.solver import api
from infecon.solver.planning import load_plan
from tests.solver.test_cli import assert_one_line_error, run
from tests.solver.test_planning import EXAMPLE


class TestContextAgainstRequests:
    def test_issue_example(self, capsys):
        """--isl 100000 --context 8: a KV cache for 8 tokens while prefilling 100K is refused, naming both."""
        code, _, err = run(capsys, "frontier", "--model", "llama-3-8b", "--isl", "100000", "--context", "8")
        assert_one_line_error(code, err, "'context' 8 is outside [isl, isl + osl] = [100000, 101024]")

    def test_default_requests_with_a_long_context(self, capsys):
        """--context 8k under an engine with the default 1024/1024 requests: refused with the isl/osl to give."""
        code, _, err = run(capsys, "frontier", "--model", "llama-3-8b", "--context", "8k")
        assert_one_line_error(code, err, "[1024, 2048]", "isl 7488 / osl 1024")

    @pytest.mark.parametrize("context", [1024, 1536, 2048])
    def test_within_the_request_is_kept(self, context):
        problem = api.build_problem("llama-3-8b", "h100", engine="generic", context_tokens=context)
        assert problem.workload.context_tokens == context

    def test_paper_model_takes_a_context_alone(self):
        assert api.build_problem("llama-3-8b", "h100", engine="paper", context_tokens=8000).workload.context_tokens \
            == 8000

    def test_shipped_plan_asks_consistent_questions(self):
        """plan_example.toml: every scenario's decode context lies within its own requests (longdoc priced 1K
        prompts at a 64K context)."""
        for scenario in load_plan(EXAMPLE):
            problem = api.build_problem(**scenario.kwargs)
            if problem.requests is not None and problem.requests.input_tokens > 0:
                low = problem.requests.input_tokens
                assert low <= problem.workload.context_tokens <= low + problem.requests.output_tokens, scenario.name


class TestDrafter:
    def test_larger_than_the_target(self, capsys):
        code, _, err = run(capsys, "frontier", "--model", "llama-3-8b", "--draft", "llama-3-70b")
        assert_one_line_error(code, err, "'draft' Llama 3 70B", "is larger than Llama 3 8B")

    def test_another_tokenizer(self, capsys):
        code, _, err = run(capsys, "frontier", "--model", "llama-3-70b", "--draft", "llama-2-7b")
        assert_one_line_error(code, err, "vocabulary of 32000 tokens", "128256")

    def test_target_as_its_own_drafter_is_allowed(self):
        """The same model as drafter cannot help, but is a fair question: the search answers draft length 0."""
        assert api.build_problem("llama-3-8b", "h100", draft="llama-3-8b").speculative is not None


class TestPrecisionAgainstRates:
    def test_32_bit_weights_without_a_32_bit_rate(self, capsys):
        """32-bit weights ran at the 16-bit tensor-core rate: refused, naming the rates the hardware has."""
        code, _, err = run(capsys, "frontier", "--model", "llama-3-8b", "--weight-bits", "32")
        assert_one_line_error(code, err, "no tensor-core rate for 32-bit weights", "8-bit, 16-bit")

    def test_32_bit_rate_from_a_file(self, tmp_path):
        """A hardware file that gives flop_per_s_32bit runs 32-bit weights at that rate."""
        from infecon.instances.loader import HARDWARE_DIR, load_hardware

        text = (HARDWARE_DIR / "h100_sxm.toml").read_text()
        path = tmp_path / "h100_fp32.toml"
        path.write_text(text.replace("flop_per_s_16bit =", "flop_per_s_32bit = 6.7e13\nflop_per_s_16bit ="))
        hw = load_hardware(path)
        problem = api.build_problem("llama-3-8b", hw, weight_bits=32)
        assert problem.hardware.peak_flop_per_s(32) == 6.7e13


class TestReplacedDenseModel:
    def test_layer_count_follows_n_layers(self):
        """dataclasses.replace(n_layers=16) on a dense model: all 16 layers dense (n_dense_layers was left at 32,
        so the FFN of 32 layers was counted: the stale derived field the API boundary now cannot miss)."""
        small = dataclasses.replace(get_model("llama-3-8b"), n_layers=16)
        assert small.n_dense_ffn_layers == 16 and small.n_moe_layers == 0

    def test_replaced_moe_model_is_checked(self):
        bad = dataclasses.replace(get_model("deepseek-v3"), n_dense_layers=100)
        with pytest.raises(InstanceError, match="'n_dense_layers' must be <= n_layers=61"):
            api.build_problem(bad, "h200")

    @pytest.mark.parametrize("value", [float("nan"), float("inf"), -1, True, 2.5, 5])
    def test_an_edit_of_the_derived_count_is_seen_and_refused(self, value):
        """dataclasses.replace(dense, n_dense_layers=nan) was answered: __post_init__ overwrote the edit with
        n_layers before the API boundary could see it. Now the edit stays and is refused naming the field
        (5 on a 32-layer dense model: inconsistent, a dense model's layers are all dense)."""
        edited = dataclasses.replace(get_model("llama-3-8b"), n_dense_layers=value)
        with pytest.raises(InstanceError, match="'n_dense_layers'"):
            api.build_problem(edited, "h100")

    def test_the_consistent_edits_are_answered(self):
        """All 32 layers of a dense model dense, or None (derived): the same problem as the model itself."""
        dense = get_model("llama-3-8b")
        for value in (32, None):
            edited = dataclasses.replace(dense, n_dense_layers=value)
            assert edited.n_dense_ffn_layers == 32
            assert api.build_problem(edited, "h100").model.n_dense_ffn_layers == 32

    def test_an_moe_model_made_dense_must_say_what_its_layers_are(self):
        """Mixtral with its experts removed keeps n_dense_layers 0: refused (0 of 32 dense layers in a dense model)
        rather than silently taken as 32 dense layers."""
        edited = dataclasses.replace(get_model("mixtral-8x7b"), n_routed_experts=0, n_active_experts=0)
        with pytest.raises(InstanceError, match=r"every layer of a dense model is dense.*got 0 with n_layers=32"):
            api.build_problem(edited, "h100")
        assert api.build_problem(dataclasses.replace(edited, n_dense_layers=None), "h100").model.n_moe_layers == 0


class TestNoGivenValueIsOverwritten:
    """The cause behind n_dense_layers: a spec's ``__post_init__`` re-deriving a field it was given, so an edit
    never reached the check. Every numeric field of every spec keeps the value it was given (or the dataclass
    refuses it), whatever the value."""

    @pytest.mark.parametrize("kind", ["model", "moe", "hardware", "engine"])
    def test_every_field_keeps_its_value(self, kind):
        from infecon.instances.engines import get_engine
        from infecon.instances.loader import get_hardware

        spec = {"model": get_model("llama-3-8b"), "moe": get_model("deepseek-v3"), "hardware": get_hardware("h100"),
                "engine": get_engine("vllm")}[kind]
        checked = 0
        for field in dataclasses.fields(spec):
            if not field.init or str(field.type) not in ("int", "float", "int | None", "float | None"):
                continue
            for value in (float("nan"), -7, 10**6 + 3):
                try:
                    edited = dataclasses.replace(spec, **{field.name: value})
                except (TypeError, ValueError):
                    continue
                kept = getattr(edited, field.name)
                assert kept is value or kept == value, (field.name, value, kept)
                checked += 1
        assert checked >= 5

    def test_the_curve_in_force_is_not_an_input(self):
        """HardwareSpec.gemm_half_tokens is derived per engine from kernel_curves when a frontier runs (it was
        kept under the paper's model and replaced under every engine): an edit is refused naming kernel_curves;
        kernel_curves' own values meet a plausibility bound."""
        from infecon.instances.loader import get_hardware

        h100 = get_hardware("h100")
        with pytest.raises(InstanceError, match="'gemm_half_tokens' is set from 'kernel_curves'"):
            api.build_problem("llama-3-8b", dataclasses.replace(h100, gemm_half_tokens={16: 50.0}))
        with pytest.raises(InstanceError, match="'kernels_in_force' is set from 'measured_kernels'"):
            from infecon.formulations.serving import unit_hardware

            api.build_problem("llama-3-8b", dataclasses.replace(h100, kernels_in_force=unit_hardware(
                h100, "vllm").kernels_in_force or next(iter(h100.measured_kernels.values()))))
        for bad, match in (({"vllm": {16: float("nan")}}, "'kernel_curves.vllm.16'"),
                           ({"vllm": {16: 1e9}}, "'kernel_curves.vllm.16'"),
                           ({"vllm": {3: 100.0}}, "has 3 bits")):
            with pytest.raises(InstanceError, match=match):
                api.build_problem("llama-3-8b", dataclasses.replace(h100, kernel_curves=bad))
        edited = dataclasses.replace(h100, kernel_curves={"vllm": {16: 1000.0}})
        slower = api.frontier("llama-3-8b", edited, engine="vllm", max_gpus=1, max_batch=8).points
        usual = api.frontier("llama-3-8b", h100, engine="vllm", max_gpus=1, max_batch=8).points
        assert (slower["tokens_per_second"].to_numpy() < usual["tokens_per_second"].to_numpy()).all()


class TestRequestsNeedAnEngine:
    """Issue 21: ``infecon.frontier(..., isl=, osl=)`` without an engine ran the paper's decode-only model at context
    0 and dropped them. The API's default (no engine) has no requests, the CLI's is 'generic': the API refuses
    them naming the engine to give, and with it answers exactly what the CLI answers."""

    @pytest.mark.parametrize("given", [dict(isl=2000, osl=500), dict(isl=2000), dict(osl=500),
                                       dict(mode="closed_loop")])
    def test_refused_without_an_engine(self, given):
        with pytest.raises(InstanceError, match=r"needs a serving engine: with engine=None the paper's decode-only "
                                                r"model .*engine='generic' \(the CLI's default\)"):
            api.frontier("llama-3-8b", "h100", max_gpus=1, **given)

    def test_a_context_alone_is_the_papers_model(self):
        problem = api.build_problem("llama-3-8b", "h100", context_tokens=4096)
        assert (problem.engine, problem.mode, problem.workload.context_tokens) == (None, "decode_only", 4096)

    def test_with_the_clis_engine_the_api_answers_as_the_cli(self, capsys):
        from tests.solver.test_cli import frontier_csv

        api_points = api.frontier("llama-3-8b", "h100", engine="generic", isl=2000, osl=500, max_gpus=2,
                                  batch_mode="ladder").points
        cli_points = frontier_csv(capsys, "--model", "llama-3-8b", "--isl", "2000", "--osl", "500", "--max-gpus",
                                  "2", "--batch-ladder")
        assert len(api_points) == len(cli_points) > 3
        assert api_points["tokens_per_second"].to_numpy() == pytest.approx(cli_points["tokens_per_second"].to_numpy(),
                                                                           rel=1e-9)
