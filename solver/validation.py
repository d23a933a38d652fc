"""Predict published serving measurements row by row, and summarise how far off the model is.

A measurement file has the columns of ``../shared/measured/serving_dev.csv`` (its README). Each
row is predicted at its own model, hardware, layout, precision, concurrency, isl/osl, engine and
benchmark mode. Rows that cannot be predicted are kept with a ``status`` saying why.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from infecon.formulations.bands import architecture, band_factors, regime
from infecon.formulations.closed_loop import chunk_budget_tokens
from infecon.formulations.errors import InfeconError, InstanceError
from infecon.formulations.latency import SHOWN_PERCENTILES
from infecon.formulations.perf import StepTime, hbm_used_bytes_per_gpu
from infecon.formulations.serving import (
    DEFAULT_PREFILL_UTILIZATION,
    attention_sharding,
    per_user_speed,
    serving_passes,
    serving_times,
)
from infecon.formulations.space import layout_rule_violation
from infecon.formulations.specs import SERVING_MODES, EngineProfile, Requests, Workload
from infecon.instances.bands import shipped_bands
from infecon.instances.engines import engine_family, get_engine, published_family, resolve_engine
from infecon.instances.limits import INTEGER_TEXT, KNOB_RANGES, NUMBER_TEXT
from infecon.instances.loader import get_hardware, get_model
from infecon.solver import silicon

REQUIRED_COLUMNS = ("model", "hardware", "engine", "benchmark", "weight_bits", "kv_bits", "n_gpu", "tp", "pp", "ep",
                    "instances", "concurrency", "isl", "osl", "per_user_tok_s", "per_user_metric")
# The columns a prediction reads (``prepare_row``, ``predict_prepared``): rows equal in these predict equally.
_PREDICTION_INPUTS = ("model", "hardware", "engine", "benchmark", "weight_bits", "kv_bits", "n_gpu", "tp", "pp", "ep",
                      "instances", "concurrency", "isl", "osl", "per_user_metric", "attention_dp", "waves",
                      "prefill_tp", "prefill_pp", "prefill_ep", "prefill_attention_dp")
_POSITIVE_INTS = ("weight_bits", "kv_bits", "n_gpu", "tp", "pp", "ep", "instances", "concurrency", "osl")
# Published percentiles over requests (ttft_p50_ms, ..., tpot_p99_ms): compared where a file has them.
PERCENTILE_COLUMNS = tuple(f"{kind}_p{p}_ms" for kind in ("ttft", "tpot") for p in SHOWN_PERCENTILES)
# ``waves``: a closed-loop benchmark's requests over its concurrency (``formulations/closed_loop.py``); empty: the
# requests arrived as open-loop traffic.
_OPTIONAL_NUMBERS = ("tpot_ms", "ttft_ms", "total_tok_s", "waves", *PERCENTILE_COLUMNS)
# A measured speed (tokens/s) or time (ms) above 1e12 is no measurement (instances.limits bounds a demand there):
# 1e308 tok/s overflowed the error arithmetic to inf.
_MEASURED_MAX = 1e12
_PER_USER_METRICS = ("inverse_tpot", "osl_over_e2e_latency")
# The bound of each whole-number column, as the same knob's (``limits.KNOB_RANGES``; GPUs for the rest).
_COLUMN_KNOBS = {"concurrency": "batch", "isl": "context", "osl": "context"}
PREDICTED_COLUMNS = ("predicted_per_user_tok_s", "predicted_tpot_ms", "predicted_ttft_ms", "predicted_total_tok_s",
                     "error_per_user", "tokens_per_second_low", "tokens_per_second_high", "extrapolated", "in_band",
                     "status")
_FLAG_TEXT = ("true", "false", "1", "0", "yes", "no", "")
ACTIVATION_BITS = 16  # activations and collectives in 16 bits, as the engines in the data run them


def _bad(path, row: int, column: str, rule: str, value) -> InstanceError:
    return InstanceError(f"{path}: row {row}, column '{column}': {rule} (got {value!r})")


def read_measurements(path: str | Path) -> pd.DataFrame:
    """Read and check a measurement CSV; a malformed file is one error naming the row (file line) and column.

    aiconfigurator's silicon sample (``silicon.SILICON_COLUMNS``) is read as it ships: its rows are mapped onto
    these columns and those that cannot be predicted are dropped and counted in ``frame.attrs["skipped"]``.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InstanceError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InstanceError(f"{path}: is a folder; give a measurement CSV file") from None
    except PermissionError:
        raise InstanceError(f"{path}: cannot read: permission denied") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InstanceError(f"{path}: not a readable CSV: {str(exc).splitlines()[0]}") from None
    twice = [c for c in frame.columns if "." in c and c.rsplit(".", 1)[1].isdigit() and c.rsplit(".", 1)[0] in
             frame.columns]  # pandas renames a repeated header 'tp' to 'tp.1' and would ignore it
    if twice:
        raise InstanceError(f"{path}: column '{twice[0].rsplit('.', 1)[0]}' appears more than once in the header")
    skipped: dict[str, int] = {}
    if silicon.is_silicon(frame):
        frame, skipped = silicon.to_measurements(frame)
        if frame.empty:
            raise InstanceError(f"{path}: no row of the silicon sample can be predicted "
                                f"({silicon.skipped_summary(skipped)})")
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise InstanceError(f"{path}: missing column '{missing[0]}' (required: {', '.join(REQUIRED_COLUMNS)})")
    if frame.empty:
        raise InstanceError(f"{path}: no measurement rows")
    _check_columns(path, frame)
    frame.attrs["skipped"] = skipped  # silicon rows dropped, by reason (silicon.skipped_summary prints them)
    return frame


