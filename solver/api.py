"""The Python API: every CLI command is one of these functions, returning DataFrames or dataclasses.

    >>> from solver import api
    >>> f = api.frontier("llama-3-70b", "h100", context_tokens=8000)
    >>> f.points[["tokens_per_second", "usd_per_million_tokens", "gpus"]].head()
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from infecon.formulations.bands import check_confidence
from infecon.formulations.errors import InstanceError, NoFeasibleLayoutError
from infecon.formulations.params import parameter_counts
from infecon.formulations.perf import HBM_BYTES_CEILING, ConfigMetrics, beyond_any_memory
from infecon.formulations.space import (
    DEFAULT_MAX_GPUS,
    LAYOUT_COLUMNS,
    ConfigTable,
    Constraints,
    Problem,
    SearchSpace,
    attention_dp_applies,
    attention_dp_choices,
    evaluate_configurations,
    layout_rule_violation,
    searched_layouts,
    sequence_caps,
)
from infecon.formulations.space import rule_masks as space_rule_masks
from infecon.formulations.specs import (
    SERVING_MODES,
    WEIGHT_FORMATS,
    EngineProfile,
    HardwareSpec,
    ModelSpec,
    Requests,
    SpeculativeDecoding,
    Workload,
)
from infecon.instances.bands import shipped_bands
from infecon.instances.engines import check_engine, get_engine
from infecon.instances.limits import KNOB_RANGES, check_knob
from infecon.instances.loader import (
    builtin_hardware_names,
    builtin_model_names,
    check_hardware,
    check_model,
    get_hardware,
    get_model,
    hardware_aliases,
    load_hardware,
    load_model,
)
from infecon.solver.enumeration import EvaluationBudgetError, least_cap_values, rule_summary
from infecon.solver.epsilon import solve_point, trace_frontier
from infecon.solver.frontier import Frontier, band_columns
from infecon.solver.outputs import replacing
from infecon.solver.thinning import DEFAULT_TOLERANCE

DEFAULT_ACCEPTANCE = 0.8
DEFAULT_MAX_DRAFT_TOKENS = 8
DEFAULT_ISL = 1024  # input and output tokens per request when a serving engine is used and none are given
DEFAULT_OSL = 1024


def resolve_model(model: str | Path | ModelSpec) -> ModelSpec:
    """A ``ModelSpec`` from a spec, a built-in name, or a path to a TOML or ``config.json`` file."""
    if isinstance(model, ModelSpec):
        return check_model(model)  # a spec edited with dataclasses.replace meets the file's rules here
    if not isinstance(model, str | Path):
        raise InstanceError(f"'model' must be a built-in name, a file path or a ModelSpec (got {_what(model)})")
    text = str(model)
    if isinstance(model, Path) or text.endswith((".toml", ".json")) or Path(text).is_file():
        return load_model(_file_path(text))
    return get_model(text)


def _what(value: object) -> str:
    """A value for a message: short ones as written, a spec or other object by its type (a repr can be a page)."""
    return repr(value) if value is None or isinstance(value, str | int | float) else f"a {type(value).__name__}"


def _file_path(text: str) -> str:
    """``text`` if it is not a folder; a folder given as a data file gets one clear line."""
    if text and Path(text).is_dir():
        raise InstanceError(f"{text}: is a folder; give a TOML file (or a config.json for a model)")
    return text


def resolve_hardware(hardware: str | Path | HardwareSpec) -> HardwareSpec:
    if isinstance(hardware, HardwareSpec):
        return check_hardware(hardware)  # a spec edited with dataclasses.replace meets the file's bounds here
    if not isinstance(hardware, str | Path):
        raise InstanceError(f"'hardware' must be a built-in name, a file path or a HardwareSpec "
                            f"(got {_what(hardware)})")
    text = str(hardware)
    if isinstance(hardware, Path) or text.endswith(".toml") or Path(text).is_file():
        return load_hardware(_file_path(text))
    return get_hardware(text)


def resolve_serving(engine: str | Path | EngineProfile | None, mode: str | None, isl: int | None, osl: int | None,
                    context_tokens: int | None) -> tuple[EngineProfile | None, str, Requests | None, int]:
    """The engine profile, mode, requests and decode context a problem uses.

    No engine: the paper's decode-only model at ``context_tokens`` (default 0), as before serving
    existed; isl, osl or a mode with no engine are refused (that model has no requests; the CLI's default
    engine is ``generic``, the API's none). ``paper`` without isl/osl: the same numbers (decode-only at
    ``context_tokens``). Any other case: requests of ``isl`` / ``osl`` tokens (default 1024 / 1024) in
    ``mode`` (default: the engine's), decoding at the mean context isl + osl/2 unless ``context_tokens`` overrides it.
    """
    for name, value in (("isl", isl), ("osl", osl), ("context", context_tokens)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0
                                  or (name == "osl" and value < 1)):
            rule = ">= 1" if name == "osl" else ">= 0"
            raise InstanceError(f"'{name}' must be a whole number of tokens {rule} (got {value!r})")
        check_knob("context", value, label=f"'{name}'")  # the same token bound as a context (int64-safe KV sizes)
    if engine is None:
        given = [name for name, value in (("isl", isl), ("osl", osl), ("mode", mode)) if value is not None]
        if given:
            # The API's default (no engine) is the paper's decode-only model, which has no requests to apply them
            # to: silently dropping them answered another question. The CLI's default engine is 'generic'.
            raise InstanceError(f"'{given[0]}' needs a serving engine: with engine=None the paper's decode-only model "
                                f"runs at context_tokens alone and would ignore {'/'.join(given)}; give "
                                "engine='generic' (the CLI's default), another profile, or engine='paper' for the "
                                "paper's physics with requests")
        return None, "decode_only", None, int(context_tokens or 0)
    if not isinstance(engine, str | Path | EngineProfile):
        raise InstanceError(f"'engine' must be a profile name, a file path or an EngineProfile (got {_what(engine)})")
    profile = check_engine(engine) if isinstance(engine, EngineProfile) else get_engine(str(engine))
    mode = mode or profile.default_mode
    if mode not in SERVING_MODES:
        raise InstanceError(f"'mode' must be one of {', '.join(SERVING_MODES)} (got {mode!r})")
    if profile.paper and mode == "decode_only" and isl is None and osl is None:
        return profile, mode, Requests(0, 1), int(context_tokens or 0)
    requests = Requests(DEFAULT_ISL if isl is None else int(isl), DEFAULT_OSL if osl is None else int(osl))
    context = requests.mean_decode_context_tokens if context_tokens is None else int(context_tokens)
    low, high = requests.input_tokens, requests.input_tokens + requests.output_tokens
    if not low <= context <= high:
        # A decode step attends to the prompt and the tokens generated so far: between isl and isl + osl. Outside,
        # the KV cache is sized for one request while the prefill is timed for another.
        hint = (f"Drop 'context' (its default is isl + osl/2 = {requests.mean_decode_context_tokens})"
                if isl is not None else
                f"Give isl/osl whose mean decode context isl + osl/2 is {context} instead (e.g. isl "
                f"{max(context - DEFAULT_OSL // 2, 0)} / osl {DEFAULT_OSL})")
        given = ", ".join(f"{k} {v}" for k, v in (("isl", isl), ("osl", osl)) if v is not None) or \
            f"the default isl {DEFAULT_ISL} / osl {DEFAULT_OSL}"
        raise InstanceError(
            f"'context' {context} is outside [isl, isl + osl] = [{low}, {high}] ({given}): a decode step attends to "
            f"the prompt and the output so far. {hint}, or the paper's decode-only model (engine 'paper', no "
            "isl/osl) for a context alone")
    return profile, mode, requests, context


def build_problem(model: str | Path | ModelSpec, hardware: str | Path | HardwareSpec, *,
                  context_tokens: int | None = None, isl: int | None = None, osl: int | None = None,
                  engine: str | Path | EngineProfile | None = None, mode: str | None = None,
                  ttft_max_s: float | None = None, tpot_max_s: float | None = None,
                  slo_percentile: float | None = None, weight_bits: int | None = None, activation_bits: int = 16,
                  kv_bits: int | None = None,
                  price_usd_per_hour: float | None = None, flop_efficiency: float | None = None,
                  bandwidth_efficiency: float | None = None, demand_tokens_per_s: float | None = None,
                  budget_usd_per_hour: float | None = None, max_gpus: int | None = None,
                  max_batch: int | None = None, batch_sizes: list[int] | None = None, batch_mode: str = "all",
                  weight_format: str | None = None,
                  draft: str | Path | ModelSpec | None = None, acceptance: float = DEFAULT_ACCEPTANCE,
                  max_draft_tokens: int = DEFAULT_MAX_DRAFT_TOKENS, draft_tokens: int | None = None,
                  prefill_utilization: float | None = None, attention_dp: str = "auto",
                  layout: dict | None = None, confidence: float | None = None,
                  memory_fraction: float | None = None, max_seqs: int | None = None,
                  max_pp: int | None = None) -> Problem:
    """Assemble and validate a ``Problem`` from names or specs and the usual knobs.

    Unset knobs keep the hardware file's values (price, efficiencies) and the search-space
    defaults: ``batch_mode="all"`` searches every integer batch up to what fits (the exact frontier at
    integer resolution); ``"ladder"`` searches ~1.4x steps, for studies that run many frontiers.
    ``kv_bits`` defaults to ``activation_bits``; ``weight_bits`` to 16, or to 4 with a ``weight_format``
    (``mxfp4``, ``nvfp4``: block-scaled 4-bit weights, ``specs.WEIGHT_FORMATS``). ``engine`` (a profile name such as
    ``generic``, ``vllm`` or ``paper``) switches to the serving model (``resolve_serving``);
    ``ttft_max_s`` and ``tpot_max_s`` are its service-level constraints, on the mean over requests or, with
    ``slo_percentile`` (0-100), at that percentile under Poisson arrivals (``formulations/latency.py``);
    ``prefill_utilization`` the busy share a disaggregated prefill pool is sized for (default
    ``serving.DEFAULT_PREFILL_UTILIZATION``).
    ``attention_dp`` (``auto``, ``on``, ``off``): whether layouts of an MLA model (DeepSeek-V3/R1) under a
    serving engine also run attention data-parallel over their TP group (SGLang ``--enable-dp-attention``,
    TRT-LLM attention DP): ``auto`` searches both that and the engines' default split by heads, ``on`` only
    data-parallel attention, ``off`` heads only (``space.attention_dp_choices``). Other models and the
    paper's model have no such choice and ignore it.
    ``confidence`` (0.5-0.95) plans with the pessimistic end of the error band (``formulations/bands.py``):
    each configuration's speed is the one it reaches with that probability, its times and prices follow, so
    capacity comes from the low speed and SLOs are checked on the high latency (enumeration backend only).
    ``layout`` fixes a layout family (``{"tp": 8, "pp": 1}``; keys ``tp``, ``tp_grid``, ``pp``, ``ep``, ``gpus``,
    ``SearchSpace``): the frontier of those layouts alone, every batch they run.

    Engine limits (``EngineProfile``; each overridable): ``memory_fraction`` is the share of each GPU's HBM the
    engine fills with weights, KV cache and activations (the capacity rule uses that share of the hardware's
    HBM), ``max_seqs`` caps the sequences running in one replica (its batch), ``max_pp`` the PP degree. Under a
    serving engine PP stages may be uneven (``SearchSpace.uneven_stages``: ceil(layers / pp) on the fullest).
    The paper's profile and no engine have no limits unless given here.
    """
    spec = resolve_model(model)
    hw = resolve_hardware(hardware)
    profile, mode, requests, context_tokens = resolve_serving(engine, mode, isl, osl, context_tokens)
    check_knob("ttft_max_s", ttft_max_s)
    check_knob("tpot_max_s", tpot_max_s)
    check_knob("slo_percentile", slo_percentile)
    if profile is None and (ttft_max_s is not None or tpot_max_s is not None or slo_percentile is not None):
        raise InstanceError("'ttft_max_s'/'tpot_max_s'/'slo_percentile' need a serving engine (e.g. engine='generic')")
    if ttft_max_s is not None and (requests is None or requests.input_tokens == 0):
        # No prompt, no prefill, no first token to time: the cap could never be met or broken.
        raise InstanceError("'ttft_max_s' needs a prompt to time: the paper's decode-only model has none (give "
                            "isl/osl, --isl/--osl, or another engine)")
    for name, bits in (("weight_bits", weight_bits), ("activation_bits", activation_bits), ("kv_bits", kv_bits)):
        if bits is not None and bits not in (4, 8, 16, 32):
            raise InstanceError(f"'{name}' must be one of 4, 8, 16, 32 (got {bits!r})")
    if weight_format is not None and weight_format not in WEIGHT_FORMATS:
        raise InstanceError(f"'weight_format' must be one of {', '.join(WEIGHT_FORMATS)} (got {weight_format!r})")
    if weight_format is not None:
        element_bits = WEIGHT_FORMATS[weight_format][0]
        if weight_bits is not None and weight_bits != element_bits:
            raise InstanceError(f"'weight_bits' {weight_bits} conflicts with 'weight_format' {weight_format} "
                                f"({element_bits}-bit elements)")
        weight_bits = element_bits
    weight_bits = 16 if weight_bits is None else weight_bits
    for name, value in (("context", context_tokens), ("price_usd_per_hour", price_usd_per_hour),
                        ("demand_tokens_per_s", demand_tokens_per_s), ("budget_usd_per_hour", budget_usd_per_hour),
                        ("flop_efficiency", flop_efficiency), ("bandwidth_efficiency", bandwidth_efficiency),
                        ("max_gpus", max_gpus), ("max_batch", max_batch), ("max_draft_tokens", max_draft_tokens),
                        ("draft_tokens", draft_tokens)):
        check_knob(name, value)
    for value in batch_sizes or ():
        check_knob("batch_sizes", value)
    if draft is None and draft_tokens is not None:
        raise InstanceError("'draft_tokens' needs 'draft' (a drafter for speculative decoding)")
    if batch_sizes is not None and max_batch is not None:
        raise InstanceError("give 'max_batch' or 'batch_sizes', not both: explicit batch sizes are the whole batch "
                            "domain, so the cap would be ignored (drop the sizes above it instead)")
    if batch_sizes is not None and batch_mode != "all":
        raise InstanceError(f"give 'batch_sizes' or batch_mode={batch_mode!r}, not both: explicit batch sizes are "
                            "the whole batch domain")
    # "on" where it cannot apply would be ignored; "off" (by heads) is what such a problem does anyway, so a caller
    # pinning a frontier row's sharding (attention_dp False) may say it.
    if attention_dp == "on" and not attention_dp_applies(spec, profile):
        why = "runs under the paper's model" if spec.attention == "mla" else "is not an MLA model"
        raise InstanceError(f"'attention_dp' {attention_dp!r} changes nothing here: attention data parallelism is a "
                            f"choice for MLA models under a serving engine, and {spec.name} {why}; leave it at "
                            "'auto' (or 'off')")
    widest = max(hw.flop_per_s_by_bits)
    if weight_bits > widest:
        # peak_flop_per_s falls back to a wider precision's rate, never a narrower one: a 16-bit rate for
        # 32-bit weights would run them at 2x (FP32 tensor-core modes, where they exist, are slower still).
        raise InstanceError(f"'weight_bits' {weight_bits}: {hw.name} has no tensor-core rate for {weight_bits}-bit "
                            f"weights (its rates: {', '.join(f'{b}-bit' for b in sorted(hw.flop_per_s_by_bits))}); "
                            f"give a hardware file with flop_per_s_{weight_bits}bit, or fewer weight bits")
    for name, value in (("memory_fraction", memory_fraction), ("max_seqs", max_seqs), ("max_pp", max_pp)):
        check_knob(name, value)
    engine_run = profile is not None and not profile.paper
    if memory_fraction is None:
        memory_fraction = profile.memory_fraction if profile is not None else 1.0
    max_seqs = max_seqs if max_seqs is not None else profile.max_seqs if profile is not None else None
    max_pp = max_pp if max_pp is not None else profile.max_pp if profile is not None else None
    overrides = {k: v for k, v in (("price_usd_per_hour", price_usd_per_hour), ("flop_efficiency", flop_efficiency),
                                   ("bandwidth_efficiency", bandwidth_efficiency)) if v is not None}
    if memory_fraction != 1.0:  # the engine fills only this share of HBM: the capacity every rule reads
        overrides["hbm_capacity_bytes"] = hw.hbm_capacity_bytes * memory_fraction
    hw = dataclasses.replace(hw, **overrides) if overrides else hw
    workload = Workload(context_tokens=int(context_tokens), weight_bits=weight_bits, activation_bits=activation_bits,
                        kv_bits=activation_bits if kv_bits is None else kv_bits, weight_format=weight_format or "")
    space_kwargs = {"batch_mode": batch_mode, "draft_tokens": draft_tokens, "attention_dp": attention_dp,
                    **_layout_family(layout), "max_seqs": max_seqs, "max_pp": max_pp,
                    "uneven_stages": engine_run, "memory_fraction": float(memory_fraction)}
    if max_gpus is not None:
        space_kwargs["max_gpus"] = max_gpus
    if max_batch is not None:
        space_kwargs["max_batch"] = max_batch
    if batch_sizes is not None:
        space_kwargs["batch_sizes"] = tuple(int(b) for b in batch_sizes)
    speculative = None
    if draft is not None:
        if not 0 <= acceptance < 1:
            raise InstanceError(f"'acceptance' must be in [0, 1) (got {acceptance})")
        drafter = resolve_model(draft)
        check_drafter(spec, drafter)
        speculative = SpeculativeDecoding(drafter, acceptance, max_draft_tokens)
    if prefill_utilization is not None and not 0 < prefill_utilization < 1:
        raise InstanceError(f"'prefill_utilization' must be in (0, 1) (got {prefill_utilization!r})")
    if confidence is not None:
        try:
            confidence = check_confidence(confidence)
        except ValueError as exc:
            raise InstanceError(str(exc)) from None
    return Problem(spec, hw, workload, SearchSpace(**space_kwargs),
                   Constraints(demand_tokens_per_s, budget_usd_per_hour, ttft_max_s, tpot_max_s, slo_percentile),
                   speculative,
                   requests=requests, engine=profile, mode=mode, prefill_utilization=prefill_utilization,
                   confidence=confidence, bands=shipped_bands() if confidence is not None else None)


LAYOUT_KEYS = ("tp", "tp_grid", "pp", "ep", "gpus")


def _layout_family(layout: dict | None) -> dict:
    """``build_problem``'s ``layout``, checked: known keys, each degree a bounded positive integer."""
    if not layout:
        return {}
    unknown = sorted(set(layout) - set(LAYOUT_KEYS))
    if unknown:
        raise InstanceError(f"'layout': unknown key '{unknown[0]}' (allowed: {', '.join(LAYOUT_KEYS)})")
    family = {}
    for key, value in layout.items():
        if value is None:
            continue
        parts = tuple(value) if key == "tp_grid" else (value,)
        for part in parts:
            if isinstance(part, bool) or not isinstance(part, int | np.integer) or part < 1:
                raise InstanceError(f"'layout' {key} must be positive integers (got {value!r})")
            check_knob("max_gpus", part, label=f"'layout' {key}")
        family[key] = tuple(int(v) for v in parts) if key == "tp_grid" else int(value)
    return family


def check_drafter(target: ModelSpec, drafter: ModelSpec) -> None:
    """Refuse a drafter that cannot speed up ``target``: one with another vocabulary, or a larger one.

    Why: speculative decoding verifies the drafter's tokens with the target, so both must share one tokenizer
    (a vocabulary size that differs is a different tokenizer); and a drafter larger than the target makes every
    drafted token cost more than a target step: most likely the two were swapped.
    """
    if drafter.vocab_size != target.vocab_size:
        raise InstanceError(f"'draft' {drafter.name} has a vocabulary of {drafter.vocab_size} tokens, {target.name} "
                            f"{target.vocab_size}: a drafter must share the target's tokenizer")
    drafter_params, target_params = parameter_counts(drafter).active, parameter_counts(target).active
    if drafter_params > target_params:  # the target as its own drafter stays allowed: the search confirms gamma 0
        raise InstanceError(f"'draft' {drafter.name} ({drafter_params / 1e9:.3g}B active parameters) is larger than "
                            f"{target.name} ({target_params / 1e9:.3g}B): it cannot speed it up (swapped?)")


def hbm_need_text(hbm_bytes_per_gpu: float) -> str:
    """``12.34 GB per GPU``; or, when the need was clipped at the physics' ceiling (2^53 bytes, 9 PB), that the
    batch and context are absurdly large: the clipped number would be a fake (issue 11)."""
    if beyond_any_memory(hbm_bytes_per_gpu):
        return (f"more than {HBM_BYTES_CEILING / 1e15:.0f} PB per GPU (the batch and context are absurdly large: "
                "they exceed any memory)")
    return f"{hbm_bytes_per_gpu / 1e9:.2f} GB per GPU"


def diagnose_infeasible(problem: Problem, table: ConfigTable | None = None) -> str:
    """Why a problem has no feasible configuration: the binding rule and by how much.

    ``table``: the problem's configuration table if the caller has it; without one the space is read
    piece by piece (``enumeration.rule_summary``: at integer resolution one table may not fit in memory).
    """
    checked, closest = "", {}
    if table is None:
        summary = rule_summary(problem)
        fits, needed = summary.fits_somewhere, summary.least_hbm_used_bytes_per_gpu
        names, closest = summary.broken_wherever_it_fits, summary.closest
        if not summary.every_batch:
            checked = " (checked at batches ~1.4x apart: the space is too large to check every batch)"
    else:
        fits = not table.violations["hbm_capacity"].all()
        needed = int(table.metrics.hbm_used_bytes_per_gpu.min())
        room = ~table.violations["hbm_capacity"]
        names = [name for name, broken in table.violations.items() if broken[room].all()]
        closest = least_cap_values(table, room)
    if not fits:
        capacity = problem.hardware.hbm_capacity_bytes
        return (f"hbm_capacity: {problem.model.name} does not fit on {problem.hardware.name} within "
                f"{problem.space.max_gpus} GPUs: the roomiest layout needs {hbm_need_text(needed)}, "
                f"{capacity / 1e9:.1f} GB available (raise --max-gpus, lower --weight-bits or --context)")
    if names:
        return f"{names[0]}: {_cap_reason(problem, names[0], closest.get(names[0]))}{checked}"
    return "no configuration satisfies all constraints together"


def _cap_reason(problem: Problem, rule: str, nearest: float | None) -> str:
    """Why no configuration that fits meets ``rule``, with the nearest value any reaches (``rule_summary.closest``)."""
    c = problem.constraints
    if nearest is None:
        return "no configuration that fits in memory satisfies it"
    if rule == "demand_cap":
        return (f"every configuration that fits serves more than the demand of {c.demand_tokens_per_s:g} tok/s per "
                f"instance (the least is {nearest:.4g} tok/s, one request at the slowest layout); the demand caps "
                "one instance's total tokens/s, so it must be at least one request's speed")
    if rule == "budget":
        return (f"the cheapest instance that fits costs ${nearest:.4g}/h, over the budget of "
                f"${c.budget_usd_per_hour:g}/h")
    cap = c.ttft_max_s if rule == "ttft_max" else c.tpot_max_s
    return (f"the least {slo_quantity(problem, rule)} of any configuration that fits is {nearest * 1e3:.4g} ms, over "
            f"the cap of {cap * 1e3:.4g} ms")


def slo_quantity(problem: Problem, rule: str) -> str:
    """What a TTFT or TPOT cap is compared with: ``TTFT`` (the mean over requests) or ``p99 TTFT``."""
    what = "TTFT" if rule == "ttft_max" else "TPOT"
    p = problem.constraints.slo_percentile
    return what if p is None else f"p{p:g} {what}"


def _slo_text(problem: Problem, metrics: ConfigMetrics, rule: str, cap_s: float) -> str:
    """``p99 TTFT 563.4 ms > 200 ms``: the value the cap is compared with, against the cap."""
    return f"{slo_quantity(problem, rule)} {slo_value_s(problem, metrics, rule) * 1e3:.4g} ms > {cap_s * 1e3:.4g} ms"


def slo_value_s(problem: Problem, metrics: ConfigMetrics, rule: str) -> float:
    """The value of one configuration a TTFT or TPOT cap is compared with (``space.slo_violations``): at the SLO
    percentile, or the mean without one."""
    p = problem.constraints.slo_percentile
    if not hasattr(metrics, "ttft_s"):
        return float("nan")
    return _scalar(metrics.ttft_at(p) if rule == "ttft_max" else metrics.tpot_at(p))


def frontier(model, hardware, *, backend: str = "auto", time_limit_s: float | None = None, progress=None,
             near_tie_tolerance: float = DEFAULT_TOLERANCE, **problem_kwargs) -> Frontier:
    """The exact Pareto frontier (tokens/s per request against $ per million output tokens).

    Keyword arguments are those of ``build_problem``. Every exact point is returned; the ``shown`` column
    marks those a reader needs (``solver.thinning``): a point is hidden when a simpler deployment is within
    ``near_tie_tolerance`` (a fraction: 0.01 = 1 %) of it on both speed and cost. Raises
    ``NoFeasibleLayoutError`` naming the binding rule when nothing is feasible.
    """
    check_knob("near_tie_tolerance", near_tie_tolerance)
    problem = model if isinstance(model, Problem) else build_problem(model, hardware, **problem_kwargs)
    check_knob("time_limit_s", time_limit_s)
    _check_confidence_backend(problem, backend)
    try:
        result = trace_frontier(problem, backend, time_limit_s=time_limit_s, progress=progress)
    except EvaluationBudgetError as exc:
        if not exc.nothing_feasible:
            raise
        # A rule nothing meets leaves no point to skip batches with: name the rule, not the evaluation budget.
        raise InstanceError(f"{diagnose_infeasible(problem)}; {exc}") from None
    if len(result) == 0 and result.complete:
        raise NoFeasibleLayoutError(diagnose_infeasible(problem))
    return result.with_shown(near_tie_tolerance)


def _check_confidence_backend(problem: Problem, backend: str) -> None:
    """A confidence is searched by the enumeration only: the encodings bound the model's own prediction."""
    if problem.confidence is not None and backend not in ("auto", "enumerate"):
        raise InstanceError(f"--confidence needs the enumerate backend (auto), not {backend}: the {backend} "
                            "encoding bounds the model's own prediction, not its pessimistic end")


def cheapest_at_speed(model, hardware, min_tokens_per_s: float, *, backend: str = "auto",
                      time_limit_s: float | None = None, **problem_kwargs) -> Frontier:
    """The cheapest configuration serving each request at least ``min_tokens_per_s``."""
    check_knob("min_speed", min_tokens_per_s)
    check_knob("time_limit_s", time_limit_s)
    problem = model if isinstance(model, Problem) else build_problem(model, hardware, **problem_kwargs)
    _check_confidence_backend(problem, backend)
    return solve_point(problem, backend, min_tokens_per_s=min_tokens_per_s, time_limit_s=time_limit_s)


def fastest_within_cost(model, hardware, max_usd_per_million_tokens: float, *, backend: str = "auto",
                        time_limit_s: float | None = None, **problem_kwargs) -> Frontier:
    """The fastest configuration costing at most ``max_usd_per_million_tokens``."""
    check_knob("max_cost", max_usd_per_million_tokens)
    check_knob("time_limit_s", time_limit_s)
    problem = model if isinstance(model, Problem) else build_problem(model, hardware, **problem_kwargs)
    _check_confidence_backend(problem, backend)
    return solve_point(problem, backend, max_usd_per_million_tokens=max_usd_per_million_tokens,
                       time_limit_s=time_limit_s)


@dataclass(frozen=True)
class Explanation:
    """One configuration's breakdown: each term, which binds, and the rules it breaks."""

    problem: Problem
    tp_rows: int
    tp_cols: int
    pp: int
    ep: int
    batch: int
    draft_tokens: int
    metrics: ConfigMetrics
    rule_violation: str | None
    hbm_capacity_bytes: float
    attention_dp: bool = False  # attention data-parallel over the TP group (else by heads, or the paper's split)
    attention_choice: str = ""  # why this sharding (``explain``): empty where the problem has no choice
    caps_broken: tuple[str, ...] = ()  # every cap given that this configuration breaks (``broken_caps``)

    @property
    def fits(self) -> bool:
        return int(self.metrics.hbm_used_bytes_per_gpu) <= int(self.hbm_capacity_bytes)

    @property
    def problem_found(self) -> str | None:
        """Every reason this is not a valid deployment (a broken rule, HBM capacity, each cap broken), or None."""
        found = [self.rule_violation] if self.rule_violation else []
        if not self.fits:
            found.append(f"hbm_capacity: needs {self.hbm_need}, {self.hbm_capacity_bytes / 1e9:.1f} GB available")
        found.extend(self.caps_broken)
        return "; ".join(found) or None

    @property
    def hbm_need(self) -> str:
        """HBM use per GPU as text: ``12.34 GB per GPU``, or the fact that it exceeds any memory."""
        return hbm_need_text(float(self.metrics.hbm_used_bytes_per_gpu))

    def band(self) -> dict[str, float | str]:
        """The 80 % band of this configuration's speed and cost, and why it is extrapolated (``band_columns``)."""
        point = pd.DataFrame({"tokens_per_second": [float(self.metrics.tokens_per_second)],
                              "usd_per_million_tokens": [float(self.metrics.usd_per_million_tokens)],
                              "pp": [self.pp], "batch": [self.batch], "attention_dp": [self.attention_dp]})
        band = {name: values[0] for name, values in band_columns(self.problem, point).items()}
        band["extrapolated"] = band["extrapolated"] if isinstance(band["extrapolated"], str) else ""
        return band

    def terms(self) -> pd.DataFrame:
        """Milliseconds per step of each component, for the target (and the drafter)."""
        rows = []
        for role, step in (("target", self.metrics.target), ("drafter", self.metrics.drafter)):
            if step is None:
                continue
            rows.append({"pass": role, "compute_ms": float(step.compute_s) * 1e3,
                         "hbm_read_ms": float(step.hbm_read_s) * 1e3, "network_ms": float(step.network_s) * 1e3,
                         "collective_latency_ms": float(step.collective_latency_s) * 1e3,
                         "kernel_latency_ms": float(step.kernel_latency_s) * 1e3,
                         "step_ms": float(step.total_s) * 1e3})
        return pd.DataFrame(rows)


def explain(model, hardware, *, tp: int = 1, tp_rows: int = 1, tp_cols: int | None = None, pp: int = 1, ep: int = 1,
            batch: int = 1, draft_tokens: int | None = None, **problem_kwargs) -> Explanation:
    """Evaluate one configuration: 1-D TP of degree ``tp``, or a ``tp_rows`` x ``tp_cols`` grid.

    With a drafter, ``draft_tokens=None`` uses the latency-optimal draft length (0: no speculation),
    and the drafter takes its fastest layout on the same GPUs (``perf.fastest_drafter_layout``).
    The attention sharding follows ``attention_dp`` (a ``build_problem`` keyword) as the search does:
    ``on`` data-parallel, ``off`` by heads, and ``auto`` the one that fits, else the faster, at this layout
    and batch (``_attention_choice``); a single GPU, a non-MLA model or the paper's model has no choice.
    """
    cols = tp if tp_cols is None else tp_cols
    if not isinstance(model, Problem) and problem_kwargs.get("max_gpus") is None:
        # No --max-gpus given: the configuration itself says how many GPUs (a cap given is judged below).
        gpus = tp_rows * cols * pp if all(isinstance(v, int) for v in (tp_rows, cols, pp)) else 1
        problem_kwargs["max_gpus"] = max(DEFAULT_MAX_GPUS, min(gpus, int(KNOB_RANGES["max_gpus"].high)))
    problem = model if isinstance(model, Problem) else build_problem(model, hardware, **problem_kwargs)
    for name, value in (("tp", cols), ("tp_rows", tp_rows), ("pp", pp), ("ep", ep), ("batch", batch),
                        ("draft_tokens", 1 if draft_tokens is None else draft_tokens)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise InstanceError(f"'{name}' must be a positive integer (got {value!r})")
        check_knob("batch" if name == "batch" else "draft_tokens" if name == "draft_tokens" else "max_gpus", value,
                   label=f"'{name}'")
    violation = layout_rule_violation(problem.model, problem.hardware, tp_rows=tp_rows, tp_cols=cols, pp=pp, ep=ep,
                                      max_gpus=problem.space.max_gpus,
                                      uneven_stages=problem.space.uneven_stages, max_pp=problem.space.max_pp)
    if violation is None and batch % pp:
        violation = f"pp_divides_batch: a batch of {batch} does not split into {pp} equal micro-batches"
    choices = attention_dp_choices(problem) if tp_rows * cols > 1 else (False,)
    layout = dict(tp_rows=tp_rows, tp_cols=cols, pp=pp, ep=ep, batch=batch, draft_tokens=draft_tokens)
    caps = {data: sequence_caps(problem, [[tp_rows, cols, pp, ep, int(data)]]) for data in choices}
    within = [data for data in choices if caps[data] is None or batch <= int(caps[data][0])]
    if within and len(within) < len(choices):  # only one sharding runs that many sequences: that one
        choices = tuple(within)
    evaluated = {data: evaluate_configurations(problem, **layout, attention_dp=data) for data in choices}
    attention_dp, why = _attention_choice(problem, evaluated)
    if len(within) < len(caps) and within:
        why = f"auto: the only sharding that runs {batch} sequences (engine cap {problem.space.max_seqs} per scheduler)"
    metrics = evaluated[attention_dp]
    cap = caps[attention_dp]
    if violation is None and cap is not None and batch > int(cap[0]):
        per = (f" ({problem.space.max_seqs} per attention-DP rank x {tp_rows * cols} ranks)" if attention_dp
               else "")
        violation = (f"max_seqs: a batch of {batch} exceeds the engine's cap of {int(cap[0])} running sequences per "
                     f"replica{per} (--max-seqs)")
    speculative = problem.speculative
    if violation is None and speculative is not None and int(metrics.draft_tokens) > 0 and int(metrics.drafter_pp) == 0:
        violation = f"drafter_layout: {speculative.drafter.name} has no valid layout on {int(metrics.gpus)} GPUs"
    return Explanation(problem, tp_rows, cols, pp, ep, batch, int(metrics.draft_tokens), metrics, violation,
                       problem.hardware.hbm_capacity_bytes, attention_dp, why, broken_caps(problem, metrics, batch))


def broken_caps(problem: Problem, metrics: ConfigMetrics, batch: int) -> tuple[str, ...]:
    """Every cap of the problem one configuration breaks, as ``rule: value against cap`` (``explain``'s verdict).

    The caps are the search's own (``space.rule_masks``: TTFT, TPOT, demand, budget) plus the batch domain
    (``max_batch``, ``batch_sizes``): a configuration the frontier could never hold is no valid deployment.
    """
    masks = space_rule_masks(problem, metrics)
    c = problem.constraints
    text = {
        "ttft_max": lambda: _slo_text(problem, metrics, "ttft_max", c.ttft_max_s),
        "tpot_max": lambda: _slo_text(problem, metrics, "tpot_max", c.tpot_max_s),
        "demand_cap": lambda: f"{_scalar(metrics.total_tokens_per_second):.4g} tok/s per instance > the demand "
                              f"{c.demand_tokens_per_s:g} tok/s",
        "budget": lambda: f"{int(metrics.gpus)} GPUs x ${problem.hardware.price_usd_per_hour:g}/h = "
                          f"${int(metrics.gpus) * problem.hardware.price_usd_per_hour:g}/h > the budget "
                          f"${c.budget_usd_per_hour:g}/h",
    }
    found = [f"{rule}: {text[rule]()}" for rule in text if rule in masks and bool(np.asarray(masks[rule]).any())]
    space = problem.space
    if space.max_batch is not None and batch > space.max_batch:
        found.append(f"max_batch: batch {batch} > {space.max_batch}")
    if space.batch_sizes is not None and batch not in space.batch_sizes:
        found.append(f"batch_sizes: batch {batch} is not one of {', '.join(map(str, sorted(space.batch_sizes)))}")
    return tuple(found)


def _scalar(value) -> float:
    return float(np.asarray(value, dtype=float).reshape(-1)[0])


def _attention_choice(problem: Problem, evaluated: dict[bool, ConfigMetrics]) -> tuple[bool, str]:
    """(attention data-parallel?, why) for ``explain``, from the metrics of each sharding allowed.

    With both allowed (``auto``): the one that fits in HBM, else the faster per request, heads on a tie (as
    the canonical order breaks ties). Why: at the same GPUs and batch both are charged the same GPUs for
    their decode steps, so the faster is nearly always the cheaper too and the one the frontier keeps;
    ``explain`` of a frontier row then shows that row (``--attention-dp on``/``off`` shows either).
    """
    if len(evaluated) == 1:
        (attention_dp,) = evaluated
        chosen = problem.space.attention_dp != "auto" and attention_dp_applies(problem.model, problem.engine)
        return attention_dp, (f"--attention-dp {problem.space.attention_dp}" if chosen else "")
    capacity = int(problem.hardware.hbm_capacity_bytes)
    fits = {key: int(m.hbm_used_bytes_per_gpu) <= capacity for key, m in evaluated.items()}
    if fits[True] != fits[False]:
        return fits[True], "auto: the only sharding that fits in HBM"
    faster = float(evaluated[True].latency_s) < float(evaluated[False].latency_s)
    other = evaluated[not faster]
    return faster, (f"auto: faster than {'heads' if faster else 'data-parallel'} "
                    f"({float(other.latency_s) * 1e3:.3f} ms per token there)")


def recipe(model, hardware, *, engine: str, memory_fraction: float | None = None, tp: int = 1, tp_rows: int = 1,
           tp_cols: int | None = None, pp: int = 1, ep: int = 1, batch: int = 1, **problem_kwargs):
    """The launch recipe (``solver.recipes.Recipe``: ``.text()``, ``.commands``, ``.files``) of one configuration.

    ``engine`` (``vllm``, ``sglang`` or ``trtllm``) is both the profile that models the configuration (as in
    ``explain``) and the engine that launches it; ``mode="disaggregated"`` gives a prefill/decode pair. Raises
    ``InfeconError`` when the configuration is not deployable or the engine's documentation does not cover it.
    """
    from infecon.instances.engines import engine_family
    from infecon.solver.recipe_hooks import recipe_for_explanation
    from infecon.solver.recipes import RECIPE_ENGINES

    family = engine_family(str(engine))
    if family not in RECIPE_ENGINES:
        raise InstanceError(f"'engine' must be one of {', '.join(RECIPE_ENGINES)} to launch (got {engine!r})")
    expl = explain(model, hardware, tp=tp, tp_rows=tp_rows, tp_cols=tp_cols, pp=pp, ep=ep, batch=batch,
                   engine=engine, **problem_kwargs)
    if expl.problem_found is not None:
        raise NoFeasibleLayoutError(f"not a valid deployment: {expl.problem_found}")
    return recipe_for_explanation(expl, family, memory_fraction=memory_fraction)


def attention_label(m: ModelSpec) -> str:
    """``mla``, ``standard``, or the layer mix: ``18 full + 18 sliding-128``, ``12 full + 36 linear``."""
    if not (m.n_window_layers or m.n_linear_layers):
        return m.attention
    parts = [f"{m.n_full_attention_layers} full"]
    if m.n_window_layers:
        parts.append(f"{m.n_window_layers} {m.window_kind}-{m.attention_window_tokens}")
    if m.n_linear_layers:
        parts.append(f"{m.n_linear_layers} linear")
    return " + ".join(parts)


def list_models() -> pd.DataFrame:
    """Built-in models with their size and shape."""
    rows = []
    for name in builtin_model_names():
        m = get_model(name)
        counts = parameter_counts(m)
        rows.append({"name": name, "model": m.name, "params_b": counts.total / 1e9,
                     "active_params_b": counts.active / 1e9,
                     "layers": m.n_layers, "d_model": m.d_model, "heads": m.n_heads, "kv_heads": m.n_kv_heads,
                     "experts": f"{m.n_active_experts}/{m.n_routed_experts}" if m.is_moe else "-",
                     "attention": attention_label(m), "hf_id": m.hf_id or "-"})
    return pd.DataFrame(rows)


def list_hardware() -> pd.DataFrame:
    """Built-in accelerators with their headline numbers."""
    rows = []
    for name in builtin_hardware_names():
        h = get_hardware(name)
        rows.append({"name": name, "also": ", ".join(hardware_aliases(name)) or "-", "hardware": h.name,
                     "tflops_16bit": h.flop_per_s_by_bits[16] / 1e12,
                     "hbm_gb": h.hbm_capacity_bytes / 1e9, "hbm_tb_per_s": h.hbm_bandwidth_bytes_per_s / 1e12,
                     "node_size": h.node_size_gpus, "usd_per_hour": h.price_usd_per_hour})
    return pd.DataFrame(rows)


def layouts(model, hardware, **problem_kwargs) -> pd.DataFrame:
    """The valid layouts of a problem's search space (for inspection), with their attention sharding."""
    problem = model if isinstance(model, Problem) else build_problem(model, hardware, **problem_kwargs)
    frame = pd.DataFrame(searched_layouts(problem), columns=list(LAYOUT_COLUMNS))
    frame["attention_dp"] = frame["attention_dp"].astype(bool)
    return frame


def export_models(model, hardware, directory: str | Path, **problem_kwargs) -> list[Path]:
    """Write the encodings of a problem, caps open (the first solve's model): ``model.lp`` and ``model.cpsat.txt``.

    Both read like the design: each rule is a named row (``hbm_capacity``, ``cost_cap``, ...) over
    the layout choice and the integer ``batch``. Raises ``InstanceError`` if the directory cannot be written.
    """
    from infecon.formulations.cpsat import build_cpsat
    from infecon.formulations.milp import build_milp, to_pulp
    from infecon.formulations.relaxation import build_options

    problem = model if isinstance(model, Problem) else build_problem(model, hardware, **problem_kwargs)
    options = build_options(problem)
    target = Path(directory)
    try:
        target.mkdir(parents=True, exist_ok=True)
        lp_path, cpsat_path = target / "model.lp", target / "model.cpsat.txt"
        with replacing(lp_path) as tmp:  # written whole, then renamed into place: an old export is never truncated
            to_pulp(build_milp(problem, options))[0].writeLP(str(tmp))
        with replacing(cpsat_path) as tmp:
            if not build_cpsat(problem, options).model.export_to_file(str(tmp)):
                raise OSError(f"CP-SAT could not write {cpsat_path}")
    except OSError as exc:
        raise InstanceError(f"--export-model: cannot write to '{directory}': {exc}") from None
    return [lp_path, cpsat_path]


def load_fleet(path: str | Path):
    """A validated fleet scenario (``instances.fleet_scenario.FleetScenario``) from its TOML file."""
    from infecon.instances.fleet_scenario import load_fleet_scenario

    return load_fleet_scenario(path)


def plan_fleet(scenario, **kwargs):
    """The least-cost fleet of a scenario (a ``FleetScenario`` or a path): a ``solver.fleet.FleetPlan``.

    ``.plan`` and ``.candidates`` are DataFrames, ``.summary`` the summary.json contents. Keyword
    arguments are those of ``solver.fleet.plan_fleet`` (backend, time_limit_s, jobs, ray, ray_address).
    """
    from infecon.solver.fleet import plan as fleet

    if isinstance(scenario, str | Path):
        scenario = load_fleet(scenario)
    return fleet.plan_fleet(scenario, **kwargs)


def plan_horizon(scenario, **kwargs):
    """Reservations and per-period rentals for a planning file over periods (a ``HorizonScenario`` or a path):
    a ``solver.fleet.horizon.HorizonPlan`` whose ``.reservations`` and ``.schedule`` are DataFrames and
    ``.summary`` the summary.json contents. Keyword arguments: those of ``solver.fleet.horizon.plan_horizon``
    (backend, time_limit_s, jobs, ray, ray_address)."""
    from infecon.instances.fleet_horizon import load_horizon_scenario
    from infecon.solver.fleet import horizon

    if isinstance(scenario, str | Path):
        scenario = load_horizon_scenario(scenario)
    return horizon.plan_horizon(scenario, **kwargs)
