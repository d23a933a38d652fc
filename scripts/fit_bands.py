"""Fit the error-band table (``instances/bands/``) from leave-one-group-out residuals on measured data.

Re-run it whenever the engine profiles, the physics or the data change (the residuals move with them):

    python scripts/fit_bands.py [--data ../shared/measured/serving_dev.csv] [--out instances/bands]

What it computes (``formulations/bands.py`` applies the result):
1. Per engine profile (trtllm, with the NIM rows it runs; vllm; sglang; generic over every row), the
   quantiles of r = log(measured / predicted) per-user speed where each group (source x hardware) is
   predicted by a fit that never saw it (``calibration.calibrate``, as ``scripts/bench_fidelity.py``).
   ``paper`` has nothing fitted, so its residuals on every row are already out of sample.
2. The widths added outside the measured domain, each from an experiment on the generic profile whose
   excess spread over the leave-one-group-out residuals it measures: sigma_x^2 = s_x^2 - s_0^2, where
   s^2 = (robust sigma)^2 + (median shift)^2, so a systematic bias counts as error:
   - hardware: each hardware held out (fit on the others; its per-hardware factors unknown);
   - architecture: each model architecture (attention kind x dense/MoE) held out;
   - batch_per_doubling: rows above batch 64 predicted by a fit on rows at or below it, excess spread per
     log2(batch / largest batch the fit saw on that engine and hardware), root mean square;
   - pp and attention_dp: no measured row runs them, so they take the largest of the measured widths (a rule,
     not a fit; a PP measurement file with these columns, given as --data, would give them data).
3. The coverage of the band on held-out groups: each group's residuals against a band fitted on the other
   groups' residuals (widened where the group leaves their domain), by engine.

Writes ``bands.toml`` (every value with its source) and ``residuals.csv`` (every residual it used).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infecon.formulations.bands import (  # noqa: E402
    LEVELS,
    BandTable,
    EngineBand,
    Widening,
    architecture,
    band_factors,
    fit_quantiles,
    regime,
    robust_sigma,
)
from infecon.instances.engines import ENGINES_DIR, load_engine  # noqa: E402
from infecon.instances.loader import get_hardware, get_model  # noqa: E402
from infecon.solver import calibration  # noqa: E402
from infecon.solver.validation import predict_prepared, read_measurements  # noqa: E402

# The development data beside the checkout (../shared), or beside a worktree's parent (../../shared).
DEFAULT_DATA = next((d / "shared" / "measured" / "serving_dev.csv" for d in (ROOT.parent, ROOT.parent.parent)
                     if (d / "shared" / "measured" / "serving_dev.csv").is_file()),
                    ROOT.parent / "shared" / "measured" / "serving_dev.csv")
FAMILIES = ("trtllm", "vllm", "sglang")
BATCH_CUT = 64  # the batch experiment fits on rows at or below it and predicts the rows above


def row_domain(frame: pd.DataFrame) -> pd.DataFrame:
    """Per row: hardware name, architecture, per-instance batch, PP, attention DP (what ``bands.regime`` reads)."""
    records = []
    for i, r in frame.iterrows():
        try:
            hw, model = get_hardware(r["hardware"]).name, architecture(get_model(r["model"]))
        except Exception:
            hw, model = r["hardware"], "unknown"
        records.append({"index": int(i), "line": int(i) + 2, "hardware_name": hw, "architecture": model,
                        "batch": int(r["concurrency"]) // int(r["instances"]), "pp": int(r["pp"]),
                        "attention_dp": str(r.get("attention_dp", "")).strip().lower() in ("true", "1", "yes")})
    return pd.DataFrame(records).set_index("index")


def residual_frame(table: pd.DataFrame, frame: pd.DataFrame, experiment: str, band: str) -> pd.DataFrame:
    out = table[["index", "group", "measured_per_user", "predicted_per_user"]].copy()
    out["log_residual"] = np.log(out["measured_per_user"] / out["predicted_per_user"])
    out["experiment"], out["band"] = experiment, band
    for column in ("model", "hardware", "engine", "benchmark"):
        out[column] = frame.loc[out["index"], column].to_numpy()
    return out


def logo_residuals(frame: pd.DataFrame) -> pd.DataFrame:
    """Leave-one-group-out residuals of each family's profile, of generic, and the paper's (unfitted) residuals."""
    parts = []
    for family in FAMILIES:
        rows, _ = calibration.prepare(frame, family)
        if rows:
            fit = calibration.calibrate(frame, family)
            parts.append(residual_frame(fit.held_out, frame, "leave_one_group_out", family))
    generic = calibration.calibrate(frame, "generic")
    parts.append(residual_frame(generic.held_out, frame, "leave_one_group_out", "generic"))
    paper = load_engine(ENGINES_DIR / "paper.toml")
    rows, _ = calibration.prepare(frame, None)
    parts.append(residual_frame(_predict(rows, paper), frame, "unfitted", "paper"))
    return pd.concat(parts, ignore_index=True)


def _predict(rows, profile) -> pd.DataFrame:
    records = [{"index": r.index, "group": r.group, "measured_per_user": r.measured_per_user,
                "predicted_per_user": predict_prepared(r, profile)["per_user"]} for r in rows]
    return pd.DataFrame(records)


def held_out_by(frame: pd.DataFrame, key, experiment: str) -> pd.DataFrame:
    """The generic profile fitted without each value of ``key(row)`` and predicting the rows with it."""
    rows, _ = calibration.prepare(frame, None)
    base = dataclasses.replace(load_engine(ENGINES_DIR / "generic.toml"), by_hardware={})
    parts = []
    for value in sorted({key(r) for r in rows}):
        inside = [r for r in rows if key(r) == value]
        outside = [r for r in rows if key(r) != value]
        profile = calibration.fit_parameters(outside, base)[0]
        parts.append(residual_frame(_predict(inside, profile), frame, experiment, "generic"))
    return pd.concat(parts, ignore_index=True)


def batch_experiment(frame: pd.DataFrame, domain: pd.DataFrame) -> pd.DataFrame:
    """Rows above ``BATCH_CUT`` predicted by a generic fit on the rows at or below it, with their doublings past
    the largest batch the fit saw on the same engine family and hardware (else anywhere)."""
    rows, _ = calibration.prepare(frame, None)
    base = dataclasses.replace(load_engine(ENGINES_DIR / "generic.toml"), by_hardware={})
    low = [r for r in rows if domain.loc[r.index, "batch"] <= BATCH_CUT]
    high = [r for r in rows if domain.loc[r.index, "batch"] > BATCH_CUT]
    profile = calibration.fit_parameters(low, base)[0]
    out = residual_frame(_predict(high, profile), frame, "leave_high_batch_out", "generic")
    seen = {}
    for r in low:
        key = (r.family, r.hardware_name)
        seen[key] = max(seen.get(key, 0), int(domain.loc[r.index, "batch"]))
    largest = max(seen.values())
    by_index = {r.index: r for r in high}
    out["doublings"] = [math.log2(domain.loc[i, "batch"] / seen.get((by_index[i].family, by_index[i].hardware_name),
                                                                     largest)) for i in out["index"]]
    return out


def spread2(residuals: np.ndarray, center: float) -> float:
    """Robust variance with the median's shift from ``center`` counted as error."""
    return robust_sigma(residuals) ** 2 + (float(np.median(residuals)) - center) ** 2