def _check_columns(path: Path, frame: pd.DataFrame) -> None:
    """Check every cell a column at a time (numbers through ``limits``' one grammar); raise for the first bad row.

    Why column-wise: a row loop over 10,000 rows took seconds; the verdict is the same (the first row that breaks
    a rule, then the first of its columns in the order below), named by file line and column.
    """
    problems: list[tuple[int, int, str, str]] = []  # (row, column order, column, rule)

    def flag(order: int, column: str, bad: pd.Series, rule: str) -> None:
        if bad.any():
            problems.append((int(np.flatnonzero(bad.to_numpy())[0]), order, column, rule))

    for order, column in enumerate((*_POSITIVE_INTS, "isl")):
        text = frame[column].str.strip()
        whole = text.str.fullmatch(INTEGER_TEXT.pattern)
        minimum = 0 if column == "isl" else 1
        value = pd.to_numeric(text.where(whole), errors="coerce")
        flag(order, column, ~whole | (value < minimum), f"must be a whole number >= {minimum}")
        if column in ("weight_bits", "kv_bits"):
            flag(order, column, whole & ~value.isin([4, 8, 16, 32]), "must be one of 4, 8, 16, 32")
        else:
            rule = KNOB_RANGES[_COLUMN_KNOBS.get(column, "max_gpus")]
            flag(order, column, whole & (value > rule.high), f"must be <= {rule.high:.0f} ({rule.unit})")
    numbers = ("per_user_tok_s", *tuple(c for c in _OPTIONAL_NUMBERS if c in frame.columns))
    for order, column in enumerate(numbers, start=10):
        text = frame[column].str.strip()
        empty = (text == "") & (column != "per_user_tok_s")
        literal = text.str.fullmatch(NUMBER_TEXT.pattern)
        value = pd.to_numeric(text.where(literal), errors="coerce")
        flag(order, column, ~empty & ~literal, "must be a number")
        flag(order, column, ~empty & literal & ~((value > 0) & (value <= _MEASURED_MAX)),
             f"must be a positive number <= {_MEASURED_MAX:g}")
    if "waves" in frame.columns:
        text = frame["waves"].str.strip()
        value = pd.to_numeric(text.where(text.str.fullmatch(NUMBER_TEXT.pattern)), errors="coerce")
        flag(19, "waves", (text != "") & (value < 1), "must be a number >= 1 (a closed-loop run's waves) or empty")
    flag(20, "benchmark", ~frame["benchmark"].isin(SERVING_MODES), f"must be one of {', '.join(SERVING_MODES)}")
    flag(21, "per_user_metric", ~frame["per_user_metric"].isin(_PER_USER_METRICS),
         f"must be one of {', '.join(_PER_USER_METRICS)}")
    if "attention_dp" in frame.columns:
        flag(22, "attention_dp", ~frame["attention_dp"].str.strip().str.lower().isin(_FLAG_TEXT),
             "must be True or False (or empty: False)")
    if not problems:
        uneven = frame["concurrency"].astype(int) % frame["instances"].astype(int) != 0
        flag(23, "concurrency", uneven, "must split evenly over 'instances'")
    if problems:
        row, _, column, rule = min(problems)
        raise _bad(path, row + 2, column, rule, frame[column].iloc[row])  # file line: the header is line 1


