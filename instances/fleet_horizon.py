"""Read a planning file over periods: a fleet scenario plus demand profiles and GPU offers (reserved, on demand, spot).

A fleet scenario (``fleet_scenario``) with a ``[periods]`` table::

    [periods]
    count = 24                       # periods in the horizon (any count: 24, 168, ...)
    hours = 1.0                      # length of one period (default 1 hour)
    demand_csv = "demand.csv"        # optional: rows period,workload,requests_per_s (periods 0..count-1)
    [[gpu]]
    hardware = "h100_sxm"
    available = 64                   # inventory: reserved + on demand + spot GPUs in any period
    on_demand_usd_per_hour = 2.1     # (or price_usd_per_hour; default: the hardware file's price)
    on_demand = true                 # false: this type only reserved or on spot
    reserved_usd_per_hour = 1.47     # or reserved = true for the default ratio (instances/prices/)
    spot_usd_per_hour = 1.68         # default: the default ratio, when spot_available is given
    spot_available = 16              # spot GPUs per period: a number or a list of `count`
    [[workload]]
    requests_per_s = [3.0, 2.5, ...] # a list of `count` numbers >= 0, a number (flat), or from demand_csv
    max_spot_share = 0.5             # at most this share of each of its pools' capacity on spot (default 1)
    min_replicas = 1                 # warm floor: replicas generating tokens in every period (default 0)

Offers are opt-in: a type offers on demand unless ``on_demand = false``, reserved only when asked,
spot only with ``spot_available``; so a one-period file without offers is today's fleet. Every
message names the file, the table (workload or GPU), the field, the period and the value.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infecon.formulations.errors import InstanceError
from infecon.instances.fleet_scenario import FleetScenario, load_fleet_scenario_data
from infecon.instances.loader import INSTANCES_DIR, read_toml, reject_unknown

PRICES_FILE = INSTANCES_DIR / "prices" / "offer_ratios.toml"
_PERIOD_KEYS = {"count", "hours", "demand_csv"}
_GPU_OFFER_KEYS = {"on_demand_usd_per_hour", "on_demand", "reserved", "reserved_usd_per_hour", "spot_usd_per_hour",
                   "spot_available"}
_WORKLOAD_PLAN_KEYS = {"max_spot_share", "min_replicas"}
MAX_PERIODS = 10_000


@dataclass(frozen=True)
class GpuOffers:
    """What one GPU type can be had as, in USD per GPU-hour (None: not offered); spot GPUs per period."""

    on_demand_usd_per_hour: float | None
    reserved_usd_per_hour: float | None
    spot_usd_per_hour: float | None
    spot_available: tuple[int, ...]


@dataclass(frozen=True)
class HorizonScenario:
    """A fleet scenario over ``periods`` periods of ``period_hours`` each.

    ``fleet``'s workloads carry their peak demand (their candidates do not depend on it);
    ``demand_requests_per_s[w][k]`` is workload ``w``'s demand in period ``k``.
    """

    fleet: FleetScenario
    periods: int
    period_hours: float
    demand_requests_per_s: np.ndarray  # (W, K)
    offers: tuple[GpuOffers, ...]
    max_spot_share: tuple[float, ...]
    min_replicas: tuple[int, ...]

    @property
    def source(self) -> str:
        return self.fleet.source


def default_ratios() -> dict[str, float]:
    """Reserved and spot prices as fractions of on demand, from ``instances/prices/offer_ratios.toml`` (cited)."""
    raw = read_toml(PRICES_FILE)
    return {key: float(entry["value"]) for key, entry in raw.items()}


def has_periods(path: str | Path) -> bool:
    """Whether a fleet file plans over periods (it has a ``[periods]`` table)."""
    return "periods" in read_toml(Path(path))


def _nonnegative(where: str, key: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InstanceError(f"{where}: '{key}' must be a finite number (got {value!r})")
    if value < 0 or (positive and value == 0):
        raise InstanceError(f"{where}: '{key}' must be {'>' if positive else '>='} 0 (got {value!r})")
    return float(value)


def _per_period(where: str, key: str, value: Any, count: int, *, integer: bool = False) -> list[float]:
    """A number for every period, or a list of ``count``, each >= 0 (whole numbers if ``integer``)."""
    values = value if isinstance(value, list) else [value] * count
    if isinstance(value, list) and len(value) != count:
        raise InstanceError(f"{where}: '{key}' lists {len(value)} periods, [periods] count is {count}")
    out = []
    for k, v in enumerate(values):
        label = f"{key}' in period {k}" if isinstance(value, list) else key + "'"
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise InstanceError(f"{where}: '{label} must be a finite number (got {v!r})")
        if v < 0:
            raise InstanceError(f"{where}: '{label} must be >= 0 (got {v!r})")
        if integer and v != int(v):
            raise InstanceError(f"{where}: '{label} must be a whole number of GPUs (got {v!r})")
        out.append(float(v))
    return out


def _demand_csv(where: str, path: Path, names: list[str], count: int) -> dict[str, list[float]]:
    """``period,workload,requests_per_s`` rows: every listed workload needs every period exactly once."""
    label = f"{where}: demand_csv {path}"
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise InstanceError(f"{label}: file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InstanceError(f"{label}: cannot read: {exc}") from None
    if not rows or set(rows[0]) != {"period", "workload", "requests_per_s"}:
        raise InstanceError(f"{label}: expected the columns period,workload,requests_per_s")
    found: dict[str, list[float | None]] = {}
    for line, row in enumerate(rows, start=2):
        name = row["workload"]
        if name not in names:
            raise InstanceError(f"{label}: line {line}: workload {name!r} is not a [[workload]] of the file")
        try:
            period = int(row["period"])
            value = float(row["requests_per_s"])
        except (TypeError, ValueError):
            raise InstanceError(f"{label}: line {line}: period must be a whole number and requests_per_s a number "
                                f"(got {row['period']!r}, {row['requests_per_s']!r})") from None
        if not 0 <= period < count:
            raise InstanceError(f"{label}: line {line}: period {period} is outside 0..{count - 1}")
        if not math.isfinite(value) or value < 0:
            raise InstanceError(f"{label}: line {line}: workload '{name}' period {period}: 'requests_per_s' must "
                                f"be >= 0 (got {value!r})")
        slots = found.setdefault(name, [None] * count)
        if slots[period] is not None:
            raise InstanceError(f"{label}: line {line}: workload '{name}' period {period} is given twice")
        slots[period] = value
    for name, slots in found.items():
        missing = [k for k, v in enumerate(slots) if v is None]
        if missing:
            raise InstanceError(f"{label}: workload '{name}' has no demand for period {missing[0]}")
    return {name: [float(v) for v in slots] for name, slots in found.items()}


def load_horizon_scenario(path: str | Path) -> HorizonScenario:
    """Read and validate a planning file over periods (module docstring).

    Raises:
        InstanceError: naming the file, the workload or GPU, the field and the period: a profile of
            the wrong length, a negative demand or price, a spot share outside [0, 1], and every
            error of a fleet scenario.
    """
    path = Path(path)
    where = str(path)
    data = read_toml(path)
    if "periods" not in data:
        raise InstanceError(f"{where}: no [periods] table (a file without one is a one-hour fleet: infecon fleet)")
    periods = data["periods"]
    if not isinstance(periods, dict):
        raise InstanceError(f"{where}: 'periods' must be a table (got {periods!r})")
    reject_unknown(f"{where}: [periods]", periods, _PERIOD_KEYS)
    count = periods.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_PERIODS:
        raise InstanceError(f"{where}: [periods] 'count' must be a whole number in 1..{MAX_PERIODS} (got {count!r})")
    hours = _nonnegative(f"{where}: [periods]", "hours", periods.get("hours", 1.0), positive=True)
    if hours > 8760:
        raise InstanceError(f"{where}: [periods] 'hours' must be at most 8760 (a year) (got {hours!r})")
    ratios = default_ratios()
    gpus_raw = data.get("gpu")
    workloads_raw = data.get("workload")
    if not isinstance(gpus_raw, list) or not isinstance(workloads_raw, list) or \
            not all(isinstance(t, dict) for t in [*gpus_raw, *workloads_raw]):
        raise InstanceError(f"{where}: expected [[gpu]] and [[workload]] tables")
    csv_demand = None
    if "demand_csv" in periods:
        if not isinstance(periods["demand_csv"], str):
            raise InstanceError(f"{where}: [periods] 'demand_csv' must be a path (got {periods['demand_csv']!r})")
        names = [str(w.get("name")) for w in workloads_raw]
        csv_demand = _demand_csv(where, path.parent / periods["demand_csv"], names, count)

    offers, base_gpus = [], []
    for number, raw in enumerate(gpus_raw, start=1):
        label = f"{where}: gpu #{number} ({raw.get('hardware', '?')})"
        base = {k: v for k, v in raw.items() if k not in _GPU_OFFER_KEYS}
        if "on_demand_usd_per_hour" in raw:
            if "price_usd_per_hour" in raw:
                raise InstanceError(f"{label}: give one of 'price_usd_per_hour' and 'on_demand_usd_per_hour'")
            base["price_usd_per_hour"] = raw["on_demand_usd_per_hour"]
        for key in ("on_demand", "reserved"):
            if key in raw and not isinstance(raw[key], bool):
                raise InstanceError(f"{label}: '{key}' must be true or false (got {raw[key]!r})")
        for key in ("on_demand_usd_per_hour", "reserved_usd_per_hour", "spot_usd_per_hour"):
            if key in raw:
                _nonnegative(label, key, raw[key], positive=True)
        if "spot_usd_per_hour" in raw and "spot_available" not in raw:
            raise InstanceError(f"{label}: 'spot_usd_per_hour' needs 'spot_available' (spot GPUs per period)")
        if raw.get("reserved") is False and "reserved_usd_per_hour" in raw:
            raise InstanceError(f"{label}: 'reserved = false' and 'reserved_usd_per_hour' contradict each other")
        base_gpus.append(base)
        spot = _per_period(label, "spot_available", raw.get("spot_available", 0), count, integer=True)
        offers.append((raw, [int(v) for v in spot]))

    base_workloads, profiles, shares, floors = [], [], [], []
    for number, raw in enumerate(workloads_raw, start=1):
        name = raw.get("name", f"#{number}")
        label = f"{where}: workload '{name}'"
        base = {k: v for k, v in raw.items() if k not in _WORKLOAD_PLAN_KEYS}
        keys = [k for k in ("requests_per_s", "output_tok_per_s") if k in raw]
        if csv_demand is not None and name in csv_demand:
            if keys:
                raise InstanceError(f"{label}: demand is given both in demand_csv and as '{keys[0]}'")
            profile = csv_demand[name]
        elif len(keys) == 1:
            profile = _per_period(label, keys[0], raw[keys[0]], count)
            if keys[0] == "output_tok_per_s":
                osl = raw.get("osl")
                if isinstance(osl, int) and not isinstance(osl, bool) and osl >= 1:
                    profile = [v / osl for v in profile]
        else:
            raise InstanceError(f"{label}: give exactly one of 'requests_per_s' and 'output_tok_per_s' (a number or "
                                f"a list of {count} periods), or its rows in demand_csv (got {keys or 'neither'})")
        peak = max(profile)
        if peak <= 0:
            raise InstanceError(f"{label}: demand is 0 in every period")
        for key in keys:
            base.pop(key)
        base["requests_per_s"] = peak  # candidates do not depend on demand; the fleet reader checks the range
        share = _nonnegative(label, "max_spot_share", raw.get("max_spot_share", 1.0))
        if share > 1:
            raise InstanceError(f"{label}: 'max_spot_share' must be in [0, 1] (got {share!r})")
        floor = raw.get("min_replicas", 0)
        if isinstance(floor, bool) or not isinstance(floor, int) or floor < 0:
            raise InstanceError(f"{label}: 'min_replicas' must be a whole number >= 0 (got {floor!r})")
        base_workloads.append(base)
        profiles.append(profile)
        shares.append(share)
        floors.append(floor)

    body = {k: v for k, v in data.items() if k != "periods"}
    fleet = load_fleet_scenario_data(where, {**body, "gpu": base_gpus, "workload": base_workloads})
    gpu_offers = []
    for pool, (raw, spot) in zip(fleet.gpus, offers, strict=True):
        on_demand = pool.hardware.price_usd_per_hour
        reserved = raw.get("reserved_usd_per_hour")
        if reserved is None and raw.get("reserved") is True:
            reserved = on_demand * ratios["reserved_over_on_demand"]
        spot_price = raw.get("spot_usd_per_hour")
        if spot_price is None and any(spot):
            spot_price = on_demand * ratios["spot_over_on_demand"]
        offered = raw.get("on_demand", True)
        if not offered and reserved is None and not any(spot):
            raise InstanceError(f"{where}: gpu '{pool.key}': 'on_demand = false' and neither reserved nor spot: "
                                f"this type can never be had")
        gpu_offers.append(GpuOffers(on_demand if offered else None, None if reserved is None else float(reserved),
                                    None if spot_price is None or not any(spot) else float(spot_price),
                                    tuple(spot)))
    return HorizonScenario(fleet, count, hours, np.array(profiles, dtype=float), tuple(gpu_offers), tuple(shares),
                           tuple(floors))
