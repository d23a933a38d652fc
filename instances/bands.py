"""Read the error-band table (``instances/bands/bands.toml``, written by ``scripts/fit_bands.py``).

Every value is ``{ value = ..., source = "..." }``; the rows the quantiles come from are in
``instances/bands/residuals.csv``. Bad data names the file, the field, the rule and the value.
"""

from __future__ import annotations

import itertools
from functools import lru_cache
from pathlib import Path
from typing import Any

from infecon.formulations.bands import LEVELS, BandTable, EngineBand, Widening
from infecon.formulations.errors import InstanceError
from infecon.instances.loader import INSTANCES_DIR, _unwrap, read_toml, reject_unknown

BANDS_DIR = INSTANCES_DIR / "bands"
BANDS_FILE = BANDS_DIR / "bands.toml"
_WIDENING = tuple(f.name for f in Widening.__dataclass_fields__.values())
_ENGINE_KEYS = ("rows", "quantiles", "hardware", "architectures", "batch_max", "pp_max", "attention_dp")


def _value(path: Path, where: str, data: dict[str, Any], key: str) -> Any:
    if key not in data:
        raise InstanceError(f"{path}: {where}missing field '{key}'")
    return _unwrap(path, f"{where}{key}", data[key], {})


def _number(path: Path, key: str, value: Any, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= minimum:
        raise InstanceError(f"{path}: '{key}' must be a number >= {minimum:g} (got {value!r})")
    return float(value)


def _engine(path: Path, name: str, data: Any) -> EngineBand:
    where = f"engine.{name}."
    if not isinstance(data, dict):
        raise InstanceError(f"{path}: '[engine.{name}]' must be a table")
    reject_unknown(path, data, _ENGINE_KEYS, prefix=where)
    v = {key: _value(path, where, data, key) for key in _ENGINE_KEYS}
    quantiles = v["quantiles"]
    if (not isinstance(quantiles, list) or len(quantiles) != len(LEVELS)
            or any(isinstance(q, bool) or not isinstance(q, int | float) for q in quantiles)
            or any(b < a for a, b in itertools.pairwise(quantiles))):
        raise InstanceError(f"{path}: '{where}quantiles' must be {len(LEVELS)} non-decreasing numbers, one per "
                            f"level {LEVELS[0]}..{LEVELS[-1]} (got {quantiles!r})")
    for key in ("hardware", "architectures"):
        if not isinstance(v[key], list) or not all(isinstance(x, str) for x in v[key]):
            raise InstanceError(f"{path}: '{where}{key}' must be a list of names (got {v[key]!r})")
    if not isinstance(v["attention_dp"], bool):
        raise InstanceError(f"{path}: '{where}attention_dp' must be true or false (got {v['attention_dp']!r})")
    return EngineBand(name, int(_number(path, where + "rows", v["rows"], 2)), tuple(float(q) for q in quantiles),
                      tuple(v["hardware"]), tuple(v["architectures"]),
                      int(_number(path, where + "batch_max", v["batch_max"], 1)),
                      int(_number(path, where + "pp_max", v["pp_max"], 1)), v["attention_dp"])


def load_bands(path: str | Path = BANDS_FILE) -> BandTable:
    """Load and check a band table."""
    path = Path(path)
    data = read_toml(path)
    reject_unknown(path, data, ("data", "widening", "engine", "fallback"))
    widening = data.get("widening")
    if not isinstance(widening, dict):
        raise InstanceError(f"{path}: missing table '[widening]'")
    reject_unknown(path, widening, _WIDENING, prefix="widening.")
    width = Widening(**{k: _number(path, f"widening.{k}", _value(path, "widening.", widening, k)) for k in _WIDENING})
    engines = data.get("engine")
    if not isinstance(engines, dict) or not engines:
        raise InstanceError(f"{path}: missing tables '[engine.<name>]'")
    table = {name: _engine(path, name, body) for name, body in engines.items()}
    fallback = _unwrap(path, "fallback", data.get("fallback", "generic"), {})
    if fallback not in table:
        raise InstanceError(f"{path}: 'fallback' must name an [engine.<name>] table (got {fallback!r})")
    return BandTable(table, width, fallback)


@lru_cache(maxsize=1)
def shipped_bands() -> BandTable:
    """The shipped table, read once per process."""
    return load_bands(BANDS_FILE)
