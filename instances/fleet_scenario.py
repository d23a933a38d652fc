"""Read a fleet scenario: GPU pools, workloads with demand and SLOs, and fleet-wide settings.

A fleet scenario is one TOML file (``instances/scenarios/fleet_example.toml``)::

    [fleet]                          # optional
    budget_usd_per_hour = 400
    whole_nodes = true               # GPUs of a type are rented in whole nodes
    disaggregated = "allow"          # "allow" | "never" | "only"
    kv_transfer = "same_hardware"    # prefill and decode pools of a workload: one GPU type ("same_vendor", "any")
    prefill_utilization = 0.7        # busy share a disaggregated prefill pool is sized for (FleetSettings)
    engine = "generic"               # serving-engine profile (instances/engines/)
    confidence = 0.9                 # plan on the pessimistic end of the error band (FleetSettings)
    [[gpu]]
    hardware = "h100_sxm"
    available = 64                   # omit for unlimited
    price_usd_per_hour = 2.1         # omit for the hardware file's price
    [[workload]]
    name = "chat"
    model = "llama_3_70b"
    isl = 2000
    osl = 400
    requests_per_s = 12.0            # or output_tok_per_s
    ttft_max_s = 1.5
    tpot_max_s = 0.04

Like every instance file, an unknown key is an error, and every message names the file, the
table, the field, the rule and the value. Model, hardware and engine names are resolved here,
so an unknown name fails on load.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infecon.formulations.bands import check_confidence
from infecon.formulations.errors import InstanceError
from infecon.formulations.serving import DEFAULT_PREFILL_UTILIZATION
from infecon.formulations.specs import EngineProfile, HardwareSpec, ModelSpec
from infecon.instances.engines import DEFAULT_ENGINE, get_engine
from infecon.instances.limits import check_knob
from infecon.instances.loader import get_hardware, get_model, read_toml, reject_unknown

DISAGGREGATION_CHOICES = ("allow", "never", "only")
# Between which GPUs a disaggregated request's KV cache may move from its prefill to its decode replica.
# No serving engine hands a KV cache between vendors' GPUs, nor (by default) between GPU types: the
# default keeps a workload's prefill and decode pools of one route on one GPU type.
KV_TRANSFER_CHOICES = ("same_hardware", "same_vendor", "any")
BATCH_CHOICES = ("ladder", "all")
DEFAULT_FLEET_MAX_GPUS = 64  # GPUs in one replica; a fleet adds replicas rather than growing one instance
_NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}")
# Engine limits a workload (or [fleet], for every workload) may override; unset, its engine profile's
# (``EngineProfile``: usable share of HBM, running sequences per replica, largest PP degree).
ENGINE_LIMIT_KEYS = ("memory_fraction", "max_seqs", "max_pp")
_FLEET_KEYS = {"budget_usd_per_hour", "whole_nodes", "disaggregated", "engine", "max_gpus", "batch",
               "prefill_utilization", "confidence", "kv_transfer",
               *ENGINE_LIMIT_KEYS}
_GPU_KEYS = {"hardware", "available", "price_usd_per_hour"}
_WORKLOAD_KEYS = {"name", "model", "isl", "osl", "requests_per_s", "output_tok_per_s", "ttft_max_s", "tpot_max_s",
                  "slo_percentile", "weight_bits", "kv_bits", "engine", "disaggregated", "kv_transfer",
                  *ENGINE_LIMIT_KEYS}


@dataclass(frozen=True)
class GpuPool:
    """One GPU type the fleet may use: its spec (price already overridden), stem and inventory."""

    key: str  # the hardware name as written, made safe for constraint names (inventory_<key>)
    hardware: HardwareSpec
    available: int | None  # None: unlimited
    raw: Mapping[str, Any] = field(default=None, compare=False, repr=False)  # the TOML table, for workers


@dataclass(frozen=True)
class FleetWorkload:
    """One traffic class: a model serving requests of isl/osl tokens at a demand, under SLOs."""

    name: str
    model_key: str
    model: ModelSpec
    isl: int
    osl: int
    requests_per_s: float
    ttft_max_s: float | None
    tpot_max_s: float | None
    weight_bits: int
    kv_bits: int | None
    engine: EngineProfile
    disaggregated: str  # "allow" | "never" | "only"
    raw: Mapping[str, Any] = field(default=None, compare=False, repr=False)  # the TOML table with defaults applied
    slo_percentile: float | None = None  # the SLOs hold at this percentile of requests (0-100); None: the mean
    kv_transfer: str = "same_hardware"  # KV_TRANSFER_CHOICES


@dataclass(frozen=True)
class FleetSettings:
    """Fleet-wide settings of the ``[fleet]`` table.

    ``prefill_utilization`` is the busy share a disaggregated prefill pool is sized for. It is a
    sizing policy, not a measured constant: the serving model treats the pool as an M/D/1 queue
    (as DistServe, Zhong et al., OSDI 2024, sec. 3.1, models a prefill instance), so a replica
    serves ``rho * pp / P1`` requests/s and its TTFT is ``P1 (1 + rho / (2 (1 - rho)))`` plus the
    KV transfer, ``P1`` being one prompt's prefill pass. A busier pool is cheaper per request and
    slower to first token: at the default 0.7 (``serving.DEFAULT_PREFILL_UTILIZATION``) a request
    waits 1.17 ``P1`` on average, at 0.9 it would wait 4.5 ``P1``. Each prefill candidate's TTFT is
    checked against its workload's SLO at this utilisation.
    """

    budget_usd_per_hour: float | None = None
    whole_nodes: bool = False
    max_gpus: int = DEFAULT_FLEET_MAX_GPUS
    batch: str = "ladder"
    prefill_utilization: float = DEFAULT_PREFILL_UTILIZATION
    # Candidates at the pessimistic end of the error band (formulations/bands.py): capacity from the speed a replica
    # reaches with this probability, SLOs checked on the matching high TTFT and TPOT. None: the model's prediction.
    confidence: float | None = None


@dataclass(frozen=True)
class FleetScenario:
    gpus: tuple[GpuPool, ...]
    workloads: tuple[FleetWorkload, ...]
    settings: FleetSettings
    source: str = "<memory>"


def _number(where: str, key: str, value: Any, *, minimum: float = 0.0, strict: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InstanceError(f"{where}: '{key}' must be a finite number (got {value!r})")
    if (strict and not value > minimum) or (not strict and value < minimum):
        raise InstanceError(f"{where}: '{key}' must be {'>' if strict else '>='} {minimum:g} (got {value!r})")
    return float(value)


def _fraction(where: str, key: str, value: Any) -> float:
    """A number strictly between 0 and 1."""
    value = _number(where, key, value)
    if not value < 1:
        raise InstanceError(f"{where}: '{key}' must be < 1 (got {value!r})")
    return value


def _integer(where: str, key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InstanceError(f"{where}: '{key}' must be a whole number (got {value!r})")
    if value < minimum:
        raise InstanceError(f"{where}: '{key}' must be >= {minimum} (got {value!r})")
    return value


def _choice(where: str, key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InstanceError(f"{where}: '{key}' must be one of {', '.join(choices)} (got {value!r})")
    return value


def _resolved(where: str, key: str, value: Any, getter):
    if not isinstance(value, str):
        raise InstanceError(f"{where}: '{key}' must be a name (got {value!r})")
    try:
        return getter(value)
    except InstanceError as exc:
        raise InstanceError(f"{where}: '{key}': {exc}") from None


def _within(where: str, key: str, value: float, knob: str) -> None:
    """The same plausible range as the CLI knob (``instances.limits``): 1e300 requests/s is refused on load,
    naming the field, instead of overflowing in the integer program."""
    check_knob(knob, value, label=f"'{key}'", where=where)


def _tables(where: str, data: dict, key: str) -> list[dict]:
    raw = data.get(key)
    if not isinstance(raw, list) or not raw or not all(isinstance(t, dict) for t in raw):
        raise InstanceError(f"{where}: expected at least one [[{key}]] table")
    return raw


def _confidence(label: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        return check_confidence(value)
    except ValueError as exc:
        raise InstanceError(f"{label}: {exc}") from None


def _settings(where: str, raw: Any) -> tuple[FleetSettings, str, str, str, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise InstanceError(f"{where}: 'fleet' must be a table (got {raw!r})")
    reject_unknown(f"{where}: [fleet]", raw, _FLEET_KEYS)
    label = f"{where}: [fleet]"
    budget = raw.get("budget_usd_per_hour")
    whole = raw.get("whole_nodes", False)
    if not isinstance(whole, bool):
        raise InstanceError(f"{label}: 'whole_nodes' must be true or false (got {whole!r})")
    settings = FleetSettings(
        budget_usd_per_hour=None if budget is None else _number(label, "budget_usd_per_hour", budget),
        whole_nodes=whole,
        max_gpus=_integer(label, "max_gpus", raw.get("max_gpus", DEFAULT_FLEET_MAX_GPUS), 1),
        batch=_choice(label, "batch", raw.get("batch", "ladder"), BATCH_CHOICES),
        prefill_utilization=_fraction(label, "prefill_utilization",
                                      raw.get("prefill_utilization", DEFAULT_PREFILL_UTILIZATION)),
        confidence=_confidence(label, raw.get("confidence")))
    _within(label, "max_gpus", settings.max_gpus, "max_gpus")
    if settings.budget_usd_per_hour is not None:
        _within(label, "budget_usd_per_hour", settings.budget_usd_per_hour, "budget_usd_per_hour")
    disaggregated = _choice(label, "disaggregated", raw.get("disaggregated", "allow"), DISAGGREGATION_CHOICES)
    engine = raw.get("engine", DEFAULT_ENGINE)
    _resolved(label, "engine", engine, get_engine)
    kv_transfer = _choice(label, "kv_transfer", raw.get("kv_transfer", "same_hardware"), KV_TRANSFER_CHOICES)
    limits = {key: raw[key] for key in ENGINE_LIMIT_KEYS if key in raw}
    _engine_limits(label, limits)
    return settings, disaggregated, engine, kv_transfer, limits


def _engine_limits(where: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The engine-limit keys set in ``raw``, each checked against the CLI's range (``instances.limits``)."""
    limits = {}
    for key in ENGINE_LIMIT_KEYS:
        if key not in raw:
            continue
        value = raw[key]
        if key != "memory_fraction" and (isinstance(value, bool) or not isinstance(value, int)):
            raise InstanceError(f"{where}: '{key}' must be a whole number (got {value!r})")
        _within(where, key, value, key)
        limits[key] = float(value) if key == "memory_fraction" else value
    return limits


