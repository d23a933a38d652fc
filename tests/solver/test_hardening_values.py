"""Issue 21, item 1: one gate for every value (text -> number, bounds) wherever it enters."""

from __future__ import annotations

import dataclasses

import pytest

import infecon
from infecon.formulations.errors import InstanceError
from infecon.instances.limits import FIELD_RANGES, parse_knob, parse_number
from infecon.instances.loader import HARDWARE_DIR, get_hardware
from tests.solver.test_cli import assert_one_line_error, run

SMALL = ("--model", "llama-3-8b", "--hardware", "h100", "--max-gpus", "2")


class TestParseNumber:
    @pytest.mark.parametrize("text", ["1_000", "\u0663", "0x10", "nan", "inf", "-inf", "1e400", "", " ", "1,2", "--"])
    def test_refused(self, text):
        """Text Python's int/float would take (underscores, non-ASCII digits) or that is no finite number: refused."""
        with pytest.raises(ValueError):
            parse_number(text)
        with pytest.raises(ValueError):
            parse_number(text, whole=True)

    def test_accepted(self):
        """Decimal literals; whole numbers as ASCII digits; 8k for tokens only."""
        assert parse_number(" 0.5 ") == 0.5
        assert parse_number("1e-3") == 0.001
        assert parse_number("+5", whole=True) == 5
        assert parse_number("8k", whole=True, thousands_suffix=True) == 8000
        with pytest.raises(ValueError):
            parse_number("8k", whole=True)
        with pytest.raises(ValueError):
            parse_number("5.0", whole=True)

    def test_knob_gate_names_knob_rule_unit_value(self):
        with pytest.raises(InstanceError, match=r"--price must be a number in \[1e-06, 1e\+06\] \(USD per GPU-hour\), "
                                                r"got '5e-324'"):
            parse_knob("price_usd_per_hour", "5e-324", label="--price")
        assert parse_knob("context", "8k") == 8000


class TestCliDoors:
    @pytest.mark.parametrize(("option", "value"), [("--max-batch", "1_000"), ("--context", "\u0663"),
                                                   ("--price", "5e-324"), ("--price", "0x10"), ("--demand", "inf")])
    def test_frontier_option(self, capsys, option, value):
        """Every flag goes through the one parser: the same text is refused the same way (exit 2, one line)."""
        code, _, err = run(capsys, "frontier", *SMALL, option, value)
        assert_one_line_error(code, err, option)

    def test_explain_batch(self, capsys):
        code, _, err = run(capsys, "explain", *SMALL, "--batch", "1_000")
        assert_one_line_error(code, err, "--batch")


class TestFileBounds:
    def test_every_builtin_hardware_is_plausible(self):
        """The bounds hold every shipped file (each loads through them)."""
        for path in sorted(HARDWARE_DIR.glob("*.toml")):
            infecon.load_hardware(path)

    def test_hardware_field_out_of_bounds(self, tmp_path, capsys):
        """A hardware file with 1e20 bytes of HBM (100 EB) is refused naming the field, like the CLI knobs."""
        text = (HARDWARE_DIR / "h100_sxm.toml").read_text().replace(
            "hbm_capacity_bytes = { value = 80e9", "hbm_capacity_bytes = { value = 1e20")
        path = tmp_path / "big.toml"
        path.write_text(text)
        code, _, err = run(capsys, "frontier", "--model", "llama-3-8b", "--hardware-file", str(path))
        assert_one_line_error(code, err, "big.toml", "'hbm_capacity_bytes' must be a number in [1e+06, 1e+15]",
                              "1e+20")

    def test_engine_profile_needs_its_fields(self, tmp_path, capsys):
        """A profile with only name = "x" no longer loads with defaults no engine was fitted at."""
        path = tmp_path / "x.toml"
        path.write_text('name = "x"\n')
        code, _, err = run(capsys, "frontier", *SMALL, "--engine", str(path))
        assert_one_line_error(code, err, "x.toml", "missing required field 'flop_efficiency'")

    def test_engine_field_out_of_bounds(self, tmp_path, capsys):
        path = tmp_path / "slow.toml"
        path.write_text('name = "slow"\nflop_efficiency = 0.5\nbandwidth_efficiency = 0.5\nkernel_s = 5.0\n'
                        'sequence_layer_s = 0\nstep_s = 0\nrequest_s = 0\n')
        code, _, err = run(capsys, "frontier", *SMALL, "--engine", str(path))
        assert_one_line_error(code, err, "slow.toml", "'kernel_s' must be a number in [0, 0.01]", "5.0")

    def test_every_field_has_a_bound(self):
        """Each numeric field of the hardware and engine specs is in FIELD_RANGES (no field without a bound)."""
        from infecon.formulations.specs import EngineProfile, HardwareSpec, ProtocolLatency

        numeric = {f.name for cls in (HardwareSpec, EngineProfile, ProtocolLatency) for f in dataclasses.fields(cls)
                   if str(f.type) in ("float", "int")}
        assert numeric <= set(FIELD_RANGES), numeric - set(FIELD_RANGES)


