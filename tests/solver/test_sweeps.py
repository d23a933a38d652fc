"""Tests for ``solver.sweeps``: the scenario format, its errors, the sweep table and the ``infecon sweep`` command."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from infecon.formulations.errors import InstanceError
from infecon.instances.loader import INSTANCES_DIR
from infecon.solver import api
from infecon.solver.cli import main
from infecon.solver.sweeps import SWEEP_COLUMNS, load_sweep, run_sweep

SCENARIOS = INSTANCES_DIR / "scenarios"
EXAMPLES = sorted(SCENARIOS.glob("sweep_*.toml"))

BASE = """\
[base]
model = "llama-3-70b"
hardware = "h100"
"""


def scenario(tmp_path: Path, text: str, *, base: str = BASE, name: str = "scenario.toml") -> Path:
    """Write a scenario file made of ``base`` and ``text`` and return its path."""
    path = tmp_path / name
    path.write_text(base + textwrap.dedent(text))
    return path


def values_of(path: Path) -> list[float]:
    return [p.value for p in load_sweep(path).points]


class TestScenarioFormat:
    """The three ways of giving the swept values, and the parameter kinds."""

    def test_scale_multiplies_the_base_value(self, tmp_path):
        """``scale`` gives multiples of the base hardware's value."""
        path = scenario(tmp_path, """
            [sweep]
            parameter = "hardware.hbm_bandwidth_bytes_per_s"
            scale = [1, 2, 4]
            """)
        base = api.resolve_hardware("h100").hbm_bandwidth_bytes_per_s
        assert values_of(path) == pytest.approx([base, 2 * base, 4 * base])

    def test_values_are_taken_as_given(self, tmp_path):
        """``values`` are absolute, and reach the problem's workload."""
        path = scenario(tmp_path, """
            [sweep]
            parameter = "weight_bits"
            values = [16, 8, 4]
            """)
        sweep = load_sweep(path)
        assert [p.problem.workload.weight_bits for p in sweep.points] == [16, 8, 4]

    def test_log_range_of_an_integer_knob_is_rounded(self, tmp_path):
        """A log range over ``context`` gives whole token counts from start to stop inclusive (the paper's model: a
        context alone; under an engine it must lie within [isl, isl + osl])."""
        path = scenario(tmp_path, """
            [sweep]
            parameter = "context"
            range = { start = 1000, stop = 128000, num = 6, spacing = "log" }
            """, base=BASE + 'engine = "paper"\n')
        values = values_of(path)
        # geomspace(1000, 128000, 6): ratio 128^(1/5) = 2.639, so 1000, 2639, 6964, 18379, 48503, 128000.
        assert values == [1000, 2639, 6964, 18379, 48503, 128000]
        assert all(isinstance(v, int) for v in values)

    def test_linear_range_is_evenly_spaced(self, tmp_path):
        """A linear range over a fractional knob keeps fractions."""
        path = scenario(tmp_path, """
            [sweep]
            parameter = "acceptance"
            range = { start = 0.6, stop = 0.9, num = 4, spacing = "linear" }
            """, base=BASE + 'draft = "llama-3-8b"\n')
        assert values_of(path) == pytest.approx([0.6, 0.7, 0.8, 0.9])

    def test_protocol_wildcard_scales_each_protocol_its_own_value(self, tmp_path):
        """``protocols.*.base_latency_s`` with scale 0.5 halves every protocol's base latency."""
        path = scenario(tmp_path, """
            [sweep]
            parameter = "hardware.protocols.*.base_latency_s"
            scale = [1, 0.5]
            """)
        base, half = (p.problem.hardware.protocols for p in load_sweep(path).points)
        assert set(base) == set(half) == {"LL", "LL128", "Simple"}
        for name in base:
            assert half[name].base_latency_s == pytest.approx(base[name].base_latency_s / 2)
            assert half[name].intra_hop_latency_s == base[name].intra_hop_latency_s

    def test_model_field_is_replaced_and_revalidated(self, tmp_path):
        """``model.n_kv_heads`` reaches the model spec, leaving the other fields alone."""
        path = scenario(tmp_path, """
            [sweep]
            parameter = "model.n_kv_heads"
            values = [8, 1]
            """)
        models = [p.problem.model for p in load_sweep(path).points]
        assert [m.n_kv_heads for m in models] == [8, 1]
        assert models[1].n_layers == models[0].n_layers == api.resolve_model("llama-3-70b").n_layers

    def test_node_size_values(self, tmp_path):
        """``hardware.node_size_gpus`` takes whole numbers such as 8 and 72."""
        path = scenario(tmp_path, """
            [sweep]
            parameter = "hardware.node_size_gpus"
            values = [8, 72]
            """)
        assert [p.problem.hardware.node_size_gpus for p in load_sweep(path).points] == [8, 72]

    def test_mapping_input_is_accepted(self):
        """``run_sweep`` takes the parsed mapping as well as a path."""
        table = run_sweep({"base": {"model": "llama-3-8b"}, "sweep": {"parameter": "price", "values": [1, 2]}})
        assert table["usd_per_million_tokens_at_speed"].iloc[1] == pytest.approx(
            2 * table["usd_per_million_tokens_at_speed"].iloc[0])


