"""Fit an engine profile's few physical parameters to measurements, with uncertainties and held-out errors.

``scipy.optimize.least_squares`` on log(measured / predicted) of per-user speed (and of TTFT where
measured), with a robust soft-L1 loss (a row 10 % off counts fully, a row 3x off barely more than
one 30 % off, so a suspicious row cannot drag the fit) and bounds that keep each parameter physical.
Parameters: compute and HBM efficiencies, seconds per kernel, seconds per sequence per layer per
step, a fixed cost per step and a fixed latency per served request. Efficiencies and kernel time
are platform properties (CUDA and ROCm kernels differ), so each hardware in the data may deviate
from the shared value by a factor exp(delta), with a prior delta ~ N(0, PRIOR_SIGMA) added to the
residuals: a deviation survives only where the data demands it, and hardware the data lacks (or a
deviation the data cannot identify) keeps the shared value. Seconds per kernel have a prior too, at the
published ~4 us per kernel launch (``KERNEL_PRIOR_S``): where the rows cannot tell kernels x kernel_s from
the fixed cost per step (static-batch rows at large batch, one model), the split stays physical instead of
drifting to whatever fits, and the profile then carries to engines and models it was not fitted on.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from infecon.formulations.errors import InstanceError
from infecon.formulations.specs import EngineProfile
from infecon.instances.engines import ENGINES_DIR, engine_family, load_engine
from infecon.solver.validation import (
    PreparedBlock,
    PreparedRow,
    blocks,
    predict_block,
    prepare_row,
    read_measurements,
)

# name: (lower bound, upper bound, start, scale). Bounds are physical: an efficiency below the ~95 %
# a tuned kernel reaches; a kernel between a bare launch (0.5 us) and a slow small kernel (100 us);
# per-step costs below 20 ms; a served request's fixed latency (client, HTTP, tokeniser, scheduler: what a
# benchmark's TTFT counts beyond the prefill) below 0.2 s. Rows without a served TTFT leave request_s at
# its start value: it only enters TTFT of closed-loop and disaggregated rows.
SHARED_PARAMETERS = {
    "flop_efficiency": (0.05, 0.95, 0.6, 1.0),
    "bandwidth_efficiency": (0.2, 0.95, 0.75, 1.0),
    "kernel_s": (0.5e-6, 100e-6, 5e-6, 1e-6),
    "sequence_layer_s": (0.0, 50e-6, 1e-6, 1e-6),
    "step_s": (0.0, 20e-3, 1e-4, 1e-3),
    "request_s": (0.0, 0.2, 0.01, 0.01),
}
HARDWARE_PARAMETERS = ("kernel_s", "bandwidth_efficiency", "flop_efficiency")
DEVIATION_BOUNDS = (-2.0, 2.0, 0.0, 1.0)  # log factor of a hardware's value over the shared one
# Prior width of a platform's deviation, in log units: one standard deviation is a factor 1.35 from the shared
# value, so a larger one (ROCm prefill at under half the CUDA efficiency, say) survives only where many rows
# demand it. With engines split by heads and NIM fitted as TensorRT-LLM, scripts/bench_fidelity.py gives a
# leave-one-group-out median per-user error of 16 % at 0.3, 18 % at 0.5 and 22 % at 1.0 (in-sample 6 %, 6 %, 5 %);
# with the kernel prior below, 14.9 %, 15.3 % and 16.8 % (in-sample 6.8 %, 6.1 %, 5.3 %):
# a platform's deviation fitted on one engine carries to another engine only in part.
PRIOR_SIGMA = 0.3
# Prior on the shared seconds per kernel: a kernel's launch and ramp (Erdil 2025 sec. 4: ~4 us per kernel launch on
# H100, the value of instances/hardware/h100_sxm.toml), one standard deviation a factor 2 either way (CUDA/HIP graphs
# launch faster, small unfused kernels run longer). Like the deviation prior it is one residual (log(kernel_s /
# prior) / sigma) under the robust loss. With it, scripts/bench_fidelity.py gives a leave-one-group-out median
# per-user error of 14.9 % (in-sample 6.8 %); without it 16.3 % (6.3 %): TensorRT-LLM's large-batch static rows do
# not determine kernel_s (standard error 6 us on 8.5 us), and its fit then overcharged NIM's small batches and, in the
# generic fits that predict a held-out engine, DeepSeek's 1,300 kernels per pass. Sensitivity of that median to the
# width: 14.1 % at a factor 1.4, 14.7 % at a factor 4.
KERNEL_PRIOR_S = 4e-6
KERNEL_PRIOR_SIGMA = math.log(2.0)
ROBUST_SCALE = 0.1  # soft-L1 transition: log errors beyond ~10 % are down-weighted
UNITS = {"flop_efficiency": "", "bandwidth_efficiency": "", "sequence_layer_s": "s", "step_s": "s", "kernel_s": "s"}


@dataclass(frozen=True)
class Fit:
    """A fitted profile, its parameters' values and standard errors, and its errors on the data."""

    profile: EngineProfile
    values: dict[str, float]
    errors: dict[str, float]
    rows: int
    residual_count: int
    in_sample: pd.DataFrame  # per row: measured and predicted per-user, TPOT, TTFT
    held_out: pd.DataFrame | None  # the same, each group predicted by a fit without it
    unfitted: dict[str, str] = dataclasses.field(default_factory=dict)  # fixed at 0: why the rows cannot fit them
    kernel_prior: bool = True  # kernel_s was fitted with its prior (KERNEL_PRIOR_S)