def _number(text: str) -> float:
    return float(text) if str(text).strip() != "" else math.nan


@dataclass(frozen=True)
class PreparedRow:
    """One measurement with its passes evaluated once, ready for any engine's parameters (``calibrate``)."""

    index: int
    passes: object  # ServingPasses
    metric: str
    instances: int
    measured_per_user: float
    measured_tpot_s: float
    measured_ttft_s: float
    prefill_instances: float  # disaggregated: prefill instances per decode instance (nan otherwise)
    family: str  # the profile family (``engines.engine_family``)
    hardware_name: str
    group: str  # source x hardware, for leave-one-group-out
    published: str = ""  # the engine family the measurement names (nim for a NIM row run by trtllm)


def prepare_row(index: int, record: Mapping[str, str], kernels: str | None = None) -> PreparedRow | str:
    """The row's passes, or a status string saying why it cannot be predicted.

    ``kernels``: the engine family whose measured GEMM curves the passes use (``serving.unit_hardware``), that of
    the profile that will predict them; None: the row's own engine family's.
    """
    try:
        model = get_model(record["model"])
    except InfeconError:
        return f"unknown model '{record['model']}'"
    try:
        hw = get_hardware(record["hardware"])
    except InfeconError:
        return f"unknown hardware '{record['hardware']}'"
    attention_dp = str(record.get("attention_dp", "")).strip().lower() in ("true", "1", "yes")
    tp, pp, ep, instances = (int(record[c]) for c in ("tp", "pp", "ep", "instances"))
    # Engines split layers as evenly as they can (DeepSeek's 61 layers in 4 stages: 16, 15, 15, 15).
    violation = layout_rule_violation(model, hw, tp_rows=1, tp_cols=tp, pp=pp, ep=ep, max_gpus=tp * pp,
                                      uneven_stages=True)
    if violation:
        return f"invalid layout: {violation}"
    requests = Requests(int(record["isl"]), int(record["osl"]))
    batch = int(record["concurrency"]) // instances
    workload = Workload(context_tokens=requests.mean_decode_context_tokens, weight_bits=int(record["weight_bits"]),
                        activation_bits=ACTIVATION_BITS, kv_bits=int(record["kv_bits"]))
    # Memory must hold the fullest moment: a static batch ends with every sequence at isl + osl tokens; under
    # continuous batching requests are at every stage, so the mean decode context is what the batch holds.
    fullest = requests.input_tokens + requests.output_tokens
    if record["benchmark"] != "static_batch":
        fullest = requests.mean_decode_context_tokens
    attention = attention_sharding(False, attention_dp)
    used = int(hbm_used_bytes_per_gpu(model, dataclasses.replace(workload, context_tokens=fullest), tp=tp, pp=pp,
                                      batch=batch, attention=attention))
    if used > hw.hbm_capacity_bytes:
        return (f"does not fit in memory: needs {used / 1e9:.1f} GB per GPU, "
                f"{hw.hbm_capacity_bytes / 1e9:.1f} GB available")
    prefill_instances = math.nan
    prefill_layout = _prefill_layout(record)
    if isinstance(prefill_layout, str):
        return prefill_layout
    if record["benchmark"] == "disaggregated":
        spare = int(record["n_gpu"]) - instances * tp * pp
        if spare <= 0:
            return "disaggregated row without GPUs left for prefill (n_gpu <= instances x tp x pp)"
        # Prefill instances per decode instance: of the prefill workers' own layout where the row gives it, else
        # of the decode layout on the GPUs the decode instances leave.
        size = tp * pp if prefill_layout is None else prefill_layout[0] * prefill_layout[1]
        prefill_instances = spare / size / instances
    family = kernels or engine_family(record["engine"])
    waves = _number(record.get("waves", ""))
    closed = {}
    if math.isfinite(waves):  # a closed-loop benchmark (closed_loop.py): its prompts per (prefill) instance a wave
        wave_requests = batch / prefill_instances if record["benchmark"] == "disaggregated" else batch
        closed = dict(waves=waves, wave_requests=wave_requests,
                      wave_budget_tokens=_wave_budget_tokens(family, requests.input_tokens))
    passes = serving_passes(model, hw, workload, requests, record["benchmark"], tp_rows=1, tp_cols=tp, pp=pp, ep=ep,
                            batch=batch, attention_dp=attention_dp, kernels=family, **closed)
    if record["benchmark"] == "disaggregated" and prefill_layout is not None:
        p_tp, p_pp, p_ep, p_dp = prefill_layout
        violation = layout_rule_violation(model, hw, tp_rows=1, tp_cols=p_tp, pp=p_pp, ep=p_ep, max_gpus=p_tp * p_pp,
                                          uneven_stages=True)
        if violation:
            return f"invalid prefill layout: {violation}"
        on_prefill = serving_passes(model, hw, workload, requests, record["benchmark"], tp_rows=1, tp_cols=p_tp,
                                    pp=p_pp, ep=p_ep, batch=batch, attention_dp=p_dp, kernels=family, **closed)
        # The prompt's passes run on the prefill workers' layout; the decode passes and the KV transfer (sent by
        # the decode instance's GPUs' links) stay the decode layout's.
        passes = dataclasses.replace(passes, prefill_one=on_prefill.prefill_one, prefill_chunk=on_prefill.prefill_chunk)
    source = record.get("source", "")
    return PreparedRow(index, passes, record["per_user_metric"], instances, float(record["per_user_tok_s"]),
                       _number(record.get("tpot_ms", "")) / 1e3, _number(record.get("ttft_ms", "")) / 1e3,
                       prefill_instances, engine_family(record["engine"]), hw.name,
                       f"{source} x {record['hardware']}", published_family(record["engine"]))