class TestScenarioErrors:
    """Every malformed scenario fails with an ``InstanceError`` naming the file, the field and the rule."""

    @pytest.mark.parametrize(("text", "expected"), [
        ('[sweep]\nparamter = "context"\nvalues = [1]\n', "[sweep]: unknown field 'paramter'"),
        ('[sweep]\nparameter = "context"\nvalues = [1]\n[reports]\nx = 1\n', "unknown field 'reports'"),
        ('[sweep]\nparameter = "hardware.hbm_bandwith"\nscale = [1, 2]\n', "unknown parameter 'hardware.hbm_bandwith'"),
        ('[sweep]\nparameter = "hardware.protocols.LL256.base_latency_s"\nscale = [1]\n', "has protocols"),
        ('[sweep]\nparameter = "hardware.protocols.LL.latency"\nscale = [1]\n', "protocol fields are"),
        ('[sweep]\nparameter = "model.n_layer"\nvalues = [1]\n', "unknown parameter 'model.n_layer'"),
        ('[sweep]\nparameter = "tokens"\nvalues = [1]\n', "unknown parameter 'tokens'"),
        ('[sweep]\nparameter = "context"\nvalues = ["8k"]\n', "'values' must be a non-empty list of numbers"),
        ('[sweep]\nparameter = "context"\nvalues = []\n', "'values' must be a non-empty list of numbers"),
        ('[sweep]\nparameter = "context"\nvalues = [1]\nscale = [1]\n', "exactly one of 'scale', 'values' or 'range'"),
        ('[sweep]\nparameter = "context"\n', "exactly one of 'scale', 'values' or 'range' (got none)"),
        ('[sweep]\nparameter = "context"\nrange = { start = 1, stop = 9, num = 1 }\n',
         "'num' must be an integer in [2, 1000]"),
        ('[sweep]\nparameter = "context"\nrange = { start = 9, stop = 9, num = 3 }\n', "'stop' must be > 'start'"),
        ('[sweep]\nparameter = "context"\nrange = { start = 0, stop = 9, num = 3, spacing = "log" }\n',
         "log spacing needs 'start' > 0"),
        ('[sweep]\nparameter = "context"\nrange = { start = 1, stop = 9, num = 3, spacing = "exp" }\n',
         "'spacing' must be"),
        ('[sweep]\nparameter = "context"\nrange = { start = 1, stop = 9, count = 3 }\n', "unknown field 'count'"),
        ('[sweep]\nparameter = "acceptance"\nvalues = [0.7]\n', "needs a drafter"),
        ('[sweep]\nparameter = "demand"\nscale = [1, 2]\n', "'scale' needs a base value for 'demand'"),
        ('[sweep]\nparameter = "hardware.node_size_gpus"\nvalues = [7.5]\n', "takes whole numbers"),
        ('[sweep]\nparameter = "weight_bits"\nvalues = [16, 3]\n', "'weight_bits' must be one of 4, 8, 16, 32"),
        ('[sweep]\nparameter = "hardware.hbm_bandwidth_bytes_per_s"\nvalues = [-1]\n',
         "'hbm_bandwidth_bytes_per_s' must be a number in [1e+09, 1e+15] (bytes/s), got -1"),
        ('[sweep]\nparameter = "model.n_kv_heads"\nvalues = [3]\n', "'n_heads' must be a multiple of 'n_kv_heads'"),
        ('[sweep]\nparameter = "context"\nvalues = [1]\n[report]\nspeed_tokens_per_s = 0\n',
         "'speed_tokens_per_s' must be a number > 0"),
    ])
    def test_malformed_sweep_is_rejected(self, tmp_path, text, expected):
        """Each malformed [sweep] or [report] raises with a message naming the file and the problem."""
        path = scenario(tmp_path, text)
        with pytest.raises(InstanceError) as info:
            load_sweep(path)
        assert str(info.value).startswith(str(path))
        assert expected in str(info.value)

    def test_unknown_model_names_the_file(self, tmp_path):
        """An unknown model propagates the loader's message, prefixed with the file and table."""
        path = scenario(tmp_path, '[sweep]\nparameter = "context"\nvalues = [1]\n',
                        base='[base]\nmodel = "llama-9-1t"\n')
        with pytest.raises(InstanceError, match=r"scenario\.toml: \[base\] unknown model 'llama-9-1t'"):
            load_sweep(path)

    def test_unknown_base_key_is_rejected(self, tmp_path):
        """A typo in [base] is an error, not a silently ignored knob."""
        path = scenario(tmp_path, '[sweep]\nparameter = "context"\nvalues = [1]\n', base=BASE + "weight_bit = 8\n")
        with pytest.raises(InstanceError, match=r"\[base\]: unknown field 'weight_bit'"):
            load_sweep(path)

    def test_wrong_base_type_is_rejected(self, tmp_path):
        """A base knob of the wrong type names the key and the expected type."""
        path = scenario(tmp_path, '[sweep]\nparameter = "price"\nvalues = [1]\n', base=BASE + 'context = "8k"\n')
        with pytest.raises(InstanceError, match="'context' must be an integer"):
            load_sweep(path)

    def test_missing_tables_are_rejected(self, tmp_path):
        """A file without [sweep] says so."""
        path = scenario(tmp_path, "")
        with pytest.raises(InstanceError, match=r"missing required table \[sweep\]"):
            load_sweep(path)

    def test_malformed_toml_names_the_file(self, tmp_path):
        """A TOML syntax error is an InstanceError naming the file."""
        path = scenario(tmp_path, "[sweep\n")
        with pytest.raises(InstanceError, match="malformed TOML"):
            load_sweep(path)

    def test_overridden_hardware_field_is_rejected(self, tmp_path):
        """Sweeping the hardware price while [base] sets 'price' would be undone, so it is refused."""
        path = scenario(tmp_path, '[sweep]\nparameter = "hardware.price_usd_per_hour"\nscale = [1, 2]\n',
                        base=BASE + "price = 3.0\n")
        with pytest.raises(InstanceError, match="overridden by \\[base\\] 'price'"):
            load_sweep(path)