def prepare(frame: pd.DataFrame, family: str | None) -> tuple[list[PreparedRow], list[str]]:
    """The rows of ``family`` (all rows for None) that can be predicted, and why others cannot.

    Their passes carry the measured GEMM curves of the profile that will predict them: ``family``'s, and for all
    rows (None) the generic profile's, which has none.
    """
    prepared, skipped = [], []
    for i, record in frame.iterrows():
        if family is not None and engine_family(str(record["engine"])) != family:
            continue  # another family's row: not prepared (its passes cost ~20 ms a row)
        row = prepare_row(int(i), record, kernels=family or "generic")
        if isinstance(row, str):
            skipped.append(f"row {int(i) + 2}: {row}")
        elif family is None or row.family == family:
            prepared.append(row)
    return prepared, skipped


def unidentified_parameters(rows: list[PreparedRow]) -> dict[str, str]:
    """Shared parameters the rows cannot determine, each with why; they are fixed at 0, not fitted.

    ``request_s`` needs a TTFT measured in a served mode. ``step_s`` needs two models: on one model a
    fixed cost per step and kernels x ``kernel_s`` are the same constant per pass (a fit would split it
    arbitrarily, with a standard error many times its value), so the constant goes to ``kernel_s``.
    """
    served = any(math.isfinite(r.measured_ttft_s) and r.passes.mode in ("closed_loop", "disaggregated") for r in rows)
    missing = {}
    if not served:
        missing["request_s"] = REQUEST_SOURCE
    if len({r.passes.model.name for r in rows}) < 2:
        missing["step_s"] = STEP_SOURCE
    return missing


def parameter_names(rows: list[PreparedRow]) -> list[str]:
    """Shared parameters the rows identify (``unidentified_parameters``), then the log factor of each
    per-hardware parameter for each hardware in the rows."""
    hardware = sorted({r.hardware_name for r in rows})
    missing = unidentified_parameters(rows)
    shared = [n for n in SHARED_PARAMETERS if n not in missing]
    return shared + [f"log_factor.{h}.{p}" for h in hardware for p in HARDWARE_PARAMETERS]