def parse_gpu(where: str, number: int, raw: Mapping[str, Any], seen: dict[str, int] | None = None) -> GpuPool:
    label = f"{where}: gpu #{number}"
    reject_unknown(label, raw, _GPU_KEYS)
    if "hardware" not in raw:
        raise InstanceError(f"{label}: missing required field 'hardware'")
    hw = _resolved(label, "hardware", raw["hardware"], get_hardware)
    key = re.sub(r"[^A-Za-z0-9_]", "_", str(raw["hardware"]).lower())
    seen = {} if seen is None else seen
    if hw.name in seen:
        raise InstanceError(f"{label}: 'hardware' {raw['hardware']!r} is listed twice (gpu #{seen[hw.name]} "
                            f"and #{number}); give one [[gpu]] per type")
    seen[hw.name] = number
    available = raw.get("available")
    if available is not None:
        available = _integer(label, "available", available, 0)
        if available:
            _within(label, "available", available, "max_gpus")
    if "price_usd_per_hour" in raw:
        hw = dataclasses.replace(hw, price_usd_per_hour=_number(label, "price_usd_per_hour",
                                                                raw["price_usd_per_hour"]))
        _within(label, "price_usd_per_hour", hw.price_usd_per_hour, "price_usd_per_hour")
    return GpuPool(key, hw, available, dict(raw))