class TestRunSweep:
    """The sweep table's numbers."""

    def test_doubling_hbm_bandwidth_raises_speed_by_less_than_2x(self):
        """Doubling HBM bandwidth speeds up Llama 3 70B at short context, far less than 2x (paper: <= ~20% latency)."""
        table = run_sweep(SCENARIOS / "sweep_bandwidth.toml")
        assert list(table.columns) == SWEEP_COLUMNS
        doubled = table[table["scale"] == 2].iloc[0]
        assert 1.0 < doubled["speed_ratio"] < 1.35
        assert doubled["max_tokens_per_second"] == pytest.approx(
            doubled["speed_ratio"] * table["max_tokens_per_second"].iloc[0])

    def test_row_matches_the_frontier(self):
        """Each row's max speed, GPUs and cost at the report speed come from that value's frontier."""
        table = run_sweep({"base": {"model": "llama-3-70b", "isl": 7500, "osl": 1000},
                           "sweep": {"parameter": "weight_bits", "values": [16, 8]},
                           "report": {"speed_tokens_per_s": 60}})
        # A sweep's default serving model is 'infecon frontier''s (engine generic), not the Python API's (none);
        # it searches the batch ladder (sweeps.SWEEP_BATCH_MODE), where the command searches every integer.
        points = api.frontier("llama-3-70b", "h100", isl=7500, osl=1000, weight_bits=8, engine="generic",
                              batch_mode="ladder").points
        row = table.iloc[1]
        fastest = points.loc[points["tokens_per_second"].idxmax()]
        assert row["max_tokens_per_second"] == pytest.approx(fastest["tokens_per_second"])
        assert row["gpus_at_max"] == fastest["gpus"]
        assert row["layout_at_max"].startswith("TP ") and f"batch {int(fastest['batch'])}" in row["layout_at_max"]
        cheapest = points[points["tokens_per_second"] >= 60]["usd_per_million_tokens"].min()
        assert row["usd_per_million_tokens_at_speed"] == pytest.approx(cheapest)
        assert row["frontier_points"] == len(points)
        assert table["speed_ratio"].iloc[0] == table["cost_ratio"].iloc[0] == 1.0

    def test_infeasible_value_gets_a_note_not_an_abort(self):
        """A value where nothing fits (70B 16-bit on one 80 GB GPU) gives NaNs and a note; the others still run."""
        table = run_sweep({"base": {"model": "llama-3-70b"}, "sweep": {"parameter": "max_gpus", "values": [8, 1]}})
        assert len(table) == 2
        assert table["note"].iloc[0] == ""
        assert table["max_tokens_per_second"].iloc[0] > 0
        assert math.isnan(table["max_tokens_per_second"].iloc[1])
        assert math.isnan(table["speed_ratio"].iloc[1])
        assert "infeasible" in table["note"].iloc[1] and "hbm_capacity" in table["note"].iloc[1]

    def test_unreachable_report_speed_gives_nan_cost_and_a_note(self):
        """When no point reaches the report speed the cost is NaN and the note says how fast it gets."""
        table = run_sweep({"base": {"model": "llama-3-70b"}, "sweep": {"parameter": "weight_bits", "values": [16]},
                           "report": {"speed_tokens_per_s": 10000}})
        assert math.isnan(table["usd_per_million_tokens_at_speed"].iloc[0])
        assert table["note"].iloc[0].startswith("slower than 10000 tok/s")

    @pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
    def test_example_runs(self, path):
        """Every shipped example runs as is and gives a finite speed and cost on its first row."""
        table = run_sweep(path)
        assert len(table) >= 2
        assert np.isfinite(table["max_tokens_per_second"].iloc[0])
        assert np.isfinite(table["usd_per_million_tokens_at_speed"].iloc[0])

    def test_examples_cover_the_studies(self):
        """The six example studies named in the docs are all shipped."""
        names = {p.stem for p in EXAMPLES}
        assert {"sweep_bandwidth", "sweep_latency", "sweep_node_size", "sweep_precision", "sweep_context",
                "sweep_acceptance"} <= names