def profile_with(base: EngineProfile, names: list[str], values) -> EngineProfile:
    """``base`` with the named parameters set: shared values, and per hardware the shared value times exp(delta)
    (an efficiency capped at the shared upper bound)."""
    shared = {n: float(v) for n, v in zip(names, values, strict=True) if not n.startswith("log_factor.")}
    per_hw: dict[str, dict[str, float]] = {}
    for n, v in zip(names, values, strict=True):
        if n.startswith("log_factor."):
            hw, param = n.removeprefix("log_factor.").rsplit(".", 1)
            value = shared.get(param, getattr(base, param)) * math.exp(float(v))
            per_hw.setdefault(hw, {})[param] = min(value, SHARED_PARAMETERS[param][1])
    return dataclasses.replace(base, **shared, by_hardware=per_hw)


def _bounds(names: list[str]):
    spec = [SHARED_PARAMETERS.get(n, DEVIATION_BOUNDS) for n in names]
    return (np.array([s[0] for s in spec]), np.array([s[1] for s in spec]), np.array([s[2] for s in spec]),
            np.array([s[3] for s in spec]))


def residuals(rows: list[PreparedRow] | list[PreparedBlock], profile: EngineProfile) -> np.ndarray:
    """log(measured / predicted) per-user speed for every row, then TTFT for rows that measured it
    (block by block: ``validation.blocks``)."""
    speed, ttft = [], []
    for block in _as_blocks(rows):
        p = predict_block(block, profile, percentiles=False)
        measured = np.array([r.measured_per_user for r in block.rows])
        speed.append(np.log(measured / p["per_user"]))
        measured_ttft = np.array([r.measured_ttft_s for r in block.rows])
        keep = np.isfinite(measured_ttft)
        ttft.append(np.log(measured_ttft[keep] / p["ttft_s"][keep]))
    return np.concatenate(speed + ttft) if speed else np.zeros(0)


def _as_blocks(rows) -> list[PreparedBlock]:
    return rows if rows and isinstance(rows[0], PreparedBlock) else blocks(rows)


def fit_parameters(rows: list[PreparedRow], base: EngineProfile, *, kernel_prior: bool = True,
                   start_values: dict[str, float] | None = None) -> tuple[EngineProfile, dict, dict, int]:
    """Least-squares fit of ``base``'s parameters to ``rows``: (profile, values, standard errors, residuals).

    ``kernel_prior`` adds the prior on seconds per kernel (``KERNEL_PRIOR_S``); without it the fit is plain
    (robust) least squares on the rows and the deviation prior. ``start_values`` (a fit on more rows, for the
    leave-one-group-out refits) replace the default starting point where they name a parameter: the optimum is
    the same, it is reached in fewer steps.
    """
    names = parameter_names(rows)
    if len(rows) < len(names):
        raise InstanceError(f"calibrate: {len(rows)} predictable rows, fewer than the {len(names)} parameters to fit "
                            f"({', '.join(names)})")
    lower, upper, start, scale = _bounds(names)
    if start_values:
        start = np.array([start_values.get(n, s) for n, s in zip(names, start, strict=True)])
        span = upper - lower
        start = np.clip(start, lower + 1e-6 * span, upper - 1e-6 * span)
    base = dataclasses.replace(base, **{n: 0.0 for n in unidentified_parameters(rows)})

    deviations = np.array([n.startswith("log_factor.") for n in names])
    kernel = names.index("kernel_s") if kernel_prior and "kernel_s" in names else None
    priors = int(deviations.sum()) + (kernel is not None)

    stacked = blocks(rows)

    def fun(z):
        prior = z[deviations] / PRIOR_SIGMA  # scale 1 for deviations: z is delta itself
        if kernel is not None:  # kernel_s stays within its bounds (> 0), so the log is defined
            kernel_prior_residual = math.log(z[kernel] * scale[kernel] / KERNEL_PRIOR_S) / KERNEL_PRIOR_SIGMA
            prior = np.append(prior, kernel_prior_residual)
        return np.concatenate([residuals(stacked, profile_with(base, names, z * scale)), prior])

    result = least_squares(fun, start / scale, bounds=(lower / scale, upper / scale), loss="soft_l1",
                           f_scale=ROBUST_SCALE, method="trf")
    values = result.x * scale
    m, n = result.fun.size - priors, len(names)
    # Gauss-Newton covariance from the (robust-loss-modified) Jacobian, scaled by the residual variance.
    dof = max(m - n, 1)
    sigma2 = 2 * result.cost / dof
    cov = np.linalg.pinv(result.jac.T @ result.jac) * sigma2
    errors = np.sqrt(np.clip(np.diag(cov), 0, None)) * scale
    profile = profile_with(base, names, values)
    return profile, dict(zip(names, values, strict=True)), dict(zip(names, errors, strict=True)), m


