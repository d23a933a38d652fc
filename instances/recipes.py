"""Read an engine's recipe record (``instances/engines/recipes/<engine>.toml``): how its launch command spells things.

A record is data with a source for every entry, as the rest of ``instances/``: the command that starts the
engine, the flag (or extra-options YAML key) for each setting of a deployment, the values those flags take,
and what the engine's documentation says it supports. ``solver.recipes`` writes commands from these names only,
so a flag the record does not hold is never emitted, and the tests check every generated command against it.
The folder sits beside the engine profiles but is not one of them (``engines.builtin_engine_names`` lists only
``engines/*.toml``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infecon.formulations.errors import InstanceError
from infecon.instances.engines import ENGINES_DIR, engine_family
from infecon.instances.loader import _unwrap, read_toml, reject_unknown

RECIPES_DIR = ENGINES_DIR / "recipes"
_TOP = ("engine", "version", "launcher", "model", "memory_fraction")
_TABLES = ("flags", "options", "values", "supports")


@dataclass(frozen=True)
class RecipeRecord:
    """One engine version's spelling of a deployment.

    ``flags``: setting -> command-line flag (``tensor_parallel`` -> ``--tensor-parallel-size``); ``options``:
    setting -> dotted key of the extra-options YAML (TensorRT-LLM); ``values``: named flag values
    (``kv_8bit`` -> ``fp8``); ``supports``: documented capabilities (``pipeline_parallel`` -> True).
    ``model`` is the flag that takes the model, or empty when it is the launcher's positional argument.
    ``memory_fraction`` is the share of GPU memory the engine may claim, the documented default.
    """

    engine: str
    version: str
    launcher: str
    model: str
    memory_fraction: float
    flags: dict[str, str]
    options: dict[str, str]
    values: dict[str, str]
    supports: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def flag(self, setting: str) -> str:
        """The flag for ``setting``; a ``KeyError`` naming the record if it has none (a recipe bug, not input)."""
        if setting not in self.flags:
            raise KeyError(f"{self.engine} {self.version}: no flag recorded for '{setting}'")
        return self.flags[setting]

    def option(self, setting: str) -> str:
        if setting not in self.options:
            raise KeyError(f"{self.engine} {self.version}: no extra-options key recorded for '{setting}'")
        return self.options[setting]

    def supported(self, capability: str) -> bool:
        return bool(self.supports.get(capability, False))

    def source(self, table: str, key: str) -> str:
        """Where the record's documentation names ``table.key`` (a top-level field with ``table`` empty)."""
        return self.sources.get(f"{table}.{key}" if table else key, "")


def recipe_engine_names() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))


def load_recipe_record(path: str | Path) -> RecipeRecord:
    """Load and validate one record; bad data names file, field, rule and value."""
    path = Path(path)
    data = read_toml(path)
    reject_unknown(path, data, (*_TOP, *_TABLES))
    sources: dict[str, str] = {}
    top: dict[str, Any] = {}
    for key in _TOP:
        if key not in data:
            raise InstanceError(f"{path}: missing required field '{key}'")
        value = _unwrap(path, key, data[key], sources)
        if key == "memory_fraction":
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
                raise InstanceError(f"{path}: 'memory_fraction' must be a number in (0, 1] (got {value!r})")
        elif not isinstance(value, str) or (key != "model" and not value):
            raise InstanceError(f"{path}: '{key}' must be a{'' if key == 'model' else ' non-empty'} string "
                                f"(got {value!r})")
        top[key] = value
    tables: dict[str, dict[str, Any]] = {}
    for table in _TABLES:
        raw = data.get(table, {})
        if not isinstance(raw, dict):
            raise InstanceError(f"{path}: '{table}' must be a table")
        entries = {}
        for key, entry in raw.items():
            where = f"{table}.{key}"
            value = _unwrap(path, where, entry, sources)
            if table == "supports":
                if not isinstance(value, bool):
                    raise InstanceError(f"{path}: '{where}' must be true or false (got {value!r})")
            elif not isinstance(value, str) or not value:
                raise InstanceError(f"{path}: '{where}' must be a non-empty string (got {value!r})")
            elif table == "flags" and not value.startswith("-"):
                raise InstanceError(f"{path}: '{where}' must be a command-line flag starting with '-' (got {value!r})")
            if not sources.get(where) or sources[where] == path.name:
                raise InstanceError(f"{path}: '{where}' needs a source (the documentation that names it)")
            entries[key] = value
        tables[table] = entries
    return RecipeRecord(**top, **tables, sources=sources)


def get_recipe_record(engine: str) -> RecipeRecord:
    """The built-in record of an engine family (``vllm``, ``sglang``, ``trtllm``, ``dynamo``), by name or alias."""
    family = engine_family(str(engine))
    path = RECIPES_DIR / f"{family}.toml"
    if not path.is_file():
        raise InstanceError(f"no launch recipe for engine '{engine}' (recipes exist for "
                            f"{', '.join(n for n in recipe_engine_names() if n != 'dynamo')}; a disaggregated pair "
                            "uses SGLang PD or NVIDIA Dynamo)")
    return load_recipe_record(path)