class TestApiBoundary:
    def test_replaced_hardware_is_validated(self):
        """The README's what-if, dataclasses.replace, with a negative bandwidth: refused at the API, naming it."""
        bad = dataclasses.replace(get_hardware("h100"), hbm_bandwidth_bytes_per_s=-1.0)
        with pytest.raises(InstanceError, match="'hbm_bandwidth_bytes_per_s' must be a number in"):
            infecon.frontier("llama-3-8b", bad)

    def test_replaced_model_is_validated(self):
        bad = dataclasses.replace(infecon.get_model("llama-3-8b"), n_kv_heads=3)
        with pytest.raises(InstanceError, match="'n_heads' must be a multiple of 'n_kv_heads'"):
            infecon.explain(bad, "h100")

    def test_replaced_engine_is_validated(self):
        from infecon.instances.engines import get_engine

        bad = dataclasses.replace(get_engine("generic"), flop_efficiency=0.0)
        with pytest.raises(InstanceError, match="'flop_efficiency' must be a number in"):
            infecon.frontier("llama-3-8b", "h100", engine=bad)

    @pytest.mark.parametrize("call", [
        lambda: infecon.get_model(None), lambda: infecon.get_hardware(3), lambda: infecon.frontier(None, "h100"),
        lambda: infecon.frontier("llama-3-8b", "h100", context_tokens="8k"),
        lambda: infecon.frontier("llama-3-8b", "h100", price_usd_per_hour="2"),
        lambda: infecon.frontier("llama-3-8b", "h100", engine=3),
    ], ids=["get_model-None", "get_hardware-int", "frontier-None", "context-str", "price-str", "engine-int"])
    def test_wrong_types_are_instance_errors(self, call):
        """Wrong types in the API raise InstanceError with the field, never a bare TypeError/AttributeError."""
        with pytest.raises(InstanceError):
            call()


class TestSweepBounds:
    def test_scaling_past_the_file_bound(self, tmp_path):
        """Scaling a field by 1e6 carries it past the hardware file's bound: refused as the file would be."""
        path = tmp_path / "s.toml"
        path.write_text('[base]\nmodel = "llama-3-8b"\n[sweep]\nparameter = "hardware.hbm_bandwidth_bytes_per_s"\n'
                        'scale = [1, 1e6]\n')
        with pytest.raises(InstanceError, match="'hbm_bandwidth_bytes_per_s' must be a number in"):
            infecon.run_sweep(path)

    def test_range_is_bounded(self, tmp_path):
        path = tmp_path / "s.toml"
        path.write_text('[base]\nmodel = "llama-3-8b"\n[sweep]\nparameter = "context"\n'
                        'range = { start = 1, stop = 9, num = 100000000 }\n')
        with pytest.raises(InstanceError, match=r"'num' must be an integer in \[2, 1000\]"):
            infecon.run_sweep(path)