class TestSweepCommand:
    """``infecon sweep``."""

    def test_writes_csv_and_png(self, tmp_path, capsys):
        """With --out the command prints the table and writes sweep.csv (equal to the API's table) and sweep.png."""
        code = main(["sweep", str(SCENARIOS / "sweep_precision.toml"), "--out", str(tmp_path / "out")])
        assert code == 0
        assert "max tok/s" in capsys.readouterr().out
        written = pd.read_csv(tmp_path / "out" / "sweep.csv")
        expected = run_sweep(SCENARIOS / "sweep_precision.toml")
        pd.testing.assert_series_equal(written["max_tokens_per_second"], expected["max_tokens_per_second"])
        assert (tmp_path / "out" / "sweep.png").stat().st_size > 0

    def test_prints_only_without_out(self, tmp_path, capsys, monkeypatch):
        """Without --out nothing is written."""
        monkeypatch.chdir(tmp_path)
        assert main(["sweep", str(SCENARIOS / "sweep_latency.toml")]) == 0
        assert list(tmp_path.iterdir()) == []

    def test_bad_file_exits_2_with_one_line(self, tmp_path, capsys):
        """A malformed scenario exits 2 with a one-line error naming the file."""
        path = scenario(tmp_path, '[sweep]\nparamter = "context"\n')
        assert main(["sweep", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and str(path) in err and "paramter" in err


class TestServingModelKeys:
    """A sweep selects the serving model as 'infecon frontier' does; unset, it is the command's default, named."""

    def test_default_is_the_frontier_commands(self):
        """No engine key: the base problem equals the one 'infecon frontier --model llama-3-70b' builds."""
        from infecon.solver import cli

        args = cli.build_parser().parse_args(["frontier", "--model", "llama-3-70b"])
        expected = api.build_problem("llama-3-70b", "h100", **cli.problem_kwargs(args))
        base = load_sweep({"base": {"model": "llama-3-70b"}, "sweep": {"parameter": "price", "values": [2]}}).base
        assert (base.engine, base.mode, base.requests, base.workload) == (
            expected.engine, expected.mode, expected.requests, expected.workload)
        assert base.engine.name == "generic" and base.mode == "closed_loop"
        # Mean decode context of 1024-in/1024-out requests: 1024 + 1024/2 = 1536 tokens.
        assert base.workload.context_tokens == 1536

    def test_every_key_reaches_the_problem(self):
        """engine, mode, isl, osl, ttft_max_s and tpot_max_s each land in the built problem."""
        base = load_sweep({"base": {"model": "llama-3-8b", "engine": "vllm", "mode": "static_batch", "isl": 2000,
                                    "osl": 500, "ttft_max_s": 1.5, "tpot_max_s": 0.05},
                           "sweep": {"parameter": "price", "values": [2]}}).base
        assert base.engine.name == "vllm" and base.mode == "static_batch"
        assert (base.requests.input_tokens, base.requests.output_tokens) == (2000, 500)
        assert (base.constraints.ttft_max_s, base.constraints.tpot_max_s) == (1.5, 0.05)

    def test_paper_engine_is_decode_only(self):
        """engine = "paper" without isl/osl: the paper's decode-only model at 'context' (the shipped sweeps)."""
        base = load_sweep(SCENARIOS / "sweep_bandwidth.toml").base
        assert base.engine.name == "paper" and base.mode == "decode_only" and base.workload.context_tokens == 0

    def test_header_names_the_serving_model(self, capsys):
        """The printed header says which model was used, so a default is never silent."""
        assert main(["sweep", str(SCENARIOS / "sweep_precision.toml")]) == 0
        assert "(engine paper, decode_only, context 0 tokens)" in capsys.readouterr().out.splitlines()[0]

    def test_isl_is_sweepable(self):
        """Scaling isl starts from its default 1024 under a serving engine: 1024, 2048."""
        assert values_of_mapping({"base": {"model": "llama-3-8b"},
                                  "sweep": {"parameter": "isl", "scale": [1, 2]}}) == [1024, 2048]

    @pytest.mark.parametrize(("key", "value", "message"), [
        ("mode", "fast", "'mode' must be one of decode_only, static_batch, closed_loop, disaggregated (got 'fast')"),
        ("isl", "2000", "'isl' must be an integer (got '2000')"),
        ("isl", 10**9, "'isl' must be an integer in [0, 100000000]"),
        ("ttft_max_s", -1, "'ttft_max_s' must be a positive number <= 86400 (seconds), got -1"),
        ("tpot_max_s", True, "'tpot_max_s' must be a number (got True)"),
        ("engine", "nosuch", "nosuch"),
    ])
    def test_bad_values_name_file_and_key(self, tmp_path, key, value, message):
        """Each new key is validated, naming the file, the table and the key."""
        import json

        literal = json.dumps(value) if not isinstance(value, bool) else str(value).lower()
        path = scenario(tmp_path, f'{key} = {literal}\n[sweep]\nparameter = "price"\nvalues = [2]\n')
        with pytest.raises(InstanceError) as caught:
            load_sweep(path)
        text = str(caught.value)
        assert text.startswith(f"{path}: [base]") and message in text and "\n" not in text


def values_of_mapping(data: dict) -> list[float]:
    return [p.value for p in load_sweep(data).points]


class TestBatchResolution:
    """Sweeps keep the ~1.4x batch ladder (``sweeps.SWEEP_BATCH_MODE``); 'infecon frontier' searches every integer."""

    def test_every_sweep_point_searches_the_ladder(self):
        """The shipped acceptance sweep (a drafter at context 0) and its base run on the ladder, unless batch_sizes."""
        sweep = load_sweep(SCENARIOS / "sweep_acceptance.toml")
        assert sweep.base.space.batch_mode == "ladder"
        assert {point.problem.space.batch_mode for point in sweep.points} == {"ladder"}
        assert api.build_problem("llama-3-70b", "h100").space.batch_mode == "all"