def parse_workload(where: str, number: int, raw: Mapping[str, Any], seen: dict[str, int] | None = None,
                   disaggregated: str = "allow", engine: str = DEFAULT_ENGINE,
                   kv_transfer: str = "same_hardware", limits: Mapping[str, Any] | None = None) -> FleetWorkload:
    """One [[workload]] table; ``disaggregated``, ``engine``, ``kv_transfer`` and the engine ``limits`` are the
    [fleet] defaults it may override (a limit replaces the engine profile's: every candidate runs under it)."""
    label = f"{where}: workload #{number}"
    reject_unknown(label, raw, _WORKLOAD_KEYS)
    for key in ("name", "model", "isl", "osl"):
        if key not in raw:
            raise InstanceError(f"{label}: missing required field '{key}'")
    name = raw["name"]
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise InstanceError(f"{label}: 'name' must be 1-63 letters, digits, '_' or '-', starting with a letter "
                            f"(it names constraints) (got {name!r})")
    seen = {} if seen is None else seen
    if name in seen:
        raise InstanceError(f"{label}: duplicate name {name!r} (workloads #{seen[name]} and #{number})")
    seen[name] = number
    label = f"{where}: workload '{name}'"
    model = _resolved(label, "model", raw["model"], get_model)
    isl = _integer(label, "isl", raw["isl"], 1)
    osl = _integer(label, "osl", raw["osl"], 1)
    _within(label, "isl", isl, "context")
    _within(label, "osl", osl, "context")
    demand_keys = [k for k in ("requests_per_s", "output_tok_per_s") if k in raw]
    if len(demand_keys) != 1:
        raise InstanceError(f"{label}: give exactly one of 'requests_per_s' and 'output_tok_per_s' "
                            f"(got {demand_keys or 'neither'})")
    demand = _number(label, demand_keys[0], raw[demand_keys[0]])
    requests_per_s = demand if demand_keys[0] == "requests_per_s" else demand / osl
    demand_label = "output_tok_per_s" if demand_keys[0] == "output_tok_per_s" else "requests_per_s' x 'osl"
    _within(label, demand_label, requests_per_s * osl, "demand_tokens_per_s")
    slo = {k: None if raw.get(k) is None else _number(label, k, raw[k]) for k in ("ttft_max_s", "tpot_max_s")}
    for key, value in slo.items():
        _within(label, key, value, key)
    percentile = None if raw.get("slo_percentile") is None else _number(label, "slo_percentile", raw["slo_percentile"])
    _within(label, "slo_percentile", percentile, "slo_percentile")
    bits = {}
    for key, default in (("weight_bits", 16), ("kv_bits", None)):
        value = raw.get(key, default)
        if value is not None and value not in (4, 8, 16, 32):
            raise InstanceError(f"{label}: '{key}' must be one of 4, 8, 16, 32 (got {value!r})")
        bits[key] = value
    profile = _resolved(label, "engine", raw.get("engine", engine), get_engine)
    own = _engine_limits(label, {**(limits or {}), **{k: raw[k] for k in ENGINE_LIMIT_KEYS if k in raw}})
    if own:
        profile = dataclasses.replace(profile, **own)
    mode = _choice(label, "disaggregated", raw.get("disaggregated", disaggregated), DISAGGREGATION_CHOICES)
    kv = _choice(label, "kv_transfer", raw.get("kv_transfer", kv_transfer), KV_TRANSFER_CHOICES)
    full = {**raw, **own, "engine": raw.get("engine", engine), "disaggregated": mode, "kv_transfer": kv}
    return FleetWorkload(name, str(raw["model"]), model, isl, osl, requests_per_s, slo["ttft_max_s"],
                         slo["tpot_max_s"], bits["weight_bits"], bits["kv_bits"], profile, mode, full, percentile, kv)