BOOTSTRAP = 1000  # resamples for the widths' upper bounds
WIDTH_QUANTILE = 0.8  # a width is the 80th percentile of its bootstrap: what the data cannot rule out


def _excess(r: np.ndarray, r0: np.ndarray, center: float, d2: float = 1.0) -> float:
    return math.sqrt(max(0.0, spread2(r, center) - spread2(r0, center)) / d2)


def _bounded(r: np.ndarray, r0: np.ndarray, center: float, d: np.ndarray | None = None) -> tuple[float, float]:
    """(point estimate, bootstrap upper bound) of a width: rows of the experiment and base rows resampled."""
    rng = np.random.default_rng(0)
    d = np.ones(len(r)) if d is None else d
    point = _excess(r, r0, center, float(np.mean(d ** 2)))
    samples = []
    for _ in range(BOOTSTRAP):
        pick, pick0 = rng.integers(0, len(r), len(r)), rng.integers(0, len(r0), len(r0))
        samples.append(_excess(r[pick], r0[pick0], center, max(float(np.mean(d[pick] ** 2)), 1e-9)))
    return point, float(np.quantile(samples, WIDTH_QUANTILE))


def widening(base: pd.DataFrame, hardware: pd.DataFrame, arch: pd.DataFrame, batch: pd.DataFrame
             ) -> tuple[Widening, dict[str, str]]:
    """The widths (``Widening``) and the source of each: the excess spread of each experiment over the base,
    sigma_x^2 = s_x^2 - s_0^2, at the 80th percentile of its bootstrap (its point estimate in the source)."""
    r0 = base["log_residual"].to_numpy()
    center = float(np.median(r0))
    hw = _bounded(hardware["log_residual"].to_numpy(), r0, center)
    ar = _bounded(arch["log_residual"].to_numpy(), r0, center)
    d = batch["doublings"].to_numpy()
    bt = _bounded(batch["log_residual"].to_numpy(), r0, center, d)
    unmeasured = max(hw[1], ar[1])
    base_text = (f"over the generic profile's leave-one-group-out residuals ({len(r0)} rows, sigma "
                 f"{math.sqrt(spread2(r0, center)):.3f}); 80th percentile of {BOOTSTRAP} bootstrap resamples")

    def text(what: str, width: tuple[float, float]) -> str:
        return f"scripts/fit_bands.py: {what}, excess spread {base_text} (point estimate {width[0]:.3f})"

    sources = {
        "hardware": text(f"leave-one-hardware-out generic fits ({len(hardware)} rows)", hw),
        "architecture": text(f"leave-one-architecture-out generic fits ({len(arch)} rows)", ar),
        "batch_per_doubling": text(f"{len(batch)} rows above batch {BATCH_CUT} predicted by a generic fit on the rows "
                                   f"at or below it (rms {math.sqrt(float(np.mean(d ** 2))):.2f} doublings past "
                                   "measured), per doubling", bt),
        "pp": "rule (scripts/fit_bands.py): no measured row runs PP > 1, so PP takes the largest measured "
              "extrapolation width (hardware, architecture)",
        "attention_dp": "rule (scripts/fit_bands.py): no measured row runs attention data-parallel, so it takes the "
                        "largest measured extrapolation width (hardware, architecture)",
    }
    return Widening(hw[1], ar[1], unmeasured, unmeasured, bt[1]), sources