PREFILL_LAYOUT_COLUMNS = ("prefill_tp", "prefill_pp", "prefill_ep", "prefill_attention_dp")


def _prefill_layout(record: Mapping[str, str]) -> tuple[int, int, int, bool] | str | None:
    """(tp, pp, ep, attention_dp) of a disaggregated row's prefill workers where the row gives them (the silicon
    sample does), None where it does not (the decode layout is taken), or why they are unusable."""
    text = [str(record.get(c, "")).strip() for c in PREFILL_LAYOUT_COLUMNS]
    if not any(text[:3]):
        return None
    numbers = [_number(t) if NUMBER_TEXT.fullmatch(t) else math.nan for t in text[:3]]
    if not all(math.isfinite(v) and v.is_integer() and v >= 1 for v in numbers):  # 4 or 4.0 (a stacked frame's text)
        return "prefill_tp, prefill_pp and prefill_ep must be whole numbers >= 1 where given"
    return int(numbers[0]), int(numbers[1]), int(numbers[2]), text[3].lower() in ("true", "1", "yes")


def _wave_budget_tokens(family: str, input_tokens: int) -> int:
    """The prompt tokens a pass of the family's shipped profile takes (the default profile's for a family without
    one): ``closed_loop.chunk_budget_tokens``."""
    try:
        return chunk_budget_tokens(get_engine(family), input_tokens)
    except InfeconError:
        return chunk_budget_tokens(EngineProfile(name=family), input_tokens)