def _table(rows: list[PreparedRow], profile: EngineProfile) -> pd.DataFrame:
    records = []
    for block in blocks(rows):
        p = predict_block(block, profile, percentiles=False)
        for i, row in enumerate(block.rows):
            records.append({"index": row.index, "family": row.family, "published": row.published, "group": row.group,
                            "hardware": row.hardware_name, "mode": row.passes.mode,
                            "measured_per_user": row.measured_per_user, "predicted_per_user": float(p["per_user"][i]),
                            "measured_tpot_s": row.measured_tpot_s if math.isfinite(row.measured_tpot_s)
                            else (1 / row.measured_per_user if row.metric == "inverse_tpot" else math.nan),
                            "predicted_tpot_s": float(p["tpot_s"][i]),
                            "measured_ttft_s": row.measured_ttft_s, "predicted_ttft_s": float(p["ttft_s"][i])})
    return pd.DataFrame(records).sort_values("index", kind="stable").reset_index(drop=True)


def leave_one_group_out(rows: list[PreparedRow], base: EngineProfile,
                        fallback_rows: list[PreparedRow] | None = None, *, kernel_prior: bool = True,
                        start_values: dict[str, float] | None = None) -> pd.DataFrame:
    """Each group (source x hardware) predicted by a profile fitted without it.

    Where the family's remaining rows never ran on the group's hardware (so its per-hardware values
    are unknown) or are fewer than its parameters, the group is predicted by a generic fit on
    ``fallback_rows`` without the group, as a user would predict an engine unmeasured on that hardware.
    """
    parts = []
    for group in sorted({r.group for r in rows}):
        inside = [r for r in rows if r.group == group]
        outside = [r for r in rows if r.group != group]
        known = {r.hardware_name for r in outside}
        if not outside or len(outside) <= len(parameter_names(outside)) or inside[0].hardware_name not in known:
            if fallback_rows is None:
                continue
            outside = [r for r in fallback_rows if r.group != group]
        profile = fit_parameters(outside, dataclasses.replace(base, by_hardware={}), kernel_prior=kernel_prior,
                                 start_values=start_values)[0]
        parts.append(_table(inside, profile))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def read_all(paths: str | Path | list) -> pd.DataFrame:
    """One measurement file, or several read one by one and stacked (rows numbered anew; groups stay apart,
    since a group is source x hardware)."""
    if isinstance(paths, str | Path):
        return read_measurements(paths)
    return read_all_frames([read_measurements(p) for p in paths])


