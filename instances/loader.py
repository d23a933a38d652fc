"""Read models and hardware from TOML files (built-in or the user's) and Hugging Face ``config.json`` files.

Every field of a built-in file is ``name = { value = ..., source = "..." }``; a user's own file may
give bare values, whose source is then the file itself. An unknown key, a missing field, a wrong
type or an out-of-range value raises ``InstanceError`` naming file, field, rule and value, so a
typo never falls back to a default unnoticed.
"""

from __future__ import annotations

import functools
import json
import math
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from infecon.formulations.errors import InstanceError
from infecon.formulations.specs import PROTOCOL_NAMES, HardwareSpec, ModelSpec, ProtocolLatency
from infecon.instances.limits import KNOB_RANGES, check_field, check_knob

INSTANCES_DIR = Path(__file__).resolve().parent
MODELS_DIR = INSTANCES_DIR / "models"
HARDWARE_DIR = INSTANCES_DIR / "hardware"

_MODEL_INT_FIELDS = {
    "n_layers": 1, "d_model": 1, "n_heads": 1, "n_kv_heads": 1, "d_head": 1, "d_ff": 1, "vocab_size": 1,
    "n_routed_experts": 0, "n_active_experts": 0, "n_shared_experts": 0, "d_ff_expert": 0,
    "n_dense_layers": 0, "q_lora_rank": 0, "kv_lora_rank": 0, "qk_rope_head_dim": 0, "v_head_dim": 0,
    "attention_window_tokens": 0, "n_window_layers": 0, "n_linear_layers": 0, "linear_key_heads": 0,
    "linear_value_heads": 0, "linear_key_head_dim": 0, "linear_value_head_dim": 0, "linear_conv_kernel": 0,
    "sparse_attention_topk": 0, "indexer_heads": 0, "indexer_head_dim": 0,
}
_MODEL_BOOL_FIELDS = ("ffn_gated", "tied_embeddings", "parallel_attention", "attention_sinks",
                      "attention_output_gate")
_LINEAR_FIELDS = ("linear_key_heads", "linear_value_heads", "linear_key_head_dim", "linear_value_head_dim",
                  "linear_conv_kernel")
WINDOW_KINDS = ("sliding", "chunked")
_MODEL_REQUIRED = ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_head", "d_ff", "vocab_size")

_HW_POSITIVE = (
    "hbm_capacity_bytes", "hbm_bandwidth_bytes_per_s", "intra_node_bandwidth_bytes_per_s",
    "inter_node_bandwidth_bytes_per_s", "price_usd_per_hour",
)
_HW_NONNEGATIVE = ("kernel_launch_latency_s",)
_HW_FRACTIONS = ("flop_efficiency", "bandwidth_efficiency")
_FLOP_KEYS = {"flop_per_s_4bit": 4, "flop_per_s_8bit": 8, "flop_per_s_16bit": 16, "flop_per_s_32bit": 32}
_PROTOCOL_FIELDS = tuple(f.name for f in fields(ProtocolLatency))


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning I/O and syntax errors into ``InstanceError`` naming the file."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise InstanceError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise InstanceError(f"{path}: malformed TOML: {exc}") from None
    except OSError as exc:
        raise InstanceError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InstanceError(f"{path}: not a UTF-8 text file (expected TOML)") from None


def _unwrap(path: Path, key: str, raw: Any, sources: dict[str, str]) -> Any:
    """Split ``{value, source}`` into the value, recording its source."""
    if isinstance(raw, dict):
        extra = set(raw) - {"value", "source"}
        if extra or "value" not in raw:
            raise InstanceError(
                f"{path}: '{key}' must be a value or {{ value = ..., source = \"...\" }} (got keys {sorted(raw)})")
        sources[key] = str(raw.get("source", path.name))
        return raw["value"]
    sources[key] = path.name
    return raw


# 2**24 (16.8M) is ~64x the largest dimension of any published model (a 256K vocabulary); beyond it a product
# of dimensions overflows float64 or int64 in the physics instead of failing here, naming the field.
MAX_MODEL_DIMENSION = 2**24