@dataclass(frozen=True)
class PreparedBlock:
    """Rows of one model, hardware, mode, isl/osl and metric with their passes stacked into arrays.

    Why: ``serving_times`` is vectorised over configurations, so a block of rows is predicted in one call
    instead of one call per row; ``calibrate`` evaluates thousands of rows hundreds of times per fit.
    """

    rows: tuple[PreparedRow, ...]
    passes: object  # ServingPasses, every array one entry per row
    metric: str
    instances: np.ndarray
    prefill_instances: np.ndarray


def _stack_steps(steps) -> StepTime:
    return StepTime(**{f.name: np.concatenate([np.ravel(getattr(s, f.name)) for s in steps])
                       for f in dataclasses.fields(StepTime)})


def block_of(rows: list[PreparedRow]) -> PreparedBlock:
    """One block of rows that share model, hardware, mode, requests and metric (``blocks`` groups them)."""
    first = rows[0].passes
    stacked = dataclasses.replace(
        first, decode=_stack_steps([r.passes.decode for r in rows]),
        prefill_one=_stack_steps([r.passes.prefill_one for r in rows]),
        prefill_batch=_stack_steps([r.passes.prefill_batch for r in rows]),
        batch=np.concatenate([np.ravel(r.passes.batch) for r in rows]).astype(float),
        pp=np.concatenate([np.ravel(r.passes.pp) for r in rows]),
        transfer_s=np.concatenate([np.ravel(r.passes.transfer_s) for r in rows]).astype(float))
    if first.waves is not None:
        stacked = dataclasses.replace(
            stacked, prefill_chunk=_stack_steps([r.passes.prefill_chunk for r in rows]),
            wave_requests=np.concatenate([np.ravel(r.passes.wave_requests) for r in rows]).astype(float))
    return PreparedBlock(tuple(rows), stacked, rows[0].metric, np.array([r.instances for r in rows], dtype=float),
                         np.array([r.prefill_instances for r in rows], dtype=float))


def blocks(rows: list[PreparedRow]) -> list[PreparedBlock]:
    """``rows`` grouped into blocks (``PreparedBlock``), each block's rows in their given order."""
    groups: dict[tuple, list[PreparedRow]] = {}
    for row in rows:
        p = row.passes
        key = (p.model.name, p.hardware.name, p.mode, p.requests, row.metric, p.paper, p.waves, p.wave_budget_tokens)
        groups.setdefault(key, []).append(row)
    return [block_of(group) for group in groups.values()]


def predict_block(block: PreparedBlock, engine: EngineProfile, percentiles: bool = True) -> dict[str, np.ndarray]:
    """Per-user speed (as the rows measured it), TPOT, TTFT and total output tok/s over each row's instances.

    ``percentiles`` False leaves out the percentiles of TTFT and TPOT (a fit reads the means only: they cost
    as much as the rest).
    """
    passes = block.passes
    utilization = DEFAULT_PREFILL_UTILIZATION
    if passes.mode == "disaggregated":
        # The prefill pool's load: each decode instance's request rate times P1, over its share of prefill instances.
        times, _, prefill_s = serving_times(passes, engine)
        rate = times.total_tokens_per_second / passes.requests.output_tokens
        utilization = np.clip(rate * prefill_s / block.prefill_instances, 1e-6, 0.999)
    times, _, _ = serving_times(passes, engine, prefill_utilization=utilization)
    shape = np.shape(block.instances)
    predicted = {"per_user": np.broadcast_to(per_user_speed(block.metric, times, passes.requests), shape),
                 "tpot_s": np.broadcast_to(times.tpot_s, shape), "ttft_s": np.broadcast_to(times.ttft_s, shape),
                 "total": np.broadcast_to(times.total_tokens_per_second, shape) * block.instances}
    for percentile in SHOWN_PERCENTILES if percentiles else ():  # Poisson arrivals at the batch's rate (latency.py)
        predicted[f"ttft_p{percentile}_s"] = np.broadcast_to(times.spread.ttft_s(times.ttft_s, percentile), shape)
        predicted[f"tpot_p{percentile}_s"] = np.broadcast_to(times.spread.tpot_s(times.tpot_s, percentile), shape)
    return predicted