def engine_band(name: str, part: pd.DataFrame, domain: pd.DataFrame) -> EngineBand:
    mine = domain.loc[part["index"]]
    return EngineBand(name, len(part), fit_quantiles(part["log_residual"].to_numpy()),
                      tuple(sorted(set(mine["hardware_name"]))), tuple(sorted(set(mine["architecture"]))),
                      int(mine["batch"].max()), int(mine["pp"].max()), bool(mine["attention_dp"].any()))


def held_out_coverage(residuals: pd.DataFrame, domain: pd.DataFrame, width: Widening) -> pd.DataFrame:
    """Per engine band: the share of each group's residuals inside a band fitted on the other groups'."""
    records = []
    for name, part in residuals.groupby("band"):
        inside = []
        for group, rows in part.groupby("group"):
            rest = part[part["group"] != group]
            if len(rest) < 2:
                continue
            table = BandTable({name: engine_band(name, rest, domain)}, width, name)
            for _, row in rows.iterrows():
                d = domain.loc[row["index"]]
                rg = regime(table, name, d["hardware_name"], d["architecture"], pp=d["pp"], batch=d["batch"],
                            attention_dp=d["attention_dp"])
                low, high = band_factors(rg)
                ratio = row["measured_per_user"] / row["predicted_per_user"]
                inside.append(bool(low[0] <= ratio <= high[0]))
        records.append({"band": name, "rows": len(inside), "coverage": float(np.mean(inside)) if inside else math.nan})
    return pd.DataFrame(records)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _entry(key: str, value, source: str) -> str:
    return f'{key} = {{ value = {_toml_value(value)}, source = "{source}" }}'