def _check_int(path: str | Path, key: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InstanceError(f"{path}: '{key}' must be an integer (got {value!r})")
    if value < minimum:
        raise InstanceError(f"{path}: '{key}' must be >= {minimum} (got {value})")
    if maximum is not None and value > maximum:
        raise InstanceError(f"{path}: '{key}' must be <= {maximum} (got {value})")
    return value


def _check_number(path: Path, key: str, value: Any, *, positive: bool = True, at_most: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InstanceError(f"{path}: '{key}' must be a number (got {value!r})")
    if not math.isfinite(value):
        raise InstanceError(f"{path}: '{key}' must be finite (got {value!r})")
    if positive and not value > 0:
        raise InstanceError(f"{path}: '{key}' must be > 0 (got {value!r})")
    if not positive and value < 0:
        raise InstanceError(f"{path}: '{key}' must be >= 0 (got {value!r})")
    if at_most is not None and value > at_most:
        raise InstanceError(f"{path}: '{key}' must be <= {at_most} (got {value!r})")
    return float(value)


# Top-level keys that only one kind of file has: a file given to the wrong command or option says what it is.
_FILE_KIND_BY_KEY = {
    "base": "a sweep file (infecon sweep FILE)", "sweep": "a sweep file (infecon sweep FILE)",
    "defaults": "a plan file (infecon plan FILE)", "scenario": "a plan file (infecon plan FILE)",
    "fleet": "a fleet file (infecon fleet FILE)", "gpu": "a fleet file (infecon fleet FILE)",
    "workload": "a fleet file (infecon fleet FILE)",
    "n_layers": "a model file (--model FILE)", "d_model": "a model file (--model FILE)",
    "hbm_capacity_bytes": "a hardware file (--hardware FILE)",
    "hbm_bandwidth_bytes_per_s": "a hardware file (--hardware FILE)",
}


def reject_unknown(where: str | Path, data: Mapping[str, Any], allowed: Iterable[str], prefix: str = "") -> None:
    """Raise naming the first key of ``data`` not in ``allowed`` (so a typo never falls back to a default).

    At a file's top level (``where`` is the bare path), unknown keys that mark another kind of file add a
    hint, e.g. a plan file given to ``infecon sweep``: "this looks like a plan file (infecon plan FILE)".
    """
    allowed = set(allowed)
    unknown = sorted(set(data) - allowed)
    if unknown:
        kinds = [_FILE_KIND_BY_KEY[k] for k in unknown if k in _FILE_KIND_BY_KEY] if ": " not in str(where) else []
        hint = f"; this looks like {kinds[0]}" if kinds and not prefix else ""
        raise InstanceError(
            f"{where}: unknown field '{prefix}{unknown[0]}' (expected one of: {', '.join(sorted(allowed))}){hint}")


def model_from_mapping(path: Path, data: Mapping[str, Any]) -> ModelSpec:
    """Validate one model's fields (already parsed) and build its ``ModelSpec``."""
    allowed = {"name", "attention", "window_kind", "hf_id", *_MODEL_INT_FIELDS, *_MODEL_BOOL_FIELDS}
    reject_unknown(path, data, allowed)
    for key in ("name", *_MODEL_REQUIRED):
        if key not in data:
            raise InstanceError(f"{path}: missing required field '{key}'")
    sources: dict[str, str] = {}
    values: dict[str, Any] = {}
    for key, raw in data.items():
        value = _unwrap(path, key, raw, sources)
        if key in _MODEL_INT_FIELDS:
            values[key] = _check_int(path, key, value, _MODEL_INT_FIELDS[key], MAX_MODEL_DIMENSION)
        elif key in _MODEL_BOOL_FIELDS:
            if not isinstance(value, bool):
                raise InstanceError(f"{path}: '{key}' must be true or false (got {value!r})")
            values[key] = value
        elif key == "attention":
            if value not in ("standard", "mla"):
                raise InstanceError(f"{path}: 'attention' must be \"standard\" or \"mla\" (got {value!r})")
            values[key] = value
        elif key == "window_kind":
            if value not in WINDOW_KINDS:
                raise InstanceError(f"{path}: 'window_kind' must be one of {', '.join(WINDOW_KINDS)} (got {value!r})")
            values[key] = value
        else:
            if not isinstance(value, str) or not value:
                raise InstanceError(f"{path}: '{key}' must be a non-empty string (got {value!r})")
            values[key] = value
    return check_model(ModelSpec(**values, sources=sources), path)


def check_model(m: object, where: str | Path = "model") -> ModelSpec:
    """A ``ModelSpec`` whose every field passes the loader's rules, or ``InstanceError`` naming field and value.

    Why: a spec edited with ``dataclasses.replace`` (the README's what-if) never went through a file; the API
    checks it here at its boundary, with the same rules and bounds a file gets.
    """
    if not isinstance(m, ModelSpec):
        raise InstanceError(f"{where}: expected a ModelSpec, a built-in model name or a file path "
                            f"(got {type(m).__name__})")
    if not isinstance(m.name, str) or not m.name:
        raise InstanceError(f"{where}: 'name' must be a non-empty string (got {m.name!r})")
    for key, minimum in _MODEL_INT_FIELDS.items():
        if key == "n_dense_layers" and m.n_dense_layers is None:
            continue  # not given: derived (``ModelSpec.n_dense_ffn_layers``)
        _check_int(where, key, getattr(m, key), minimum, MAX_MODEL_DIMENSION)
    for key in _MODEL_BOOL_FIELDS:
        if not isinstance(getattr(m, key), bool):
            raise InstanceError(f"{where}: '{key}' must be true or false (got {getattr(m, key)!r})")
    if m.attention not in ("standard", "mla"):
        raise InstanceError(f"{where}: 'attention' must be \"standard\" or \"mla\" (got {m.attention!r})")
    _check_model_consistency(where, m)
    return m


def _check_model_consistency(path: str | Path, m: ModelSpec) -> None:
    if m.n_heads % m.n_kv_heads:
        raise InstanceError(
            f"{path}: 'n_heads' must be a multiple of 'n_kv_heads' (got {m.n_heads} and {m.n_kv_heads})")
    if m.is_moe:
        if not 1 <= m.n_active_experts <= m.n_routed_experts:
            raise InstanceError(
                f"{path}: 'n_active_experts' must be in 1..n_routed_experts={m.n_routed_experts} "
                f"(got {m.n_active_experts})")
        if m.d_ff_expert < 1:
            raise InstanceError(f"{path}: 'd_ff_expert' must be >= 1 for a model with experts (got {m.d_ff_expert})")
    elif m.n_active_experts or m.n_shared_experts:
        raise InstanceError(f"{path}: 'n_active_experts'/'n_shared_experts' need 'n_routed_experts' >= 1")
    if m.n_dense_layers is not None:
        if m.n_dense_layers > m.n_layers:
            raise InstanceError(f"{path}: 'n_dense_layers' must be <= n_layers={m.n_layers} (got {m.n_dense_layers})")
        if not m.is_moe and m.n_dense_layers != m.n_layers:
            # A dense model's layers are all dense: another count is a question the model cannot answer.
            raise InstanceError(f"{path}: 'n_dense_layers' counts an MoE model's dense layers; every layer of a "
                                f"dense model is dense (got {m.n_dense_layers} with n_layers={m.n_layers}: leave "
                                "it out, or give n_routed_experts)")
    if m.attention == "mla" and (m.kv_lora_rank < 1 or m.v_head_dim < 1):
        raise InstanceError(f"{path}: an MLA model needs 'kv_lora_rank' >= 1 and 'v_head_dim' >= 1")
    if m.n_window_layers + m.n_linear_layers > m.n_layers:
        raise InstanceError(f"{path}: 'n_window_layers' + 'n_linear_layers' must be <= n_layers={m.n_layers} "
                            f"(got {m.n_window_layers} + {m.n_linear_layers})")
    if (m.n_window_layers > 0) != (m.attention_window_tokens > 0):
        raise InstanceError(f"{path}: 'n_window_layers' and 'attention_window_tokens' must both be >= 1 or both 0 "
                            f"(got {m.n_window_layers} and {m.attention_window_tokens})")
    if m.n_linear_layers:
        for key in _LINEAR_FIELDS:
            if getattr(m, key) < 1:
                raise InstanceError(f"{path}: '{key}' must be >= 1 for a model with linear-attention layers "
                                    f"(got {getattr(m, key)})")
    elif any(getattr(m, key) for key in _LINEAR_FIELDS):
        raise InstanceError(f"{path}: 'linear_*' dimensions need 'n_linear_layers' >= 1")
    sparse = (m.sparse_attention_topk, m.indexer_heads, m.indexer_head_dim)
    if any(sparse) and not (all(sparse) and m.attention == "mla" and not m.n_window_layers and not m.n_linear_layers):
        raise InstanceError(f"{path}: sparse attention needs 'sparse_attention_topk', 'indexer_heads' and "
                            f"'indexer_head_dim' all >= 1 on an MLA model without windowed or linear layers "
                            f"(got {sparse}, attention {m.attention!r})")


def file_version(path: Path) -> tuple[str, int, int] | None:
    """(path, mtime in ns, size) of a readable file, the key of ``cached``; None if it cannot be stat'ed."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return str(path), stat.st_mtime_ns, stat.st_size


def cached(load: Callable[[Path], Any]) -> Callable[[str | Path], Any]:
    """``load`` memoised per file version: a file read again (``validate`` reads the same few files for every row)
    is parsed and checked once, and an edited file (new mtime or size) is read afresh. Specs are frozen, so
    sharing one object is safe; errors are not cached (a missing file raises every time)."""
    memo = functools.lru_cache(maxsize=256)(lambda key: load(Path(key[0])))

    def wrapper(path: str | Path):
        key = file_version(Path(path))
        return load(Path(path)) if key is None else memo(key)

    wrapper.__doc__, wrapper.__name__, wrapper.cache_clear = load.__doc__, load.__name__, memo.cache_clear
    return wrapper


@cached
def load_model(path: str | Path) -> ModelSpec:
    """Load a model from a TOML file of ours or from a Hugging Face ``config.json``."""
    path = Path(path)
    if path.suffix == ".json":
        return model_from_hf_config(path)
    return model_from_mapping(path, read_toml(path))


@cached
def load_hardware(path: str | Path) -> HardwareSpec:
    """Load and validate one hardware TOML file."""
    path = Path(path)
    data = read_toml(path)
    allowed = {"name", "protocols", *_FLOP_KEYS, *_HW_POSITIVE, *_HW_NONNEGATIVE, *_HW_FRACTIONS, "node_size_gpus"}
    reject_unknown(path, data, allowed)
    required = ("name", "flop_per_s_16bit", "node_size_gpus", "protocols", *_HW_POSITIVE, *_HW_NONNEGATIVE)
    for key in required:
        if key not in data:
            raise InstanceError(f"{path}: missing required field '{key}'")
    sources: dict[str, str] = {}
    name = _unwrap(path, "name", data["name"], sources)
    if not isinstance(name, str) or not name:
        raise InstanceError(f"{path}: 'name' must be a non-empty string (got {name!r})")
    flops = {bits: _check_number(path, key, _unwrap(path, key, data[key], sources))
             for key, bits in _FLOP_KEYS.items() if key in data}
    values: dict[str, Any] = {key: _check_number(path, key, _unwrap(path, key, data[key], sources))
                              for key in _HW_POSITIVE}
    for key in _HW_NONNEGATIVE:
        values[key] = _check_number(path, key, _unwrap(path, key, data[key], sources), positive=False)
    for key in _HW_FRACTIONS:
        if key in data:
            values[key] = _check_number(path, key, _unwrap(path, key, data[key], sources), at_most=1.0)
    for key in ("price_usd_per_hour", *_HW_FRACTIONS):  # plausible ranges shared with the CLI and the API
        check_knob(key, values.get(key), label=f"'{key}'", where=str(path))
    node_size = _unwrap(path, "node_size_gpus", data["node_size_gpus"], sources)
    values["node_size_gpus"] = _check_int(path, "node_size_gpus", node_size, 1, int(KNOB_RANGES["max_gpus"].high))
    protocols = _load_protocols(path, data["protocols"], sources)
    return check_hardware(HardwareSpec(name=name, flop_per_s_by_bits=flops, protocols=protocols, sources=sources,
                                       **values), path)


# HardwareSpec's numeric fields, each bounded by ``limits.FIELD_RANGES`` under its own name.
_HW_BOUNDED = (*_HW_POSITIVE, *_HW_NONNEGATIVE, *_HW_FRACTIONS, "node_size_gpus")


def check_hardware(hw: object, where: str | Path = "hardware") -> HardwareSpec:
    """A ``HardwareSpec`` whose every number is plausible (``limits.FIELD_RANGES``), or ``InstanceError``.

    The loader calls it on every file; the API on a spec it is handed (``dataclasses.replace`` what-ifs);
    a sweep on each scaled value: one set of bounds wherever a value enters.
    """
    if not isinstance(hw, HardwareSpec):
        raise InstanceError(f"{where}: expected a HardwareSpec, a built-in hardware name or a file path "
                            f"(got {type(hw).__name__})")
    if not isinstance(hw.name, str) or not hw.name:
        raise InstanceError(f"{where}: 'name' must be a non-empty string (got {hw.name!r})")
    for key in _HW_BOUNDED:
        check_field(key, getattr(hw, key), label=f"'{key}'", where=str(where))
    rates = dict(hw.flop_per_s_by_bits)
    if 16 not in rates:
        raise InstanceError(f"{where}: 'flop_per_s_16bit' is required (the 16-bit tensor-core rate)")
    for bits, rate in rates.items():
        if bits not in _FLOP_KEYS.values():
            raise InstanceError(f"{where}: 'flop_per_s_by_bits' has {bits!r} bits (expected one of "
                                f"{', '.join(map(str, _FLOP_KEYS.values()))})")
        check_field("flop_per_s", rate, label=f"'flop_per_s_{bits}bit'", where=str(where))
    if hw.gemm_half_tokens:
        # Derived when a frontier runs (``serving.unit_hardware`` picks the engine's curve): an edit here was kept
        # under the paper's model and silently replaced under every engine.
        raise InstanceError(f"{where}: 'gemm_half_tokens' is set from 'kernel_curves' for the engine when a "
                            "frontier runs; edit kernel_curves[engine][weight bits] instead")
    if hw.kernels_in_force is not None:  # derived the same way, from measured_kernels
        raise InstanceError(f"{where}: 'kernels_in_force' is set from 'measured_kernels' for the engine when a "
                            "frontier runs; edit measured_kernels[engine] instead")
    for engine, curve in hw.kernel_curves.items():
        if not isinstance(engine, str) or not isinstance(curve, Mapping):
            raise InstanceError(f"{where}: 'kernel_curves' maps engine names to {{weight bits: half tokens}} "
                                f"(got {engine!r}: {curve!r})")
        for bits, half in curve.items():
            if bits not in _FLOP_KEYS.values():
                raise InstanceError(f"{where}: 'kernel_curves.{engine}' has {bits!r} bits (expected one of "
                                    f"{', '.join(map(str, _FLOP_KEYS.values()))})")
            check_field("gemm_half_tokens", half, label=f"'kernel_curves.{engine}.{bits}'", where=str(where))
    protocols = dict(hw.protocols)
    if not protocols or set(protocols) - set(PROTOCOL_NAMES):
        raise InstanceError(f"{where}: 'protocols' must name one or more of {', '.join(PROTOCOL_NAMES)} "
                            f"(got {sorted(map(str, protocols))})")
    for proto, latency in protocols.items():
        for key in _PROTOCOL_FIELDS:
            check_field(key, getattr(latency, key, None), label=f"'protocols.{proto}.{key}'", where=str(where))
    return hw


def _load_protocols(path: Path, table: Any, sources: dict[str, str]) -> dict[str, ProtocolLatency]:
    if not isinstance(table, dict) or not table:
        raise InstanceError(f"{path}: 'protocols' must be a table with at least one of {', '.join(PROTOCOL_NAMES)}")
    reject_unknown(path, table, set(PROTOCOL_NAMES), prefix="protocols.")
    protocols = {}
    for proto, entries in table.items():
        if not isinstance(entries, dict):
            raise InstanceError(f"{path}: 'protocols.{proto}' must be a table")
        reject_unknown(path, entries, set(_PROTOCOL_FIELDS), prefix=f"protocols.{proto}.")
        kwargs = {}
        for key in _PROTOCOL_FIELDS:
            full = f"protocols.{proto}.{key}"
            if key not in entries:
                raise InstanceError(f"{path}: missing required field '{full}'")
            value = _unwrap(path, full, entries[key], sources)
            if key == "bandwidth_fraction":
                kwargs[key] = _check_number(path, full, value, at_most=1.0)
            else:
                kwargs[key] = _check_number(path, full, value, positive=False)
        protocols[proto] = ProtocolLatency(**kwargs)
    return protocols


_HF_KEYS: dict[str, tuple[str, ...]] = {
    "n_layers": ("num_hidden_layers", "n_layer", "num_layers"),
    "d_model": ("hidden_size", "n_embd", "d_model"),
    "n_heads": ("num_attention_heads", "n_head"),
    "d_ff": ("intermediate_size", "n_inner", "ffn_dim"),
    "vocab_size": ("vocab_size",),
}


# Hugging Face ``architectures`` class names of decoder-only causal LMs end so; encoders and
# encoder-decoders (BertForMaskedLM, T5ForConditionalGeneration) do not, and have no decode step to model.
_DECODER_ONLY_SUFFIXES = ("ForCausalLM", "LMHeadModel")
_NOT_DECODER_ONLY_TYPES = frozenset({
    "albert", "bart", "bert", "deberta", "deberta-v2", "distilbert", "electra", "encoder-decoder", "marian", "mbart",
    "mt5", "pegasus", "roberta", "t5", "umt5", "whisper", "xlm-roberta",
})


def _check_decoder_only(path: Path, config: Mapping[str, Any]) -> None:
    """Refuse encoder and encoder-decoder configs, naming the field that says so: the physics is decode-only."""
    if config.get("is_encoder_decoder") is True:
        raise InstanceError(f"{path}: 'is_encoder_decoder' is true: infecon models decoder-only Transformers")
    model_type = config.get("model_type")
    if isinstance(model_type, str) and model_type.lower() in _NOT_DECODER_ONLY_TYPES:
        raise InstanceError(f"{path}: 'model_type' {model_type!r} is not a decoder-only model "
                            "(infecon models decoder-only Transformers)")
    architectures = config.get("architectures")
    if architectures is None or architectures == []:
        return
    if not isinstance(architectures, list) or not all(isinstance(a, str) for a in architectures):
        raise InstanceError(f"{path}: 'architectures' must be a list of class names (got {architectures!r})")
    suffixes = _DECODER_ONLY_SUFFIXES
    if isinstance(config.get("text_config"), dict):
        suffixes = (*suffixes, "ForConditionalGeneration")  # a multimodal wrapper around a causal LM (Llama 4)
    if not any(a.endswith(suffixes) and "WithLMHead" not in a for a in architectures):
        raise InstanceError(f"{path}: 'architectures' must name a decoder-only causal LM (a class ending in "
                            f"ForCausalLM or LMHeadModel), got {architectures}")


def _hf_int(path: Path, config: Mapping[str, Any], keys: tuple[str, ...], *, minimum: int = 0,
            required: bool = False) -> tuple[str, int] | tuple[None, None]:
    """The first of ``keys`` that config.json sets, as (key, value); the value must be a whole number >= ``minimum``.

    An optional key set to null counts as absent (some configs write ``"head_dim": null``); a
    required one must be a number. A string, a float or a bool is an error naming the key, never
    a silent fallback to another key or a truncation (``32.7`` layers).
    """
    for key in keys:
        if key not in config or (config[key] is None and not required):
            continue
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise InstanceError(f"{path}: '{key}' must be an integer (got {value!r})")
        if value < minimum:
            raise InstanceError(f"{path}: '{key}' must be >= {minimum} (got {value})")
        return key, value
    if required:
        raise InstanceError(f"{path}: config.json has none of {', '.join(keys)}")
    return None, None


def model_from_hf_config(path: Path) -> ModelSpec:
    """Map a Hugging Face ``config.json`` onto a ``ModelSpec`` (Llama, Mistral, Mixtral, Qwen, DeepSeek-V3 style)."""
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise InstanceError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise InstanceError(f"{path}: malformed JSON: {exc}") from None
    except UnicodeDecodeError:
        raise InstanceError(f"{path}: not a UTF-8 text file (expected a config.json)") from None
    except OSError as exc:
        raise InstanceError(f"{path}: cannot read: {exc.strerror}") from None
    if not isinstance(config, dict):
        raise InstanceError(f"{path}: config.json must hold a JSON object")
    _check_decoder_only(path, config)
    config = _text_config(path, config)

    def optional(*keys: str, minimum: int = 0) -> int | None:
        return _hf_int(path, config, keys, minimum=minimum)[1]

    if not any(k in config for k in _HF_KEYS["d_ff"]) and not config.get("mlp_only_layers") \
            and not config.get("first_k_dense_replace") and "moe_intermediate_size" in config:
        # Every layer MoE and no dense width published (Qwen3.5 MoE): d_ff is unused, take the expert width.
        config = {**config, "intermediate_size": config["moe_intermediate_size"]}
    used: dict[str, str] = {}
    data: dict[str, Any] = {}
    for name, keys in _HF_KEYS.items():
        used[name], data[name] = _hf_int(path, config, keys, minimum=1, required=True)
    data["name"] = str(config.get("_name_or_path") or config.get("model_type") or path.parent.name or path.stem)
    data["n_kv_heads"] = optional("num_key_value_heads", minimum=1) or data["n_heads"]
    # An MLA config's own key width comes first: transformers saves DeepSeek-V3's ``head_dim`` as the
    # RoPE part only (qk_rope_head_dim, 64), not the 128-wide head the attention reads.
    d_head = optional("qk_nope_head_dim", minimum=1) or optional("head_dim", minimum=1)
    if d_head is None:
        if data["d_model"] % data["n_heads"]:
            raise InstanceError(f"{path}: '{used['d_model']}' ({data['d_model']}) must be a multiple of "
                                f"'{used['n_heads']}' ({data['n_heads']}) when there is no 'head_dim'")
        d_head = data["d_model"] // data["n_heads"]
    data["d_head"] = d_head
    data["tied_embeddings"] = bool(config.get("tie_word_embeddings", False))
    activation = str(config.get("hidden_act", "silu"))
    data["ffn_gated"] = activation in ("silu", "swiglu", "gelu_pytorch_tanh") or "glu" in activation
    model_type = str(config.get("model_type", ""))
    experts = optional("n_routed_experts") or optional("num_local_experts") or optional("num_experts") or 0
    if experts:
        data["n_routed_experts"] = experts
        data["n_active_experts"] = optional("num_experts_per_tok") or optional("num_experts_per_token") \
            or optional("experts_per_token") or 0
        data["n_shared_experts"] = optional("n_shared_experts") or 0
        data["d_ff_expert"] = optional("moe_intermediate_size", minimum=1) or data["d_ff"]
        data["n_dense_layers"] = optional("first_k_dense_replace") or 0
        _hf_shared_expert(path, config, data, optional)
        if model_type == "llama4_text":
            _hf_llama4_ffn(path, config, data, optional)
    kv_lora_rank = optional("kv_lora_rank")
    if kv_lora_rank:
        data["attention"] = "mla"
        data["kv_lora_rank"] = kv_lora_rank
        data["q_lora_rank"] = optional("q_lora_rank") or 0
        data["qk_rope_head_dim"] = optional("qk_rope_head_dim") or 0
        data["v_head_dim"] = optional("v_head_dim", minimum=1) or data["d_head"]
    if optional("index_topk"):
        for key in ("index_topk_freq", "indexer_types"):
            if key in config:
                raise InstanceError(f"{path}: '{key}' (indexers shared between layers) is not modelled")
        data["sparse_attention_topk"] = optional("index_topk")
        data["indexer_heads"] = _hf_int(path, config, ("index_n_heads",), minimum=1, required=True)[1]
        data["indexer_head_dim"] = _hf_int(path, config, ("index_head_dim",), minimum=1, required=True)[1]
    _hf_layer_types(path, config, data, optional, model_type)
    if model_type == "gpt_oss":
        data["attention_sinks"] = True  # one learned sink logit per head (gpt-oss model card, sec. 2.1)
    if config.get("attn_output_gate") is True or model_type == "qwen3_next":
        data["attention_output_gate"] = True  # Qwen3-Next's attention always gates its output (q_proj is 2x wide)
    return model_from_mapping(path, data)


def _text_config(path: Path, config: dict[str, Any]) -> dict[str, Any]:
    """A multimodal wrapper's language model (Llama 4, Mistral 3): its ``text_config``; else the config itself."""
    text = config.get("text_config")
    if text is None or "num_hidden_layers" in config:
        return config
    if not isinstance(text, dict):
        raise InstanceError(f"{path}: 'text_config' must be a JSON object (got {text!r})")
    return text


def _hf_shared_expert(path: Path, config: Mapping[str, Any], data: dict[str, Any], optional) -> None:
    """Qwen-style shared experts are one FFN of ``shared_expert_intermediate_size``: as many experts of that width."""
    shared = optional("shared_expert_intermediate_size")
    if not shared:
        return
    if shared % data["d_ff_expert"]:
        raise InstanceError(f"{path}: 'shared_expert_intermediate_size' ({shared}) must be a multiple of the expert "
                            f"width ({data['d_ff_expert']}): the physics counts shared experts of one width")
    data["n_shared_experts"] = shared // data["d_ff_expert"]


def _hf_llama4_ffn(path: Path, config: Mapping[str, Any], data: dict[str, Any], optional) -> None:
    """Llama 4: routed experts and one shared expert of ``intermediate_size`` on every ``interleave_moe_layer_step``-th
    layer; dense layers of ``intermediate_size_mlp`` between them (transformers Llama4TextConfig)."""
    step = optional("interleave_moe_layer_step", minimum=1) or 1
    data["d_ff_expert"] = data["d_ff"]
    data["d_ff"] = optional("intermediate_size_mlp", minimum=1) or data["d_ff"]
    data["n_shared_experts"] = 1
    data["n_dense_layers"] = data["n_layers"] - data["n_layers"] // step


_WINDOW_TYPES = {"sliding_attention": "sliding", "chunked_attention": "chunked"}
_KNOWN_LAYER_TYPES = ("full_attention", "linear_attention", *_WINDOW_TYPES)


def _hf_layer_types(path: Path, config: Mapping[str, Any], data: dict[str, Any], optional, model_type: str) -> None:
    """Windowed and linear-attention layers, from whichever of the configs' encodings is present.

    ``layer_types`` (gpt-oss, Qwen3-Next, recent transformers) lists each layer; Llama 4 has chunked
    attention on all layers but every ``no_rope_layer_interval``-th (default 4); MiniMax's
    ``attn_type_list`` marks softmax layers 1 (lightning-attention layers, 0, are not modelled); a
    Qwen-style ``use_sliding_window`` windows the layers from ``max_window_layers`` on; a Mistral-style
    ``sliding_window`` alone windows every layer.
    """
    n_layers = data["n_layers"]
    types = config.get("layer_types")
    window = optional("sliding_window")
    if model_type == "llama4_text" and types is None:
        interval = optional("no_rope_layer_interval", minimum=1) or 4
        types = ["full_attention" if (i + 1) % interval == 0 else "chunked_attention" for i in range(n_layers)]
    if model_type == "qwen3_next" and types is None:
        interval = optional("full_attention_interval", minimum=1) or 4
        types = ["full_attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(n_layers)]
    attn_types = config.get("attn_type_list")
    if attn_types is not None and (not isinstance(attn_types, list) or any(t != 1 for t in attn_types)):
        raise InstanceError(f"{path}: 'attn_type_list' must mark every layer 1 (softmax attention): lightning "
                            f"(linear) attention layers (0) are not modelled (got {attn_types!r})")
    if types is not None:
        if not isinstance(types, list) or len(types) != n_layers or any(t not in _KNOWN_LAYER_TYPES for t in types):
            raise InstanceError(f"{path}: 'layer_types' must list one of {', '.join(_KNOWN_LAYER_TYPES)} per layer "
                                f"({n_layers} layers; got {types!r})")
        kinds = {_WINDOW_TYPES[t] for t in types if t in _WINDOW_TYPES}
        if len(kinds) > 1:
            raise InstanceError(f"{path}: 'layer_types' mixes sliding and chunked layers, which is not modelled")
        n_window = sum(t in _WINDOW_TYPES for t in types)
        if n_window:
            size = optional("attention_chunk_size", minimum=1) if "chunked" in kinds else window
            if not size:
                key = "attention_chunk_size" if "chunked" in kinds else "sliding_window"
                raise InstanceError(f"{path}: 'layer_types' has windowed layers but '{key}' is not set")
            data.update(n_window_layers=n_window, attention_window_tokens=size, window_kind=kinds.pop())
        n_linear = types.count("linear_attention")
        if n_linear:
            data["n_linear_layers"] = n_linear
            for key, hf_key in (("linear_key_heads", "linear_num_key_heads"),
                                ("linear_value_heads", "linear_num_value_heads"),
                                ("linear_key_head_dim", "linear_key_head_dim"),
                                ("linear_value_head_dim", "linear_value_head_dim"),
                                ("linear_conv_kernel", "linear_conv_kernel_dim")):
                data[key] = _hf_int(path, config, (hf_key,), minimum=1, required=True)[1]
        return
    if not window or config.get("use_sliding_window") is False:
        return
    first = optional("max_window_layers") if config.get("use_sliding_window") is True else 0
    first = min(first or 0, n_layers)
    if first < n_layers:
        data.update(n_window_layers=n_layers - first, attention_window_tokens=window, window_kind="sliding")


def _catalog(directory: Path, loader: Callable[[Path], Any]) -> dict[str, Any]:
    return {p.stem: loader(p) for p in sorted(directory.glob("*.toml"))}


def builtin_model_names() -> list[str]:
    return sorted(p.stem for p in MODELS_DIR.glob("*.toml"))


def builtin_hardware_names() -> list[str]:
    return sorted(p.stem for p in HARDWARE_DIR.glob("*.toml"))


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-").replace(".", "-")


def _resolve(name: str, directory: Path, kind: str, aliases: Mapping[str, str]) -> Path:
    if not isinstance(name, str):
        raise InstanceError(f"{kind} must be a name (a string) such as 'h100' or 'llama-3-70b', or a file path "
                            f"(got {name!r})")
    wanted = _normalise(name)
    wanted = aliases.get(wanted, wanted)
    for path in directory.glob("*.toml"):
        if _normalise(path.stem) == wanted:
            return path
    names = ", ".join(sorted(p.stem for p in directory.glob("*.toml")))
    raise InstanceError(f"unknown {kind} '{name}' (built-in: {names}; or pass a file)")


_HARDWARE_ALIASES = {
    "h100": "h100-sxm", "a100": "a100-sxm", "v100": "v100-sxm", "tpu-v4": "tpu-v4", "groq": "groq-lpu",
    "gb200": "gb200-nvl72", "nvl72": "gb200-nvl72", "gb300": "gb300-nvl72", "gaudi-3": "gaudi3", "trillium": "tpu-v6e",
}


def hardware_aliases(stem: str) -> list[str]:
    """The short names that also select built-in hardware ``stem`` (``h100`` for ``h100_sxm``)."""
    return sorted(alias for alias, target in _HARDWARE_ALIASES.items()
                  if target == _normalise(stem) and alias != target)


# Printed under the listings, so a user knows the README's spellings and the file stems are the same names.
NAME_SPELLINGS = ("names ignore case and treat '-', '_', '.' and spaces alike (llama-3-70b = llama_3_70b = "
                  "Llama-3-70B); a path to a TOML or config.json file works wherever a name does")


def _hf_id_aliases() -> dict[str, str]:
    """Normalised Hugging Face ids (``qwen/qwen3-32b``) and their bare model names (``qwen3-32b``) -> file stems.

    Read from the built-in files' ``hf_id`` fields (a line each, no full parse), so the data stays the one
    place that names a model's repository.
    """
    aliases: dict[str, str] = {}
    for path in MODELS_DIR.glob("*.toml"):
        for line in path.read_text().splitlines():
            if line.startswith("hf_id"):
                hf_id = line.split('"')[1]
                aliases[_normalise(hf_id)] = _normalise(path.stem)
                aliases.setdefault(_normalise(hf_id.split("/")[-1]), _normalise(path.stem))
    return aliases


def get_model(name: str) -> ModelSpec:
    """A built-in model by file stem, case- and separator-insensitive (``llama-3-70b``), or by its Hugging Face
    id (``Qwen/Qwen3-32B``, or just ``Qwen3-32B``)."""
    return load_model(_resolve(name, MODELS_DIR, "model", _hf_id_aliases()))


def get_hardware(name: str) -> HardwareSpec:
    """A built-in accelerator by file stem; ``h100`` means ``h100_sxm`` and ``gb200`` ``gb200_nvl72``.

    With each engine's measured kernel curves where they exist (``instances/kernel_curves.py``).
    """
    from dataclasses import replace

    from infecon.instances.kernel_curves import gemm_half_tokens, measured_kernels

    path = _resolve(name, HARDWARE_DIR, "hardware", _HARDWARE_ALIASES)
    return replace(load_hardware(path), kernel_curves=gemm_half_tokens(path.stem),
                   measured_kernels=measured_kernels(path.stem))