def predict_prepared(row: PreparedRow, engine: EngineProfile) -> dict[str, float]:
    """One row's ``predict_block``: per-user speed, TPOT, TTFT and total output tok/s over its instances."""
    return {k: float(v[0]) for k, v in predict_block(block_of([row]), engine).items()}


def predict_frame(frame: pd.DataFrame, engine: str | EngineProfile | None = None) -> pd.DataFrame:
    """Every input column in order, plus the predictions, the error and a status per row.

    ``engine`` None: each row's own engine family's profile (unknown families use generic and say so).
    """
    out = frame.copy()
    if isinstance(engine, str):  # a profile asked for by name must exist: no silent fallback to generic
        engine = get_engine(engine)
    measured_percentiles = [c for c in PERCENTILE_COLUMNS if c in frame.columns]
    results = {c: [] for c in PREDICTED_COLUMNS}
    for column in measured_percentiles:
        results[f"predicted_{column}"] = []
        results[f"error_{column.removesuffix('_ms')}"] = []
    # Rows that ask the same question (every column a prediction reads) get one prediction: the physics costs
    # ~10 ms a row, and measurement files repeat configurations (another run, another source).
    inputs = [c for c in _PREDICTION_INPUTS if c in frame.columns]
    memo: dict[tuple, str | tuple[dict[str, float], str | None, tuple[float, float, str]]] = {}
    override = None  # the engine family whose measured GEMM curves the passes use (prepare_row's ``kernels``)
    if engine is not None:
        override = engine.name if isinstance(engine, EngineProfile) else engine_family(engine)
    for i, record in zip(frame.index, frame.to_dict("records"), strict=True):  # dicts: iterrows cost ~0.5 ms a row
        key = tuple(record[c] for c in inputs)
        if key not in memo:
            prepared = prepare_row(int(i), record, kernels=override)
            if isinstance(prepared, str):
                memo[key] = prepared
            else:
                if engine is None:
                    profile, note = resolve_engine(record["engine"])
                else:
                    profile, note = engine, None
                # The band reads the row's pp, concurrency and attention_dp: prediction inputs, so shared too.
                memo[key] = (predict_prepared(prepared, profile), note, row_band(prepared, profile, record))
        found = memo[key]
        if isinstance(found, str):
            for c in results:
                results[c].append(found if c == "status" else "" if c == "extrapolated" else math.nan)
            continue
        p, note, (low, high, reasons) = found
        measured_per_user = float(record["per_user_tok_s"])
        results["predicted_per_user_tok_s"].append(p["per_user"])
        results["predicted_tpot_ms"].append(p["tpot_s"] * 1e3)
        results["predicted_ttft_ms"].append(p["ttft_s"] * 1e3)
        results["predicted_total_tok_s"].append(p["total"])
        results["error_per_user"].append(p["per_user"] / measured_per_user - 1)
        results["tokens_per_second_low"].append(p["per_user"] * low)
        results["tokens_per_second_high"].append(p["per_user"] * high)
        results["extrapolated"].append(reasons)
        results["in_band"].append(bool(p["per_user"] * low <= measured_per_user <= p["per_user"] * high))
        results["status"].append("ok" if note is None else f"ok ({note})")
        for column in measured_percentiles:
            value = p[column.removesuffix("_ms") + "_s"] * 1e3
            results[f"predicted_{column}"].append(value)
            results[f"error_{column.removesuffix('_ms')}"].append(value / _number(record[column]) - 1)
    for column, values in results.items():
        out[column] = values
    return out