def load_fleet_scenario(path: str | Path) -> FleetScenario:
    """Read and validate a fleet scenario file.

    Raises:
        InstanceError: naming the file, the table and the field: an unknown key, a missing or
            ill-typed field, a negative or zero demand, an unknown model/hardware/engine, a
            duplicate name, or an inventory of 0 GPUs everywhere.
    """
    path = Path(path)
    return load_fleet_scenario_data(str(path), read_toml(path))


def load_fleet_scenario_data(where: str, data: dict) -> FleetScenario:
    """A fleet scenario from its parsed TOML (``load_fleet_scenario``; the planner over periods passes its fleet
    part here after taking out its own keys, ``fleet_horizon``)."""
    if "periods" in data:
        raise InstanceError(f"{where}: this file plans over periods ([periods]): 'infecon fleet FILE' reads it, "
                            f"or infecon.plan_horizon in Python")
    reject_unknown(where, data, {"fleet", "gpu", "workload"})
    settings, disaggregated, engine, kv_transfer, limits = _settings(where, data.get("fleet", {}))
    seen_gpus: dict[str, int] = {}
    gpus = tuple(parse_gpu(where, i, raw, seen_gpus) for i, raw in enumerate(_tables(where, data, "gpu"), start=1))
    if all(g.available == 0 for g in gpus):
        raise InstanceError(f"{where}: 'available' is 0 for every [[gpu]]: no GPU can serve anything")
    seen_names: dict[str, int] = {}
    workloads = tuple(parse_workload(where, i, raw, seen_names, disaggregated, engine, kv_transfer, limits)
                      for i, raw in enumerate(_tables(where, data, "workload"), start=1))
    return FleetScenario(gpus, workloads, settings, where)
