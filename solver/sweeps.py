"""What-if sweeps: vary one hardware, model or workload parameter and watch the frontier's two headline numbers.

A scenario TOML names a base problem, one swept parameter and the speed at which cost is
reported::

    [base]                      # build_problem knobs by their CLI names
    model = "llama-3-70b"
    hardware = "h100"
    [sweep]
    parameter = "hardware.hbm_bandwidth_bytes_per_s"
    scale = [1, 2, 4]           # or values = [...], or range = { start, stop, num, spacing }
    [report]
    speed_tokens_per_s = 50     # optional, default 50

Each value gets one exact frontier (``solver.api.frontier``) over the batch ladder (``SWEEP_BATCH_MODE``)
and one row: the maximum speed per request, the instance and layout that reach it, and the cheapest
cost at the report speed. The
spec objects are frozen, so a what-if is ``dataclasses.replace`` on a copy; nothing is mutated.
Every value's problem is built (and so validated) before any frontier is computed, so a bad
value fails the whole file at once instead of after minutes of work.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from infecon.formulations.errors import InfeconError, InstanceError
from infecon.formulations.space import DEFAULT_MAX_GPUS, Problem
from infecon.formulations.specs import PROTOCOL_NAMES, SERVING_MODES, HardwareSpec, ModelSpec, ProtocolLatency
from infecon.instances.engines import DEFAULT_ENGINE
from infecon.instances.limits import check_knob as check_knob_range
from infecon.instances.loader import check_hardware, model_from_mapping, read_toml, reject_unknown
from infecon.solver import api
from infecon.solver.frontier import cheapest_row_at_least
from infecon.solver.reports import layout_label, save_figure

DEFAULT_REPORT_SPEED_TOKENS_PER_S = 50.0

# The problem knobs a scenario file may set, by their CLI names: name -> (build_problem keyword, kind).
# Kinds: "name" a built-in name or a path; "path" a file; "int" a whole number; "number" int or float;
# "mode" one of SERVING_MODES.
PROBLEM_KNOBS: dict[str, tuple[str, str]] = {
    "model": ("model", "name"),
    "hardware": ("hardware", "name"),
    "model_file": ("model", "path"),
    "hardware_file": ("hardware", "path"),
    "context": ("context_tokens", "int"),
    "weight_bits": ("weight_bits", "int"),
    "activation_bits": ("activation_bits", "int"),
    "kv_bits": ("kv_bits", "int"),
    "price": ("price_usd_per_hour", "number"),
    "flop_efficiency": ("flop_efficiency", "number"),
    "bandwidth_efficiency": ("bandwidth_efficiency", "number"),
    "demand": ("demand_tokens_per_s", "number"),
    "budget": ("budget_usd_per_hour", "number"),
    "max_gpus": ("max_gpus", "int"),
    "max_batch": ("max_batch", "int"),
    "draft": ("draft", "name"),
    "acceptance": ("acceptance", "number"),
    # The serving model, as 'infecon frontier' --engine/--mode/--isl/--osl/--ttft-max/--tpot-max; unset, the
    # same defaults (engine DEFAULT_ENGINE in its default mode, isl/osl 1024); engine "paper" is the paper's
    # decode-only model.
    "engine": ("engine", "name"),
    "mode": ("mode", "mode"),
    "isl": ("isl", "int"),
    "osl": ("osl", "int"),
    "ttft_max_s": ("ttft_max_s", "number"),
    "tpot_max_s": ("tpot_max_s", "number"),
    # Plan with the pessimistic end of the error band (as 'infecon frontier --confidence'; formulations/bands.py).
    "confidence": ("confidence", "number"),
    "slo_percentile": ("slo_percentile", "number"),  # as --slo-percentile: the SLOs hold for that % of requests
    # Engine limits, as --memory-fraction/--max-seqs/--max-pp; unset, the engine profile's.
    "memory_fraction": ("memory_fraction", "number"),
    "max_seqs": ("max_seqs", "int"),
    "max_pp": ("max_pp", "int"),
}
ENGINE_LIMIT_KNOBS = ("memory_fraction", "max_seqs", "max_pp")
# Only a sweep's [base] takes these two (a plan's scenarios keep the default search space).
_SWEEP_ONLY_KNOBS: dict[str, tuple[str, str]] = {
    "batch_sizes": ("batch_sizes", "int_list"),
    "max_draft": ("max_draft_tokens", "int"),
}
BASE_KEYS = {**PROBLEM_KNOBS, **_SWEEP_ONLY_KNOBS}

# Workload knobs a sweep may vary; the whole-number ones are rounded when scaled or spaced.
SWEEPABLE_KNOBS = ("context", "weight_bits", "activation_bits", "kv_bits", "acceptance", "price", "demand",
                   "max_gpus", "max_batch", "budget", "flop_efficiency", "bandwidth_efficiency", "isl", "osl",
                   "ttft_max_s", "tpot_max_s")
_INT_KNOBS = {"context", "weight_bits", "activation_bits", "kv_bits", "max_gpus", "max_batch", "isl", "osl"}

# Hardware fields a knob overrides inside build_problem: sweeping the field while [base] sets the
# knob would be silently undone, so the combination is refused.
_KNOB_OVERRIDES_FIELD = {"price": "price_usd_per_hour", "flop_efficiency": "flop_efficiency",
                         "bandwidth_efficiency": "bandwidth_efficiency"}

_TOP_LEVEL = {"base", "sweep", "report"}

# A sweep searches the ~1.4x batch ladder, not every integer as 'infecon frontier' does. Why: the shipped
# sweeps run the paper's model at context 0, where every integer batch that fits is ~10^8 per frontier, so
# each value's frontier takes 0.5-4 s instead of a few hundredths (a drafter, sweep_acceptance.toml, the
# most), and a sweep runs one per value. The headline numbers move little: the fastest point is at batch 1
# on both, and the cheapest cost at the report speed is at most one ladder step (~1.4x in batch) from the
# integer optimum. ``batch_sizes`` in [base] still overrides it.
SWEEP_BATCH_MODE = "ladder"
_SWEEP_KEYS = {"parameter", "scale", "values", "range"}
# Each value is one exact frontier (0.05-4 s): 1,000 values is already an hour; a range of 1e8 points built every
# value's problem before the first solve and never finished.
MAX_SWEEP_POINTS = 1000
_RANGE_KEYS = {"start", "stop", "num", "spacing"}
_REPORT_KEYS = {"speed_tokens_per_s"}

SWEEP_COLUMNS = ["parameter", "scale", "value", "max_tokens_per_second", "gpus_at_max", "layout_at_max",
                 "report_speed_tokens_per_s", "usd_per_million_tokens_at_speed", "speed_ratio", "cost_ratio",
                 "frontier_points", "wall_s", "note"]


# ---------------------------------------------------------------- shared settings validation


def is_number(value: Any) -> bool:
    """True for an int or a finite float, False for bools, strings, NaN and infinities."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def check_knob(where: str, key: str, value: Any, kind: str) -> None:
    """Type-check one knob's value (ranges are checked by ``build_problem`` with its own messages)."""
    if kind in ("name", "path"):
        ok = isinstance(value, str) and value.strip() != ""
        expected = "a non-empty string"
    elif kind == "mode":
        ok = value in SERVING_MODES
        expected = f"one of {', '.join(SERVING_MODES)}"
    elif kind == "int":
        ok = not isinstance(value, bool) and isinstance(value, int)
        expected = "an integer"
    elif kind == "int_list":
        ok = isinstance(value, list) and bool(value) and all(
            not isinstance(v, bool) and isinstance(v, int) for v in value)
        expected = "a non-empty list of integers"
    else:
        ok = is_number(value)
        expected = "a number"
    if not ok:
        raise InstanceError(f"{where}: '{key}' must be {expected} (got {value!r})")
    if key in ENGINE_LIMIT_KNOBS:  # refused on load, so a plan stops before running any scenario
        check_knob_range(key, value, label=f"'{key}'", where=where)