def write_table(out: Path, data_name: str, n_rows: int, bands: dict[str, EngineBand], width: Widening,
                sources: dict[str, str]) -> Path:
    lines = ["# Written by scripts/fit_bands.py; re-run it after the engine profiles, the physics or the data change.",
             "# Quantiles are of log(measured / predicted) per-user tokens/s at levels "
             f"{LEVELS[0]}, {LEVELS[1]}, ..., {LEVELS[-1]}; formulations/bands.py applies them.",
             _entry("data", f"{data_name} ({n_rows} rows)", "the measurement file the residuals come from"),
             _entry("fallback", "generic", "the band of an engine profile this table does not know"), "",
             "[widening]"]
    for field in dataclasses.fields(width):
        lines.append(_entry(field.name, getattr(width, field.name), sources[field.name]))
    for name, b in bands.items():
        how = ("the paper profile predicting every row (nothing fitted, so out of sample)" if name == "paper" else
               f"leave-one-group-out residuals of the {name} profile (group = source x hardware)")
        rows = f"residuals.csv rows with band = {name}"
        lines += ["", f"[engine.{name}]",
                  _entry("rows", b.rows, f"{rows}: {how}"),
                  _entry("quantiles", list(b.quantiles), f"scripts/fit_bands.py: numpy quantiles of {rows}"),
                  _entry("hardware", list(b.hardware), f"the hardware of {rows}"),
                  _entry("architectures", list(b.architectures), f"the model architectures of {rows}"),
                  _entry("batch_max", b.batch_max, f"the largest per-instance batch of {rows}"),
                  _entry("pp_max", b.pp_max, f"the largest PP of {rows}"),
                  _entry("attention_dp", b.attention_dp, f"whether any of {rows} ran attention data-parallel")]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bands.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="measurement CSV (default: the development data)")
    parser.add_argument("--out", default=str(ROOT / "instances" / "bands"), help="folder for bands.toml, residuals.csv")
    args = parser.parse_args(argv)
    frame = read_measurements(args.data)
    domain = row_domain(frame)
    logo = logo_residuals(frame)
    arch = held_out_by(frame, lambda r: architecture(r.passes.model), "leave_one_architecture_out")
    hw = held_out_by(frame, lambda r: r.hardware_name, "leave_one_hardware_out")
    batch = batch_experiment(frame, domain)
    width, sources = widening(logo[logo["band"] == "generic"], hw, arch, batch)
    bands = {name: engine_band(name, logo[logo["band"] == name], domain)
             for name in (*FAMILIES, "generic", "paper") if (logo["band"] == name).any()}
    out = Path(args.out)
    path = write_table(out, Path(args.data).name, len(frame), bands, width, sources)
    everything = pd.concat([logo, arch, hw, batch], ignore_index=True)
    everything.insert(0, "line", everything["index"] + 2)
    everything["batch"] = domain.loc[everything["index"], "batch"].to_numpy()
    everything.drop(columns="index").to_csv(out / "residuals.csv", index=False, float_format="%.6g")
    pd.set_option("display.width", 200)
    print(f"wrote {path} and {out / 'residuals.csv'} from {len(frame)} rows of {args.data}")
    print("80 % band by engine (speed factor measured/predicted at the 10th and 90th percentiles, in-domain):")
    for name, b in bands.items():
        q10, q50, q90 = (float(np.interp(p, LEVELS, b.quantiles)) for p in (0.1, 0.5, 0.9))
        print(f"  {name:<8} {b.rows:>3} rows: x{math.exp(q10):.3f} .. x{math.exp(q90):.3f} "
              f"(median x{math.exp(q50):.3f})")
    print("widening (log-normal sigma added in quadrature): " + ", ".join(
        f"{f.name} {getattr(width, f.name):.3f}" for f in dataclasses.fields(width)))
    print("coverage of held-out groups (band fitted on the other groups):")
    print(held_out_coverage(logo, domain, width).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