def read_all_frames(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Measurement frames stacked (``read_all``), with their skipped-row counts added up."""
    frame = pd.concat(frames, ignore_index=True).fillna("")  # columns one file lacks are empty text
    skipped: dict[str, int] = {}
    for part in frames:
        for why, n in part.attrs.get("skipped", {}).items():
            skipped[why] = skipped.get(why, 0) + n
    frame.attrs["skipped"] = skipped
    return frame


def calibrate(data: str | Path | list | pd.DataFrame, family: str, *, base: EngineProfile | None = None,
              held_out: bool = True, fallback: bool = True, kernel_prior: bool = True) -> Fit:
    """Fit profile ``family`` (``generic``: every row) to a measurement file; optionally leave-one-group-out.

    ``kernel_prior`` False fits seconds per kernel without its prior (``fit_parameters``).
    """
    frame = data if isinstance(data, pd.DataFrame) else read_all(data)
    family = family.strip().lower()
    if family == "paper":
        raise InstanceError("calibrate: the paper profile holds the paper's assumptions and is not fitted")
    if base is None:
        path = ENGINES_DIR / f"{family}.toml"
        base = load_engine(path) if path.is_file() else EngineProfile(name=family)
    rows, _ = prepare(frame, None if family == "generic" else family)
    if not rows:
        raise InstanceError(f"calibrate: no predictable rows of engine family '{family}' in the data")
    profile, values, errors, m = fit_parameters(rows, base, kernel_prior=kernel_prior)
    in_sample = _table(rows, profile)
    outside = None
    if held_out:
        fallback_rows = prepare(frame, None)[0] if fallback and family != "generic" else None
        outside = leave_one_group_out(rows, base, fallback_rows, kernel_prior=kernel_prior, start_values=values)
    return Fit(profile, values, errors, len(rows), m, in_sample, outside, unidentified_parameters(rows), kernel_prior)


def error_stats(table: pd.DataFrame) -> dict[str, float]:
    """Median and p90 |predicted/measured - 1| of per-user speed, TPOT and TTFT (where measured)."""
    stats = {}
    for name in ("per_user", "tpot", "ttft"):
        measured = table[f"measured_{name}" if name == "per_user" else f"measured_{name}_s"].to_numpy(dtype=float)
        predicted = table[f"predicted_{name}" if name == "per_user" else f"predicted_{name}_s"].to_numpy(dtype=float)
        keep = np.isfinite(measured) & np.isfinite(predicted)
        err = np.abs(predicted[keep] / measured[keep] - 1)
        stats[f"{name}_n"] = int(keep.sum())
        stats[f"{name}_median"] = float(np.median(err)) if keep.any() else math.nan
        stats[f"{name}_p90"] = float(np.quantile(err, 0.9)) if keep.any() else math.nan
    return stats


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def profile_toml(fit: Fit, data_name: str) -> str:
    """The profile file: fitted values with their source (data, rows, standard error), the rest carried over."""
    p = fit.profile
    rows = f"{fit.rows} rows"
    source = f"infecon calibrate --engine {p.name} on {data_name} ({rows})"
    lines = [f"# Written by `infecon calibrate --engine {p.name}`; re-run it to refit (tests check it reproduces).",
             f'name = {{ value = "{p.name}", source = "{p.sources.get("name", "infecon")}" }}',
             f'default_mode = {{ value = "{p.default_mode}", source = "{p.sources.get("default_mode", "infecon")}" }}',
             f'chunked_prefill = {{ value = {str(p.chunked_prefill).lower()}, '
             f'source = "{p.sources.get("chunked_prefill", "assumption")}" }}',
             f'chunk_tokens = {{ value = {p.chunk_tokens}, source = "{p.sources.get("chunk_tokens", "assumption")}" }}']
    for name in SHARED_PARAMETERS:
        if name in fit.values:
            lines.append(f'{name} = {{ value = {_fmt(fit.values[name])}, source = "{source}; '
                         f'{_uncertainty(fit, name)}" }}')
        else:
            why = fit.unfitted.get(name, "not fitted")
            lines.append(f'{name} = {{ value = {_fmt(getattr(p, name))}, source = "{why}" }}')
    for name in CARRIED_KEYS:  # pipeline and engine limits: not fitted, carried over with their sources
        if name in p.sources:
            value = getattr(p, name)
            text = str(value).lower() if isinstance(value, bool) else value if isinstance(value, int) else _fmt(value)
            lines.append(f'{name} = {{ value = {text}, source = "{p.sources[name]}" }}')
    for hw, values in p.by_hardware.items():
        lines.append("")
        lines.append(f'[by_hardware."{hw}"]')
        for param, value in values.items():
            key = f"log_factor.{hw}.{param}"
            lines.append(f'{param} = {{ value = {_fmt(value)}, source = "{source}; shared value x exp('
                         f'{_fmt(fit.values[key])} +- {_fmt(fit.errors[key])})" }}')
    lines.append("")
    lines.append("[kernels]")
    for field in dataclasses.fields(p.kernels):
        key = f"kernels.{field.name}"
        lines.append(f'{field.name} = {{ value = {getattr(p.kernels, field.name)}, '
                     f'source = "{p.sources.get(key, KERNEL_COUNT_SOURCE)}" }}')
    return "\n".join(lines) + "\n"


# Profile keys ``calibrate`` does not fit and carries over from the base profile with their sources: how the
# engine runs pipeline stages and its limits (``EngineProfile``), none of which serving_dev.csv measures.
CARRIED_KEYS = ("stage_overhead_share", "memory_fraction", "max_seqs", "max_pp",
                "attention_dp")
REQUEST_SOURCE = "not fitted: no row of this engine measured TTFT in a served mode (closed loop)"
STEP_SOURCE = ("not fitted: the rows run one model, where a fixed cost per step cannot be told from kernels x kernel_s "
               "(kernel_s carries it)")
KERNEL_COUNT_SOURCE = ("assumption: counted from the engines' decoder-layer forward (e.g. vLLM LlamaDecoderLayer: "
                       "input_layernorm, qkv_proj, rotary_emb, attn, o_proj, post_attention_layernorm; LlamaMLP "
                       "gate_up_proj, act_fn, down_proj; DeepseekV2MLAAttention and FusedMoE for MLA and MoE)")


def format_fit(fit: Fit) -> str:
    """Parameters with standard errors, then in-sample and leave-one-group-out errors."""
    lines = [f"engine {fit.profile.name}: {fit.rows} rows, {fit.residual_count} residuals "
             f"(per-user speed, and TTFT where measured)", "parameter                                    value      "
             "std error"]
    for name, value in fit.values.items():
        bound = _at_bound(name, value)
        note = f" (at its {bound} bound)" if bound else ""
        if name == "kernel_s" and fit.kernel_prior and not bound:
            note = f" (prior {KERNEL_PRIOR_S:.0e} s x/÷ 2)"
        lines.append(f"  {name:<42} {value:<10.4g} {fit.errors[name]:.2g}{note}")
    for label, table in (("in-sample", fit.in_sample), ("leave-one-group-out", fit.held_out)):
        if table is None or table.empty:
            lines.append(f"{label}: n/a")
            continue
        s = error_stats(table)
        lines.append(f"{label}: |error| median / p90: per-user {100 * s['per_user_median']:.1f}% / "
                     f"{100 * s['per_user_p90']:.1f}% ({s['per_user_n']} rows); TPOT {_pct(s, 'tpot')}; "
                     f"TTFT {_pct(s, 'ttft')}")
    return "\n".join(lines)


def _at_bound(name: str, value: float) -> str:
    """'lower' or 'upper' where a shared parameter sits on a bound (its standard error then means nothing)."""
    if name not in SHARED_PARAMETERS:
        return ""
    lower, upper = SHARED_PARAMETERS[name][:2]
    near = 1e-3 * (upper - lower)  # the bounded solver stops just inside a bound it is pressed against
    return "lower" if value <= lower + near else "upper" if value >= upper - near else ""


def _uncertainty(fit: Fit, name: str) -> str:
    bound = _at_bound(name, fit.values[name])
    if bound:
        return f"at its {bound} bound: the rows push it there and do not determine it"
    if name == "kernel_s" and fit.kernel_prior:
        return (f"standard error {_fmt(fit.errors[name])}; prior {_fmt(KERNEL_PRIOR_S)} s x/÷ 2 "
                "(Erdil 2025 sec. 4: ~4 us per kernel launch)")
    return f"standard error {_fmt(fit.errors[name])}"


def _pct(s: dict, name: str) -> str:
    if not s[f"{name}_n"]:
        return "not measured"
    return f"{100 * s[f'{name}_median']:.1f}% / {100 * s[f'{name}_p90']:.1f}% ({s[f'{name}_n']} rows)"