def _locate(text: str, base_dir: Path | None, *, is_path: bool) -> str:
    """A relative file path resolved against the scenario file's folder when the file is there."""
    looks_like_file = is_path or text.endswith((".toml", ".json"))
    if looks_like_file and base_dir is not None and not Path(text).is_absolute():
        candidate = base_dir / text
        if candidate.exists():
            return str(candidate)
    return text


def problem_arguments(where: str, settings: Mapping[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """``build_problem`` keyword arguments (including ``model`` and ``hardware``) from validated settings.

    Args:
        where: the file and table to blame in messages, e.g. ``plan.toml: scenario 'chat'``.
        settings: knob name -> value; every key must be in ``BASE_KEYS`` and already type-checked.
        base_dir: the folder of the file the settings came from; relative file paths resolve there.

    Raises:
        InstanceError: no model given, or both a name and a file for the model or the hardware.
    """
    for name_key, file_key in (("model", "model_file"), ("hardware", "hardware_file")):
        if name_key in settings and file_key in settings:
            raise InstanceError(f"{where}: give '{name_key}' or '{file_key}', not both")
    if "model" not in settings and "model_file" not in settings:
        raise InstanceError(f"{where}: missing required field 'model' (or 'model_file')")
    kwargs: dict[str, Any] = {"hardware": "h100", "engine": DEFAULT_ENGINE}  # infecon frontier's defaults
    for key, value in settings.items():
        keyword, kind = BASE_KEYS[key]
        if kind in ("name", "path"):
            value = _locate(value, base_dir, is_path=kind == "path")
        kwargs[keyword] = value
    if "acceptance" in settings and "draft" not in settings:
        raise InstanceError(f"{where}: 'acceptance' needs 'draft' (a drafter model for speculative decoding)")
    return kwargs


def serving_text(problem: Problem) -> str:
    """The serving model a problem uses, for headers: ``engine generic, closed_loop, isl 1024 / osl 1024, context
    1536 tokens`` or ``engine paper, decode_only, context 0 tokens`` (a plan or sweep never leaves it implicit)."""
    if problem.engine is None:
        return f"no engine (the paper's decode-only model), context {problem.workload.context_tokens} tokens"
    text = f"engine {problem.engine.name}, {problem.mode}, "
    if problem.requests is not None and problem.requests.input_tokens > 0:
        text += f"isl {problem.requests.input_tokens} / osl {problem.requests.output_tokens}, "
    return text + f"context {problem.workload.context_tokens} tokens"


def layout_text(row: Mapping[str, Any], speculative: bool) -> str:
    """One frontier point's deployment, e.g. ``TP 4x8 PP 1 EP 1 batch 1`` (plus ``draft 4`` when speculative, and
    ``attention DP`` after EP where attention runs data-parallel)."""
    attention = " attention DP" if bool(row.get("attention_dp", False)) else ""
    text = (f"TP {layout_label(int(row['tp_rows']), int(row['tp_cols']))} PP {int(row['pp'])} "
            f"EP {int(row['ep'])}{attention} batch {int(row['batch'])}")
    return text + (f" draft {int(row['draft_tokens'])}" if speculative else "")


# ---------------------------------------------------------------- the swept parameter


@dataclass(frozen=True)
class Parameter:
    """A parsed ``[sweep] parameter`` path.

    ``kind`` is ``"hardware"`` (a ``HardwareSpec`` field), ``"flops"`` (entries of
    ``flop_per_s_by_bits``), ``"protocol"`` (a ``ProtocolLatency`` field of the named protocols),
    ``"model"`` (a ``ModelSpec`` field) or ``"knob"`` (a ``build_problem`` knob). ``keys`` lists
    the protocols or bit widths a wildcard expands to.
    """

    path: str
    kind: str
    field: str
    keys: tuple = ()
    integer: bool = False

    @property
    def wildcard(self) -> bool:
        return len(self.keys) > 1


def _numeric_fields(cls) -> dict[str, bool]:
    """Field name -> whether it holds a whole number, for the int and float fields of a spec class."""
    kinds = {"int": True, "int | None": True, "float": False}  # specs.py uses postponed (string) annotations
    return {f.name: kinds[str(f.type)] for f in dataclasses.fields(cls) if str(f.type) in kinds}


def parse_parameter(where: str, path: Any, hw: HardwareSpec) -> Parameter:
    """Check a parameter path against the spec classes and the base hardware's protocols.

    Raises:
        InstanceError: naming the path and listing what is accepted at the level that failed.
    """
    if not isinstance(path, str) or not path:
        raise InstanceError(f"{where}: 'parameter' must be a non-empty string (got {path!r})")
    parts = path.split(".")
    hw_fields = _numeric_fields(HardwareSpec)
    model_fields = _numeric_fields(ModelSpec)
    accepted = ("hardware.<field>, hardware.protocols.<LL|LL128|Simple|*>.<field>, "
                "hardware.flop_per_s_by_bits.<bits|*>, model.<field>, or one of " + ", ".join(SWEEPABLE_KNOBS))
    if len(parts) == 1:
        if path in SWEEPABLE_KNOBS:
            return Parameter(path, "knob", path, integer=path in _INT_KNOBS)
        raise InstanceError(f"{where}: unknown parameter '{path}' (expected {accepted})")
    head, rest = parts[0], parts[1:]
    if head == "hardware" and len(rest) == 1:
        if rest[0] in hw_fields:
            return Parameter(path, "hardware", rest[0], integer=hw_fields[rest[0]])
        raise InstanceError(f"{where}: unknown parameter '{path}': hardware fields are "
                            f"{', '.join(sorted(hw_fields))}")
    if head == "hardware" and rest[0] == "protocols" and len(rest) == 3:
        proto, name = rest[1], rest[2]
        protocol_fields = [f.name for f in dataclasses.fields(ProtocolLatency)]
        if name not in protocol_fields:
            raise InstanceError(f"{where}: unknown parameter '{path}': protocol fields are "
                                f"{', '.join(protocol_fields)}")
        if proto == "*":
            return Parameter(path, "protocol", name, tuple(p for p in PROTOCOL_NAMES if p in hw.protocols))
        if proto not in hw.protocols:
            raise InstanceError(f"{where}: unknown parameter '{path}': {hw.name} has protocols "
                                f"{', '.join(hw.protocols)} (or * for all)")
        return Parameter(path, "protocol", name, (proto,))
    if head == "hardware" and rest[0] == "flop_per_s_by_bits" and len(rest) == 2:
        bits = sorted(hw.flop_per_s_by_bits)
        if rest[1] == "*":
            return Parameter(path, "flops", "flop_per_s_by_bits", tuple(bits))
        if rest[1].isdigit() and int(rest[1]) in bits:
            return Parameter(path, "flops", "flop_per_s_by_bits", (int(rest[1]),))
        raise InstanceError(f"{where}: unknown parameter '{path}': {hw.name} has FLOP/s for "
                            f"{', '.join(map(str, bits))} bits (or * for all)")
    if head == "model" and len(rest) == 1:
        if rest[0] in model_fields:
            return Parameter(path, "model", rest[0], integer=True)
        raise InstanceError(f"{where}: unknown parameter '{path}': model fields are "
                            f"{', '.join(sorted(model_fields))}")
    raise InstanceError(f"{where}: unknown parameter '{path}' (expected {accepted})")


def base_value(param: Parameter, model: ModelSpec, hw: HardwareSpec, kwargs: Mapping[str, Any]) -> float | None:
    """The parameter's value in the base problem (the first key's, for a wildcard), or None when unset."""
    if param.kind == "hardware":
        return getattr(hw, param.field)
    if param.kind == "protocol":
        return getattr(hw.protocols[param.keys[0]], param.field)
    if param.kind == "flops":
        return hw.flop_per_s_by_bits[param.keys[0]]
    if param.kind == "model":
        return getattr(model, param.field)
    keyword = BASE_KEYS[param.field][0]
    value = kwargs.get(keyword)
    if value is not None:
        return value
    _, _, requests, context = api.resolve_serving(kwargs.get("engine"), kwargs.get("mode"), kwargs.get("isl"),
                                                  kwargs.get("osl"), kwargs.get("context_tokens"))
    defaults = {"context": context, "weight_bits": 16, "activation_bits": 16,
                "kv_bits": kwargs.get("activation_bits", 16), "acceptance": api.DEFAULT_ACCEPTANCE,
                "price": hw.price_usd_per_hour, "flop_efficiency": hw.flop_efficiency,
                "bandwidth_efficiency": hw.bandwidth_efficiency, "max_gpus": DEFAULT_MAX_GPUS}
    if requests is not None and requests.input_tokens > 0:  # the paper's decode-only model has no isl/osl to scale
        defaults.update(isl=requests.input_tokens, osl=requests.output_tokens)
    return defaults.get(param.field)


def _replace_model(where: str, model: ModelSpec, name: str, value: int) -> ModelSpec:
    """The model with one field changed, re-validated by the loader's own rules (so heads still divide, etc.)."""
    data: dict[str, Any] = {f.name: getattr(model, f.name) for f in dataclasses.fields(ModelSpec)
                            if f.name != "sources" and (f.name != "hf_id" or model.hf_id)}
    if data["n_dense_layers"] is None:
        data.pop("n_dense_layers")  # not given: derived (``ModelSpec.n_dense_ffn_layers``)
    data[name] = value
    return model_from_mapping(Path(where), data)


def _apply(where: str, param: Parameter, per_key: Mapping[Any, float], model: ModelSpec, hw: HardwareSpec,
           kwargs: dict[str, Any]) -> tuple[ModelSpec, HardwareSpec, dict[str, Any]]:
    """The base problem's pieces with the parameter set: ``per_key`` maps each protocol or bit width
    (``None`` for a plain field or knob) to its new value, so a scaled wildcard scales each one's own value."""
    kwargs = dict(kwargs)
    if param.kind == "hardware":
        hw = dataclasses.replace(hw, **{param.field: per_key[None]})
    elif param.kind == "protocol":
        protocols = dict(hw.protocols)
        for proto, value in per_key.items():
            protocols[proto] = dataclasses.replace(protocols[proto], **{param.field: value})
        hw = dataclasses.replace(hw, protocols=protocols)
    elif param.kind == "flops":
        flops = dict(hw.flop_per_s_by_bits)
        for bits, value in per_key.items():
            flops[bits] = value
        hw = dataclasses.replace(hw, flop_per_s_by_bits=flops)
    elif param.kind == "model":
        model = _replace_model(where, model, param.field, per_key[None])
    else:
        kwargs[BASE_KEYS[param.field][0]] = per_key[None]
    if param.kind in ("hardware", "protocol", "flops"):
        # The same plausibility bounds as a hardware file (limits.FIELD_RANGES): scaling cannot carry a value
        # past what the file itself would be refused for.
        hw = check_hardware(hw, where)
    return model, hw, kwargs


# ---------------------------------------------------------------- reading a scenario


@dataclass(frozen=True)
class SweepPoint:
    """One value of the sweep and the problem it defines."""

    scale: float
    value: float
    problem: Problem


@dataclass(frozen=True)
class Sweep:
    """A validated scenario: the parameter, one problem per value, and the report speed."""

    source: str
    parameter: Parameter
    points: tuple[SweepPoint, ...]
    report_speed_tokens_per_s: float
    base: Problem


def _number_list(where: str, key: str, values: Any) -> list[float]:
    if not isinstance(values, list) or not values:
        raise InstanceError(f"{where}: '{key}' must be a non-empty list of numbers (got {values!r})")
    if len(values) > MAX_SWEEP_POINTS:
        raise InstanceError(f"{where}: '{key}' must hold at most {MAX_SWEEP_POINTS} values (got {len(values)})")
    for v in values:
        if not is_number(v):
            raise InstanceError(f"{where}: '{key}' must be a non-empty list of numbers (got {v!r} in {values!r})")
    return [float(v) if isinstance(v, float) else v for v in values]


def _range_values(where: str, spec: Any) -> list[float]:
    """``num`` points from ``start`` to ``stop`` inclusive, evenly spaced on a linear or log scale."""
    if not isinstance(spec, dict):
        raise InstanceError(f"{where}: 'range' must be a table {{ start, stop, num, spacing }} (got {spec!r})")
    reject_unknown(f"{where}.range", spec, _RANGE_KEYS)
    for key in ("start", "stop", "num"):
        if key not in spec:
            raise InstanceError(f"{where}.range: missing required field '{key}'")
    start, stop, num = spec["start"], spec["stop"], spec["num"]
    spacing = spec.get("spacing", "linear")
    for key, value in (("start", start), ("stop", stop)):
        if not is_number(value):
            raise InstanceError(f"{where}.range: '{key}' must be a number (got {value!r})")
    if isinstance(num, bool) or not isinstance(num, int) or not 2 <= num <= MAX_SWEEP_POINTS:
        raise InstanceError(f"{where}.range: 'num' must be an integer in [2, {MAX_SWEEP_POINTS}] (got {num!r})")
    if not stop > start:
        raise InstanceError(f"{where}.range: 'stop' must be > 'start' (got start {start!r}, stop {stop!r})")
    if spacing not in ("linear", "log"):
        raise InstanceError(f"{where}.range: 'spacing' must be \"linear\" or \"log\" (got {spacing!r})")
    if spacing == "log":
        if start <= 0:
            raise InstanceError(f"{where}.range: log spacing needs 'start' > 0 (got {start!r})")
        return list(np.geomspace(start, stop, num))
    return list(np.linspace(start, stop, num))


def _as_integer(where: str, param: Parameter, value: float, *, rounded: bool) -> float:
    """A whole-number field's value: rounded when scaled or spaced, refused when given as a fraction."""
    if not param.integer:
        return float(value)
    if rounded:
        return int(np.rint(value))
    if value != int(value):
        raise InstanceError(f"{where}: '{param.path}' takes whole numbers (got {value!r})")
    return int(value)


def load_sweep(source: str | Path | Mapping[str, Any]) -> Sweep:
    """Read and validate a sweep scenario, building every value's problem.

    Args:
        source: a TOML path, or the parsed mapping itself (messages then say ``<scenario>``).

    Raises:
        InstanceError: naming the file, the table or field and what was expected.
    """
    if isinstance(source, Mapping):
        data, where, base_dir = dict(source), "<scenario>", None
    else:
        path = Path(source)
        data, where, base_dir = read_toml(path), str(path), path.parent
    reject_unknown(where, data, _TOP_LEVEL)
    for table in ("base", "sweep"):
        if table not in data:
            raise InstanceError(f"{where}: missing required table [{table}]")
        if not isinstance(data[table], dict):
            raise InstanceError(f"{where}: '{table}' must be a table (got {data[table]!r})")
    base, sweep, report = data["base"], data["sweep"], data.get("report", {})
    if not isinstance(report, dict):
        raise InstanceError(f"{where}: 'report' must be a table (got {report!r})")

    reject_unknown(f"{where}: [base]", base, BASE_KEYS)
    for key, value in base.items():
        check_knob(f"{where}: [base]", key, value, BASE_KEYS[key][1])
    kwargs = problem_arguments(f"{where}: [base]", base, base_dir)
    if "batch_sizes" not in kwargs:  # explicit sizes are the whole batch domain
        kwargs["batch_mode"] = SWEEP_BATCH_MODE
    try:
        model = api.resolve_model(kwargs.pop("model"))
        hw = api.resolve_hardware(kwargs.pop("hardware"))
        base_problem = api.build_problem(model, hw, **kwargs)
    except InstanceError as exc:
        raise InstanceError(f"{where}: [base] {exc}") from None

    reject_unknown(f"{where}: [report]", report, _REPORT_KEYS)
    speed = report.get("speed_tokens_per_s", DEFAULT_REPORT_SPEED_TOKENS_PER_S)
    if not is_number(speed) or speed <= 0:
        raise InstanceError(f"{where}: [report] 'speed_tokens_per_s' must be a number > 0 (got {speed!r})")

    swhere = f"{where}: [sweep]"
    reject_unknown(swhere, sweep, _SWEEP_KEYS)
    if "parameter" not in sweep:
        raise InstanceError(f"{swhere}: missing required field 'parameter'")
    param = parse_parameter(swhere, sweep["parameter"], hw)
    given = [key for key in ("scale", "values", "range") if key in sweep]
    if len(given) != 1:
        raise InstanceError(f"{swhere}: give exactly one of 'scale', 'values' or 'range' "
                            f"(got {', '.join(given) if given else 'none'})")
    if param.kind == "knob" and param.field == "acceptance" and "draft" not in base:
        raise InstanceError(f"{swhere}: sweeping 'acceptance' needs a drafter: set 'draft' in [base]")
    for knob, field_name in _KNOB_OVERRIDES_FIELD.items():
        if param.kind == "hardware" and param.field == field_name and knob in base:
            raise InstanceError(f"{swhere}: '{param.path}' is overridden by [base] '{knob}'; "
                                f"sweep '{knob}' instead or drop it from [base]")

    if given[0] == "scale":
        scales = _number_list(swhere, "scale", sweep["scale"])
        origin = base_value(param, model, hw, kwargs)
        if origin is None:
            raise InstanceError(f"{swhere}: 'scale' needs a base value for '{param.path}': set it in [base] "
                                "or give 'values'")
        per_point = []
        for s in scales:
            keys = param.keys or (None,)
            originals = {k: (base_value(dataclasses.replace(param, keys=(k,)), model, hw, kwargs)
                             if k is not None else origin) for k in keys}
            per_key = {k: _as_integer(swhere, param, s * v, rounded=True) for k, v in originals.items()}
            value = math.nan if param.wildcard and len(set(per_key.values())) > 1 else next(iter(per_key.values()))
            per_point.append((float(s), value, per_key))
    else:
        raw = _number_list(swhere, "values", sweep["values"]) if given[0] == "values" else \
            _range_values(swhere, sweep["range"])
        per_point = []
        for v in raw:
            value = _as_integer(swhere, param, v, rounded=given[0] == "range")
            per_point.append((math.nan, value, {k: value for k in (param.keys or (None,))}))

    points, seen = [], set()
    for scale, value, per_key in per_point:
        key = tuple(sorted((str(k), v) for k, v in per_key.items()))
        if key in seen:  # rounding can map two range points onto one whole number
            continue
        seen.add(key)
        label = f"{swhere} '{param.path}' = {value:g}" if not math.isnan(value) else f"{swhere} scale {scale:g}"
        try:
            m, h, kw = _apply(label, param, per_key, model, hw, kwargs)
            problem = api.build_problem(m, h, **kw)
        except InstanceError as exc:
            text = str(exc)
            raise InstanceError(text if text.startswith(where) else f"{label}: {text}") from None
        points.append(SweepPoint(scale, value, problem))
    return Sweep(where, param, tuple(points), float(speed), base_problem)


# ---------------------------------------------------------------- running


def run_sweep(source: str | Path | Mapping[str, Any], *, backend: str = "auto") -> pd.DataFrame:
    """One row per swept value: max speed and where it is reached, cost at the report speed, ratios to row 1.

    Args:
        source: a scenario TOML path or its parsed mapping.
        backend: solver backend name; all give the same frontier (``auto`` is the enumeration).

    Returns:
        A DataFrame with ``SWEEP_COLUMNS``. ``scale`` is NaN for ``values``/``range`` sweeps;
        ``value`` is NaN when a scaled wildcard gives different values to different protocols or
        bit widths. A value where nothing is feasible, or nothing reaches the report speed, gets
        NaNs and a ``note`` saying why instead of aborting the sweep. Ratios are to the first row.
        ``attrs`` holds ``source``, ``parameter``, ``model`` and ``hardware``.

    Raises:
        InstanceError: the scenario is malformed (see ``load_sweep``).
    """
    sweep = load_sweep(source)
    speed = sweep.report_speed_tokens_per_s
    rows = []
    for point in sweep.points:
        row: dict[str, Any] = {"parameter": sweep.parameter.path, "scale": point.scale, "value": point.value,
                               "report_speed_tokens_per_s": speed, "note": ""}
        start = time.perf_counter()
        try:
            front = api.frontier(point.problem, None, backend=backend)
        except InfeconError as exc:  # nothing fits at this value: a finding, not a failure
            row.update(max_tokens_per_second=math.nan, gpus_at_max=math.nan, layout_at_max="",
                       usd_per_million_tokens_at_speed=math.nan, frontier_points=0,
                       wall_s=time.perf_counter() - start, note=f"infeasible: {exc}")
            rows.append(row)
            continue
        pts = front.points
        fastest = pts.iloc[int(pts["tokens_per_second"].to_numpy().argmax())]
        cheapest = cheapest_row_at_least(pts, speed)
        cost = math.nan if cheapest is None else float(pts["usd_per_million_tokens"].iloc[cheapest])
        if cheapest is None:
            row["note"] = f"slower than {speed:g} tok/s at best ({float(fastest['tokens_per_second']):.1f})"
        row.update(max_tokens_per_second=float(fastest["tokens_per_second"]), gpus_at_max=int(fastest["gpus"]),
                   layout_at_max=layout_text(fastest, point.problem.speculative is not None),
                   usd_per_million_tokens_at_speed=cost, frontier_points=len(pts),
                   wall_s=time.perf_counter() - start)
        rows.append(row)
    table = pd.DataFrame(rows)
    first = table.iloc[0]
    table["speed_ratio"] = table["max_tokens_per_second"] / first["max_tokens_per_second"]
    table["cost_ratio"] = table["usd_per_million_tokens_at_speed"] / first["usd_per_million_tokens_at_speed"]
    table = table[SWEEP_COLUMNS]
    table.attrs.update(source=sweep.source, parameter=sweep.parameter.path, model=sweep.base.model.name,
                       hardware=sweep.base.hardware.name, serving=serving_text(sweep.base))
    return table


def format_sweep(table: pd.DataFrame) -> str:
    """A header and the table as a person reads it (units in headers, rounded)."""
    speed = table["report_speed_tokens_per_s"].iloc[0]

    def shown(column: str, fmt) -> pd.Series:
        """Formatted values, with '-' where nothing fits or no point reaches the report speed (NaN in the CSV)."""
        return table[column].map(lambda v: "-" if pd.isna(v) else fmt(v))

    view = pd.DataFrame({
        "value": shown("value", lambda v: f"{v:g}"),
        "max tok/s": shown("max_tokens_per_second", lambda v: f"{v:.1f}"),
        "GPUs": shown("gpus_at_max", lambda v: str(int(v))),
        "layout at max": table["layout_at_max"].replace("", "-"),
        f"$/M tok @{speed:g}": shown("usd_per_million_tokens_at_speed", lambda v: f"{v:.4g}"),
        "speed x": shown("speed_ratio", lambda v: f"{v:.3f}"),
        "cost x": shown("cost_ratio", lambda v: f"{v:.3f}"),
        "points": table["frontier_points"],
        "wall s": table["wall_s"].round(2),
    })
    if table["scale"].notna().any():
        view.insert(0, "scale", table["scale"].map(lambda v: f"{v:g}"))
    if (table["note"] != "").any():
        view["note"] = table["note"]
    attrs = table.attrs
    header = (f"sweep of {table['parameter'].iloc[0]} for {attrs.get('model', '?')} on {attrs.get('hardware', '?')} "
              f"({attrs.get('serving', 'serving model not recorded')}); "
              f"cost at >= {speed:g} tok/s per request; ratios relative to the first row")
    return header + "\n" + view.to_string(index=False)


def plot_sweep(table: pd.DataFrame, path: str | Path) -> Path:
    """Two panels against the swept value: max speed per request, and cost at the report speed.

    The x axis is the value, or the multiplier when the value is not one number (scaled
    wildcards); it is logarithmic when the values span more than 10x.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    use_value = table["value"].notna().all()
    x = table["value"] if use_value else table["scale"]
    xlabel = table["parameter"].iloc[0] + ("" if use_value else " (x base)")
    speed = table["report_speed_tokens_per_s"].iloc[0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(x, table["max_tokens_per_second"], marker="o")
    left.set_ylabel("max tokens per second per request")
    right.plot(x, table["usd_per_million_tokens_at_speed"], marker="o", color="tab:red")
    right.set_ylabel(f"USD per million tokens at >= {speed:g} tok/s")
    positive = x[x > 0]
    for ax in (left, right):
        ax.set_xlabel(xlabel, fontsize=8)
        if len(positive) == len(x) and positive.max() / positive.min() > 10:
            ax.set_xscale("log")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"{table.attrs.get('model', '')} on {table.attrs.get('hardware', '')}", fontsize=10)
    return save_figure(fig, path)


# ---------------------------------------------------------------- CLI

SWEEP_HELP = """\
A scenario file sets a base problem ([base], any knob by its CLI name: model, hardware,
model_file, hardware_file, context, weight_bits, activation_bits, kv_bits, price,
flop_efficiency, bandwidth_efficiency, demand, budget, max_gpus, max_batch, batch_sizes,
draft, acceptance, max_draft, the serving model: engine, mode, isl, osl, ttft_max_s,
tpot_max_s, slo_percentile, confidence (as --confidence: the error band's pessimistic end), and
the engine limits memory_fraction, max_seqs, max_pp), one swept parameter ([sweep]) and the
report speed ([report]). Unset, the
serving model is 'infecon frontier''s: engine generic in closed_loop, isl/osl 1024;
engine = "paper" is the paper's decode-only model (the shipped sweep_*.toml use it). The
header names the serving model used. A sweep searches batches ~1.4x apart (1, 2, 3, 4, 6, 8, ...),
not every integer as 'infecon frontier' does: one frontier per value stays a few hundredths of a second.

  [base]
  model = "llama-3-70b"
  hardware = "h100"
  engine = "paper"           # or generic (default), vllm, trtllm, sglang, a profile TOML
  [sweep]
  parameter = "hardware.hbm_bandwidth_bytes_per_s"
  scale = [1, 2, 4]          # multiples of the base value, or:
  # values = [8, 72]         # absolute values, or:
  # range = { start = 1000, stop = 128000, num = 6, spacing = "log" }
  [report]
  speed_tokens_per_s = 50    # cost is the cheapest point at least this fast (default 50)

parameter is one of:
  hardware.<field>                          e.g. hardware.node_size_gpus, hardware.kernel_launch_latency_s
  hardware.protocols.<LL|LL128|Simple|*>.<field>   e.g. hardware.protocols.*.base_latency_s
  hardware.flop_per_s_by_bits.<bits|*>
  model.<field>                             e.g. model.n_kv_heads
  a workload knob: context, weight_bits, activation_bits, kv_bits, acceptance (needs draft),
  price, demand, budget, max_gpus, max_batch, flop_efficiency, bandwidth_efficiency,
  isl, osl, ttft_max_s, tpot_max_s

Whole-number parameters are rounded when scaled or spaced. A value where nothing fits gets a
row of NaNs with a note. Columns: parameter, scale, value, max_tokens_per_second, gpus_at_max,
layout_at_max, report_speed_tokens_per_s, usd_per_million_tokens_at_speed, speed_ratio,
cost_ratio (both relative to the first row), frontier_points, wall_s, note.

examples:
  infecon sweep instances/scenarios/sweep_bandwidth.toml
  infecon sweep instances/scenarios/sweep_context.toml --out out/context
"""


def cmd_sweep(args: argparse.Namespace) -> int:
    from infecon.solver.outputs import output_folder, refuse_clashes, write_atomically

    out = output_folder("--out", args.out) if args.out is not None else None  # before the sweep's solves
    if out is not None:
        refuse_clashes({"--out sweep.csv": out / "sweep.csv", "--out sweep.png": out / "sweep.png"},
                       {"FILE": args.file})
    table = run_sweep(args.file)
    print(format_sweep(table))
    if out is not None:
        try:
            write_atomically(out / "sweep.csv", lambda tmp: table.to_csv(tmp, index=False))
            plot_sweep(table, out / "sweep.png")
        except OSError as exc:  # an unwritable or clashing output path
            raise InfeconError(f"cannot write output: {exc}") from None
        print(f"wrote {out / 'sweep.csv'} and {out / 'sweep.png'}")
    return 0


def register(subparsers) -> None:
    """Add the ``sweep`` subcommand to the ``infecon`` parser."""
    p = subparsers.add_parser(
        "sweep", help="what-if: vary one hardware/model/workload parameter, report max speed and cost",
        description="Compute one exact frontier per value of a swept parameter and tabulate the maximum "
                    "tokens/s per request, the deployment reaching it, and the cheapest cost at a report speed.",
        epilog=SWEEP_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE", help="scenario TOML (see below and instances/scenarios/sweep_*.toml)")
    p.add_argument("--out", metavar="DIR", help="also write DIR/sweep.csv and DIR/sweep.png (default: print only)")
    # SUPPRESS as the default keeps a top-level `infecon --debug ...` when the subcommand has no --debug.
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_sweep)