def row_band(row: PreparedRow, profile: EngineProfile, record: Mapping[str, str]) -> tuple[float, float, str]:
    """The 80 % band (speed factors) of a measurement's prediction, and why it is extrapolated (``bands.regime``)."""
    name = "paper" if profile.paper else profile.name
    attention_dp = str(record.get("attention_dp", "")).strip().lower() in ("true", "1", "yes")
    rg = regime(shipped_bands(), name, row.hardware_name, architecture(row.passes.model), pp=int(record["pp"]),
                batch=int(record["concurrency"]) // row.instances, attention_dp=attention_dp)
    low, high = band_factors(rg)
    return float(low[0]), float(high[0]), str(rg.reasons[0])


def _rank_agreement(measured: np.ndarray, predicted: np.ndarray) -> float:
    """Share of row pairs whose order the prediction gets right (Kendall-style concordance; nan below 2 rows).

    Pairs with equal measured values do not count; a pair is right when the prediction orders it strictly the
    same way. Counted in O(n log n) (a pair loop took minutes at 10,000 rows): sort by measured (ties by
    predicted descending, so a tie in measured is never counted right), then count, for each row, the rows
    before it with a strictly smaller prediction in a Fenwick tree over prediction ranks.
    """
    measured, predicted = np.asarray(measured, dtype=float), np.asarray(predicted, dtype=float)
    n = len(measured)
    _, tie_counts = np.unique(measured, return_counts=True)
    pairs = n * (n - 1) // 2 - int((tie_counts * (tie_counts - 1) // 2).sum())
    if pairs == 0:
        return math.nan
    order = np.lexsort((-predicted, measured))
    _, ranks = np.unique(predicted[order], return_inverse=True)
    tree = [0] * (int(ranks.max()) + 2 if n else 1)
    right = 0
    for rank in ranks.tolist():
        i = rank  # rows before with rank < this one: prefix sum over ranks 0..rank-1 (tree index 1..rank)
        while i > 0:
            right += tree[i]
            i -= i & -i
        i = rank + 1
        while i < len(tree):
            tree[i] += 1
            i += i & -i
    return right / pairs


def summary(predicted: pd.DataFrame) -> pd.DataFrame:
    """By engine and hardware: rows, rows predicted, median and p90 |error|, signed bias, rank agreement."""
    rows = []
    ok = predicted["status"].str.startswith("ok")
    groups = [*list(predicted.groupby(["engine", "hardware"], sort=True)), (("all", "all"), predicted)]
    for (engine, hardware), part in groups:
        good = part[ok.loc[part.index]]
        err = good["error_per_user"].to_numpy(dtype=float)
        rows.append({
            "engine": engine, "hardware": hardware, "rows": len(part), "predicted": len(good),
            "median_abs_error": float(np.median(np.abs(err))) if len(err) else math.nan,
            "p90_abs_error": float(np.quantile(np.abs(err), 0.9)) if len(err) else math.nan,
            "bias": float(np.median(err)) if len(err) else math.nan,
            "coverage": float(good["in_band"].astype(bool).mean()) if len(good) else math.nan,
            "rank_agreement": _rank_agreement(good["per_user_tok_s"].astype(float).to_numpy(),
                                              good["predicted_per_user_tok_s"].to_numpy(dtype=float)),
        })
    return pd.DataFrame(rows)


def percentile_summary(predicted: pd.DataFrame) -> str:
    """One line per published percentile column: rows compared, median and p90 |error|, signed median ("" if none)."""
    lines = []
    for column in PERCENTILE_COLUMNS:
        error_column = f"error_{column.removesuffix('_ms')}"
        if error_column not in predicted:
            continue
        err = predicted[error_column].to_numpy(dtype=float)
        err = err[np.isfinite(err)]
        if len(err):
            lines.append(f"{column}: {len(err)} rows, |error| median {100 * np.median(np.abs(err)):.0f}%, "
                         f"p90 {100 * np.quantile(np.abs(err), 0.9):.0f}%, bias {100 * np.median(err):+.0f}%")
    return "\n".join(lines)


def format_summary(table: pd.DataFrame) -> str:
    shown = table.copy()
    for column in ("median_abs_error", "p90_abs_error", "bias", "coverage", "rank_agreement"):
        sign = "+" if column == "bias" else ""
        shown[column] = shown[column].map(lambda v, s=sign: "-" if not np.isfinite(v) else f"{100 * v:{s}.0f}%")
    return shown.to_string(index=False)
