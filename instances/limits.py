"""Plausible ranges for the numbers a user sets, so an absurd value is rejected by name instead of computed.

Why: the physics is plain arithmetic on floats and int64 arrays. A price of 1e308 overflows to inf, a
batch of 1e20 does not fit in int64, and an efficiency of 1e-300 prices a million tokens at $1e301
without complaint. Each bound below lies far outside any real deployment (the reason is next to it),
so rejecting beyond it loses no honest question. The CLI, ``solver.api.build_problem`` and the file
loaders all check against this one table.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from numbers import Integral, Real

from infecon.formulations.errors import InstanceError


@dataclass(frozen=True)
class Range:
    """An allowed interval for one knob and its unit; the reason for each bound is a comment where it is set.

    ``low_open`` excludes ``low`` itself (a price must be > 0, a context may be 0); ``whole`` asks for an integer.
    """

    low: float
    high: float
    low_open: bool
    whole: bool
    unit: str

    def accepts(self, value: object) -> bool:
        if isinstance(value, bool):
            return False
        if self.whole and not isinstance(value, Integral):
            return False
        if not isinstance(value, Real) or not math.isfinite(value):
            return False
        above_low = value > self.low if self.low_open else value >= self.low
        return above_low and value <= self.high

    def describe(self) -> str:
        """The rule in words, e.g. ``a positive integer <= 1048576`` or ``a number in [0.01, 1]``."""
        kind = "integer" if self.whole else "number"
        high = f"{self.high:.0f}" if self.whole else f"{self.high:g}"
        if self.low == 0 and self.low_open:
            return f"a positive {kind} <= {high}"
        if self.whole and self.low == 1:
            return f"a positive integer <= {high}"
        bracket = "(" if self.low_open else "["
        return f"a{'n' if kind == 'integer' else ''} {kind} in {bracket}{self.low:g}, {high}]"


# 1e8 tokens is 10x the longest context any model serves (Llama 4 Scout, 10M); beyond it KV sizes leave int64.
_CONTEXT = Range(0, 10**8, False, True, "tokens")
# A trillion concurrent sequences is ~1e7x any real decode batch (a bound, not a default: HBM caps the
# batch far below); above ~9e18 a batch no longer fits in int64.
_BATCH = Range(1, 10**12, False, True, "sequences")
# 2**20 GPUs is 5x the largest cluster built (~200K GPUs, 2025); layouts are powers of two below it.
_GPUS = Range(1, 2**20, False, True, "GPUs")
# Past 64 drafted tokens the expected tokens per iteration, (1 - a^(g+1)) / (1 - a), gains < 0.1% for a <= 0.9,
# and every extra length is one more decode-step evaluation per configuration.
_DRAFT = Range(1, 64, False, True, "tokens")
# Sustained efficiency below 1% of peak is no real kernel (decode reaches 30-90% of HBM bandwidth); the
# floor keeps a typo such as 1e-3 for 1e-1 from pricing tokens at millions of dollars.
EFFICIENCY = Range(0.01, 1.0, False, False, "share of peak")

# $1M per GPU-hour is ~1e5x any rental price; above ~1e300 the cost per token overflows to inf. A millionth of a
# dollar per GPU-hour is ~1e6x below any price; at 5e-324 (the smallest float) every cost printed as 0.
_PRICE = Range(1e-6, 1e6, False, False, "USD per GPU-hour")

KNOB_RANGES: dict[str, Range] = {
    "context": _CONTEXT,
    "max_batch": _BATCH,
    "batch": _BATCH,
    "batch_sizes": _BATCH,
    "max_gpus": _GPUS,
    "max_draft_tokens": _DRAFT,
    "draft_tokens": _DRAFT,
    "price_usd_per_hour": _PRICE,
    "flop_efficiency": EFFICIENCY,
    "bandwidth_efficiency": EFFICIENCY,
    # 1e12 tok/s is ~1e4x all of 2025's LLM traffic; the same bound caps an hourly budget in USD.
    "demand_tokens_per_s": Range(0, 1e12, True, False, "tokens/s"),
    "budget_usd_per_hour": Range(0, 1e12, True, False, "USD per hour"),
    "min_speed": Range(0, 1e9, True, False, "tokens/s per request"),
    "max_cost": Range(0, 1e12, True, False, "USD per million tokens"),
    # Service-level limits beyond a day are no latency target.
    "ttft_max_s": Range(0, 86400, True, False, "seconds"),
    "tpot_max_s": Range(0, 86400, True, False, "seconds"),
    # A percentile of requests: above 0; past p99.999 the tail is beyond any benchmark's sample (and 100 is none).
    "slo_percentile": Range(0, 99.999, True, False, "percent of requests"),
    # A solver limit beyond 30 days is a typo; CP-SAT and HiGHS take it as a double either way.
    "time_limit_s": Range(0, 30 * 86400, True, False, "seconds"),
    # Engine limits. The memory fraction is the share of GPU memory an engine may claim (vLLM, SGLang: of all
    # memory; TensorRT-LLM: of what the weights leave; a recipe writes it): below 5 % no engine leaves room for
    # the weights of any model it serves (the defaults are 0.8-0.9); above 1 is more than exists.
    "memory_fraction": Range(0.05, 1.0, False, False, "share of GPU memory"),
    "max_seqs": _BATCH,
    # PP beyond the GPUs a replica may hold is no layout at all; the GPU bound keeps it an int64.
    "max_pp": Range(1, 2**20, False, True, "pipeline stages"),
    # Fleet frontier: every TPOT limit times this. 1,000x turns a 20 ms SLO into 20 s per token, past any
    # interactive use; larger values only multiply the candidates generated to no purpose.
    "tpot_scale_max": Range(0, 1000, True, False, "times each workload's TPOT limit"),
    # Thinning the printed frontier (solver.thinning): past 50 % a "near tie" is up to twice as slow or dear,
    # no tie at all. The CLI's --tolerance is in percent, the API's near_tie_tolerance a fraction.
    "tolerance_pct": Range(0, 50, False, False, "percent of speed and of cost"),
    "near_tie_tolerance": Range(0, 0.5, False, False, "fraction of speed and of cost"),
}


def check_knob(name: str, value: object, *, label: str | None = None, where: str = "") -> None:
    """Raise ``InstanceError`` unless ``value`` is in ``KNOB_RANGES[name]``; ``None`` means unset and passes.

    Args:
        name: the knob's key in ``KNOB_RANGES`` (a ``build_problem`` keyword).
        value: the value to check.
        label: how the message names the knob (default ``'name'``), e.g. ``--price``.
        where: a file or scenario prefix for the message, e.g. ``plan.toml: scenario 'chat'``.

    Raises:
        InstanceError: ``'price_usd_per_hour' must be a positive number <= 1e+06 (USD per GPU-hour), got 1e+308``.
    """
    if value is None:
        return
    rule = KNOB_RANGES[name]
    if not rule.accepts(value):
        prefix = f"{where}: " if where else ""
        raise InstanceError(f"{prefix}{label or repr(name)} must be {rule.describe()} ({rule.unit}), got {value!r}")


# ---------------------------------------------------------------- text -> number, in one place

# The grammar of numbers as text, for every door (``parse_number``; a CSV column at once: ``validation``).
INTEGER_TEXT = re.compile(r"[+]?[0-9]+")
NUMBER_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def parse_number(text: object, *, whole: bool = False, thousands_suffix: bool = False) -> int | float:
    """A number from text as a user types it (flag, CSV cell, TOML string), or ``ValueError``.

    One parser for every door, so ``--batch 1_000``, a CSV cell ``٣`` (an Arabic-Indic digit, which
    Python's ``int`` accepts) and ``0x10`` are refused the same way everywhere. Whole numbers are
    ASCII digits (``thousands_suffix``: a trailing ``k`` or ``K`` multiplies by 1000, as in ``8k``
    tokens); other numbers are decimal literals (``0.5``, ``1e-3``); ``nan`` and ``inf`` are not
    numbers here, and an overflow to inf is refused.
    """
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ValueError(f"not a number: {text!r}")
    if isinstance(text, int | float):
        if whole and not (isinstance(text, int) or float(text).is_integer()):
            raise ValueError(f"not a whole number: {text!r}")
        return int(text) if whole else text
    clean = text.strip()
    scale = 1
    if thousands_suffix and clean[-1:] in ("k", "K"):
        clean, scale = clean[:-1], 1000
    if whole:
        if not INTEGER_TEXT.fullmatch(clean):
            raise ValueError(f"not a whole number: {text!r}")
        return int(clean) * scale
    if not NUMBER_TEXT.fullmatch(clean):
        raise ValueError(f"not a number: {text!r}")
    value = float(clean) * scale
    if not math.isfinite(value):
        raise ValueError(f"too large: {text!r}")
    return value


def parse_knob(name: str, text: object, *, label: str | None = None, where: str = "") -> int | float:
    """Text (or a number) to a knob's value, checked against ``KNOB_RANGES[name]``: the gate every door uses.

    Raises:
        InstanceError: ``--max-batch must be a positive integer <= 1000000000000 (sequences), got 'x'``.
    """
    rule = KNOB_RANGES[name]
    try:
        value = parse_number(text, whole=rule.whole, thousands_suffix=rule.unit == "tokens")
    except ValueError:
        value = None
    if value is None or not rule.accepts(value):
        prefix = f"{where}: " if where else ""
        raise InstanceError(f"{prefix}{label or repr(name)} must be {rule.describe()} ({rule.unit}), got {text!r}")
    return value


# ---------------------------------------------------------------- plausibility of every file field

# Each bound lies far outside any real part or engine; the reason is beside it. Built-in files, user
# files, sweeps that scale a field, and specs edited with dataclasses.replace are all checked against
# this one table (``check_field``), so a value a file would be refused for cannot enter another way.
FIELD_RANGES: dict[str, Range] = {
    # 1 GFLOP/s is ~1e5x below any accelerator; 1e18 (an exaFLOP/s per device) ~50x above the B300's 4-bit peak.
    "flop_per_s": Range(1e9, 1e18, False, False, "FLOP/s"),
    # 1 MB to 1 PB per device: Groq's LPU has 230 MB of SRAM, a B300 288 GB of HBM.
    "hbm_capacity_bytes": Range(1e6, 1e15, False, False, "bytes"),
    # 1 GB/s to 1 PB/s: 12x Groq's 80 TB/s SRAM at the top.
    "hbm_bandwidth_bytes_per_s": Range(1e9, 1e15, False, False, "bytes/s"),
    # 1 MB/s (no link is slower) to 1 PB/s per direction (NVLink 5 is 0.9 TB/s).
    "intra_node_bandwidth_bytes_per_s": Range(1e6, 1e15, False, False, "bytes/s"),
    "inter_node_bandwidth_bytes_per_s": Range(1e6, 1e15, False, False, "bytes/s"),
    "node_size_gpus": _GPUS,
    # A launch or hop of a second is no GPU; NCCL's largest latencies are tens of microseconds.
    "kernel_launch_latency_s": Range(0, 1, False, False, "seconds"),
    "base_latency_s": Range(0, 1, False, False, "seconds"),
    "intra_hop_latency_s": Range(0, 1, False, False, "seconds"),
    "inter_hop_latency_s": Range(0, 1, False, False, "seconds"),
    "bandwidth_fraction": EFFICIENCY,
    "price_usd_per_hour": _PRICE,
    "flop_efficiency": EFFICIENCY,
    "bandwidth_efficiency": EFFICIENCY,
    # Engine profiles: fitted values are ~4 us per kernel, ~1 us per sequence-layer, <1 ms per step, <0.2 s per
    # request; bounds 1,000x and more above them.
    "kernel_s": Range(0, 0.01, False, False, "seconds per kernel"),
    "sequence_layer_s": Range(0, 0.01, False, False, "seconds per sequence per layer"),
    "step_s": Range(0, 10, False, False, "seconds per step"),
    "request_s": Range(0, 3600, False, False, "seconds per request"),
    # A chunked-prefill step's token budget: engines use 2,048-8,192; 1e7 is beyond any context a model here has.
    "chunk_tokens": Range(1, 10**7, False, True, "tokens per step"),
    # A measured GEMM curve's tokens per step at half its top efficiency (instances/kernels: ~100 on A100-B300);
    # a GEMM that needed a million tokens per step to get there is no GPU's.
    "gemm_half_tokens": Range(0, 1e6, False, False, "tokens per step"),
    # Kernels per layer and block: engines launch 3-11; 10,000 is no engine.
    "kernels": Range(0, 10_000, False, True, "kernels per layer"),
    # Engine limits as profile fields: the same bounds as the knobs that override them (KNOB_RANGES).
    "memory_fraction": KNOB_RANGES["memory_fraction"],
    "max_seqs": KNOB_RANGES["max_seqs"],
    "max_pp": KNOB_RANGES["max_pp"],
    # The share of the fixed step cost each pipeline stage slot repeats: 0 (none) to 1 (all of it).
    "stage_overhead_share": Range(0, 1, False, False, "share of the step cost"),
}


def check_field(name: str, value: object, *, label: str | None = None, where: str = "") -> float:
    """Raise ``InstanceError`` unless a file field's ``value`` is plausible (``FIELD_RANGES[name]``); return it.

    ``name`` is the field (``flop_per_s`` for every precision's rate, ``kernels`` for every kernel count);
    ``label`` how the message names it (default ``'name'``).
    """
    rule = FIELD_RANGES[name]
    if not rule.accepts(value):
        prefix = f"{where}: " if where else ""
        raise InstanceError(f"{prefix}{label or repr(name)} must be {rule.describe()} ({rule.unit}), got {value!r}")
    return value
