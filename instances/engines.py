"""Read serving-engine profiles (``instances/engines/<family>.toml``) and map engine names to families.

A profile is data: every value is ``{ value = ..., source = "..." }`` (which rows it was fitted on,
or the document it comes from). An engine name as a measurement file writes it maps to its
family, the text before the first ``-`` (``vllm-0.10-rocm`` -> ``vllm``), or for an engine that wraps
another (``WRAPPERS``: NIM) the engine it runs; an unknown family uses ``generic``, and ``resolve_engine``
says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infecon.formulations.errors import InstanceError
from infecon.formulations.specs import PER_HARDWARE, SERVING_MODES, EngineProfile, KernelCounts
from infecon.instances.limits import FIELD_RANGES, check_field
from infecon.instances.loader import (
    INSTANCES_DIR,
    _check_int,
    _check_number,
    _unwrap,
    cached,
    read_toml,
    reject_unknown,
)

ENGINES_DIR = INSTANCES_DIR / "engines"
DEFAULT_ENGINE = "generic"

_FRACTIONS = ("flop_efficiency", "bandwidth_efficiency", "memory_fraction")
_SECONDS = ("kernel_s", "sequence_layer_s", "step_s", "request_s")
_SHARES = ("stage_overhead_share",)  # in [0, 1]
_COUNTS = ("max_seqs", "max_pp")  # positive integers
_FLAGS = ("paper", "chunked_prefill", "attention_dp")
# What calibration fits, so every non-paper profile must give it (the engine limits above are optional).
_FITTED = ("flop_efficiency", "bandwidth_efficiency", *_SECONDS)
_KERNEL_FIELDS = tuple(f for f in KernelCounts.__dataclass_fields__)
MAX_CHUNK_TOKENS = int(FIELD_RANGES["chunk_tokens"].high)  # prompt tokens per engine step (limits: the reason)
# Keys that were renamed: a file giving one is refused with the new name rather than read under the old one.
# ``prefill_chunk_tokens`` (pipelined prefill) and ``chunk_tokens`` (percentile SLOs) were one engine setting
# (vLLM max_num_batched_tokens, SGLang chunked_prefill_size, TensorRT-LLM max_num_tokens) under two keys.
RENAMED = {"prefill_chunk_tokens": "chunk_tokens"}


# Engines that serve through another engine's runtime: measuring the wrapper measures what it wraps. The
# backend is the one the name's variant names (``nim-1.8-trtllm`` -> ``trtllm``), else the wrapper's default.
WRAPPERS = {
    "nim": ("trtllm", "NVIDIA NIM for LLMs serves the models it optimises with TensorRT-LLM engines (NIM docs, "
                      "'Supported models'; vLLM or SGLang otherwise, named in the engine's variant); the data's "
                      "NIM rows are 'nim-1.8-trtllm'. Five rows of one source and GPU: too few for a profile of "
                      "its own that could be checked on data it was not fitted on"),
}


def published_family(engine: str) -> str:
    """The text before the first ``-`` of an engine name, lower-cased, as the measurement wrote it."""
    return engine.strip().lower().split("-", 1)[0]


def engine_family(engine: str) -> str:
    """The profile family of an engine name: its first part (``trtllm-0.9`` -> ``trtllm``), or for a wrapper
    (``WRAPPERS``) the engine it runs (``nim-1.8-trtllm`` -> ``trtllm``)."""
    parts = engine.strip().lower().split("-")
    if parts[0] not in WRAPPERS:
        return parts[0]
    named = [p for p in parts[1:] if p not in ("paper", DEFAULT_ENGINE) and (ENGINES_DIR / f"{p}.toml").is_file()]
    return named[-1] if named else WRAPPERS[parts[0]][0]


def builtin_engine_names() -> list[str]:
    return sorted(p.stem for p in ENGINES_DIR.glob("*.toml"))


@cached
def load_engine(path: str | Path) -> EngineProfile:
    """Load and validate one engine profile; bad data names file, field, rule and value."""
    path = Path(path)
    data = read_toml(path)
    allowed = {"name", "default_mode", "kernels", "by_hardware", "chunk_tokens", *_FRACTIONS, *_SECONDS, *_SHARES,
               *_COUNTS, *_FLAGS}
    for old, new in RENAMED.items():
        if old in data:
            raise InstanceError(f"{path}: field '{old}' is now '{new}' (one engine setting: the prompt tokens a "
                                f"step takes, the same chunk for pipelined prefill and percentile SLOs); rename it"
                                + (" and keep one of the two (the file gives both)" if new in data else ""))
    reject_unknown(path, data, allowed)
    if "name" not in data:
        raise InstanceError(f"{path}: missing required field 'name'")
    sources: dict[str, str] = {}
    values: dict[str, Any] = {}
    for key, raw in data.items():
        if key in ("kernels", "by_hardware"):
            continue
        value = _unwrap(path, key, raw, sources)
        if key in _FRACTIONS:
            values[key] = _check_number(path, key, value, at_most=1.0)
        elif key in _SECONDS:
            values[key] = _check_number(path, key, value, positive=False)
        elif key in _SHARES:
            values[key] = _check_number(path, key, value, positive=False, at_most=1.0)
        elif key in _COUNTS:
            values[key] = _check_int(path, key, value, 1, 10**12)
        elif key in _FLAGS:
            if not isinstance(value, bool):
                raise InstanceError(f"{path}: '{key}' must be true or false (got {value!r})")
            values[key] = value
        elif key == "chunk_tokens":
            values[key] = _check_int(path, key, value, 1, MAX_CHUNK_TOKENS)
        elif key == "default_mode":
            if value not in SERVING_MODES:
                raise InstanceError(f"{path}: 'default_mode' must be one of {', '.join(SERVING_MODES)} (got {value!r})")
            values[key] = value
        elif not isinstance(value, str) or not value:
            raise InstanceError(f"{path}: 'name' must be a non-empty string (got {value!r})")
        else:
            values[key] = value
    kernels = data.get("kernels", {})
    if not isinstance(kernels, dict):
        raise InstanceError(f"{path}: 'kernels' must be a table")
    reject_unknown(path, kernels, _KERNEL_FIELDS, prefix="kernels.")
    counts = {key: _check_int(path, f"kernels.{key}", _unwrap(path, f"kernels.{key}", raw, sources), 0)
              for key, raw in kernels.items()}
    by_hardware = data.get("by_hardware", {})
    if not isinstance(by_hardware, dict):
        raise InstanceError(f"{path}: 'by_hardware' must hold one table per hardware name")
    per_hw = {}
    for hw_name, table in by_hardware.items():
        where = f"by_hardware.{hw_name}"
        if not isinstance(table, dict):
            raise InstanceError(f"{path}: '{where}' must be a table of {', '.join(PER_HARDWARE)}")
        reject_unknown(path, table, PER_HARDWARE, prefix=f"{where}.")
        per_hw[hw_name] = {key: _check_number(path, f"{where}.{key}", _unwrap(path, f"{where}.{key}", raw, sources),
                                              at_most=1.0 if key in _FRACTIONS else None)
                           for key, raw in table.items()}
    if not values.get("paper", False):
        missing = [key for key in _FITTED if key not in values]
        if missing:
            # A profile is fitted data: a field left out would silently take a default no engine was measured at.
            raise InstanceError(f"{path}: missing required field '{missing[0]}' (an engine profile gives "
                                f"{', '.join(_FITTED)}; 'paper = true' takes the paper's model)")
    try:
        profile = EngineProfile(**values, kernels=KernelCounts(**counts), by_hardware=per_hw, sources=sources)
    except ValueError as exc:
        raise InstanceError(f"{path}: {exc}") from None
    return check_engine(profile, path)


def check_engine(profile: object, where: str | Path = "engine") -> EngineProfile:
    """An ``EngineProfile`` whose every number is plausible (``limits.FIELD_RANGES``), or ``InstanceError``.

    The loader calls it on every file and the API on a profile it is handed, so an edited profile
    (``dataclasses.replace``) meets the same bounds as a file.
    """
    if not isinstance(profile, EngineProfile):
        raise InstanceError(f"{where}: expected an EngineProfile, a built-in engine name or a file path "
                            f"(got {type(profile).__name__})")
    if not isinstance(profile.name, str) or not profile.name:
        raise InstanceError(f"{where}: 'name' must be a non-empty string (got {profile.name!r})")
    for key in (*_FRACTIONS, *_SECONDS, *_SHARES, "chunk_tokens"):
        check_field(key, getattr(profile, key), label=f"'{key}'", where=str(where))
    for key in _COUNTS:  # None: no limit
        if getattr(profile, key) is not None:
            check_field(key, getattr(profile, key), label=f"'{key}'", where=str(where))
    for key in _KERNEL_FIELDS:
        check_field("kernels", getattr(profile.kernels, key), label=f"'kernels.{key}'", where=str(where))
    for hw_name, table in profile.by_hardware.items():
        for key, value in table.items():
            check_field(key, value, label=f"'by_hardware.{hw_name}.{key}'", where=str(where))
    if profile.default_mode not in SERVING_MODES:
        raise InstanceError(f"{where}: 'default_mode' must be one of {', '.join(SERVING_MODES)} "
                            f"(got {profile.default_mode!r})")
    return profile


def get_engine(name: str) -> EngineProfile:
    """A built-in profile by family name (``vllm``), or a profile file by path."""
    text = str(name)
    if text.endswith(".toml") or Path(text).is_file():
        return load_engine(text)
    path = ENGINES_DIR / f"{engine_family(text)}.toml"
    if not path.is_file():
        raise InstanceError(f"unknown engine '{name}' (built-in: {', '.join(builtin_engine_names())}; or pass a file)")
    return load_engine(path)


def resolve_engine(engine: str) -> tuple[EngineProfile, str | None]:
    """The profile for a measurement's engine name, and a note when its family falls back to ``generic``."""
    family = engine_family(engine)
    if (ENGINES_DIR / f"{family}.toml").is_file():
        wrapper = published_family(engine)
        note = f"{wrapper} runs {family}: used {family}" if wrapper in WRAPPERS else None
        return load_engine(ENGINES_DIR / f"{family}.toml"), note
    return load_engine(ENGINES_DIR / f"{DEFAULT_ENGINE}.toml"), f"engine family '{family}' unknown: used generic"
