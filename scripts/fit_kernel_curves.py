"""Fit compact GEMM efficiency curves to aiconfigurator-core's measured kernel tables; write instances/kernels/.

Why: a GEMM of ``m`` tokens reaches its top share of peak FLOP/s only once ``m`` fills the tensor-core tiles
and the GPU's waves; at decode batch sizes it runs far below it. The measured tables
(``systems/data/<system>/gemm/<engine>/<version>/gemm_perf.parquet``: latency in ms by m, n, k and dtype)
show it. Per system x engine x precision we fit, on log latency with a robust loss, the roofline

    t(m, n, k) = max(2 n k (m + m_half) / (peak e_max),  (n k b_w + 2 m (n + k)) / (hbm beta)) + t0

four parameters, each physical: ``e_max`` the top share of the datasheet peak, ``m_half`` the tokens at which
the GEMM reaches half of it (achieved efficiency e_max m / (m + m_half)), ``beta`` the share of HBM bandwidth
a weight-bound GEMM streams at, ``t0`` a launch and tail time. The compute term is affine in the tokens,
which is what ``perf.StepStructure`` carries (``compute_fixed_s``); the runtime uses ``m_half`` (the engine
profile's calibrated ``flop_efficiency`` stays the asymptote, as it absorbs what is not a GEMM). Peaks and
bandwidths are infecon's hardware files'. Shapes with n or k below 1,024 (not a model's projection) are left
out. One point in five (a hash of m, n, k) is held back; the file stores the fit's and the held-back median
and p90 |error| of latency, and ``tests/test_kernel_curves.py`` re-checks the held-back points.

Decode and prefill attention, the collectives within a node and the MoE expert GEMMs are fitted too, into the
same files (``[attention.decode]``, ``[attention.prefill]``, ``[collective.<op>]``, ``[moe.<bits>]``; forms in
``scripts/kernel_fits.py``).

    pip install '.[kernels]' && python scripts/fit_kernel_curves.py [--out instances/kernels]
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infecon.instances.loader import get_hardware  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
import kernel_fits  # noqa: E402

PACKAGE = "aiconfigurator-core"
# aiconfigurator system -> infecon hardware file (same GPU and node)
SYSTEMS = {"h100_sxm": "h100_sxm", "h200_sxm": "h200", "b200_sxm": "b200", "b300_sxm": "b300",
           "gb200": "gb200_nvl72", "gb300": "gb300_nvl72", "a100_sxm": "a100_sxm", "l40s": "l40s"}
ENGINES = ("trtllm", "vllm", "sglang")
DTYPES = {"bfloat16": 16, "fp8": 8, "nvfp4": 4}  # per-tensor FP8; block-scaled fp8_block is a separate kernel
MIN_WIDTH = 1024
MAX_POINTS = 20000  # points per fit (a deterministic sample of the table's model-sized shapes)
HOLD_BACK = 5  # one point in five is held back


def data_root() -> Path:
    return Path(str(files("aiconfigurator_core") / "systems" / "data"))


def versions_newest_first(folder: Path, table: str = "gemm_perf.parquet") -> list[str]:
    """The version folders that have ``table``, newest first (numeric order of their dotted parts)."""
    versions = [p.name for p in folder.iterdir() if (p / table).is_file()] if folder.is_dir() else []

    def key(name: str):
        return [int(part) if part.isdigit() else -1 for part in name.replace("rc", ".").replace("post", ".").split(".")]

    return sorted(versions, key=key, reverse=True)


def latest_version(folder: Path, table: str = "gemm_perf.parquet") -> str | None:
    """The newest version folder that has ``table``."""
    versions = versions_newest_first(folder, table)
    return versions[0] if versions else None


def held_back(frame: pd.DataFrame) -> np.ndarray:
    """Whether each point is held back: a fixed hash of its shape, so the split never changes."""
    h = (frame["m"].to_numpy(np.int64) * 73856093) ^ (frame["n"].to_numpy(np.int64) * 19349663) ^ (
        frame["k"].to_numpy(np.int64) * 83492791)
    return (h % HOLD_BACK) == 0


def predict_ms(params, m, n, k, peak_flop_per_s: float, hbm_bytes_per_s: float, weight_bytes: float) -> np.ndarray:
    """The roofline of the module docstring, in ms. ``params`` = (e_max, m_half, beta, t0_s)."""
    e_max, m_half, beta, t0 = params
    compute = 2.0 * n * k * (m + m_half) / (peak_flop_per_s * e_max)
    memory = (n * k * weight_bytes + 2.0 * m * (n + k)) / (hbm_bytes_per_s * beta)
    return (np.maximum(compute, memory) + t0) * 1e3


def load_points(path: Path, dtype: str) -> pd.DataFrame:
    frame = pd.read_parquet(path, columns=["gemm_dtype", "m", "n", "k", "latency"])
    frame = frame[(frame["gemm_dtype"] == dtype) & (frame["n"] >= MIN_WIDTH) & (frame["k"] >= MIN_WIDTH)
                  & (frame["latency"] > 0)]
    return frame.drop_duplicates(["m", "n", "k"]).reset_index(drop=True)


def fit(points: pd.DataFrame, peak: float, hbm: float, bits: int) -> tuple[np.ndarray, dict]:
    """(e_max, m_half, beta, t0_s) and the |error| statistics on the fitted and the held-back points."""
    back = held_back(points)
    train = points[~back]
    if len(train) > MAX_POINTS:
        train = train.iloc[np.linspace(0, len(train) - 1, MAX_POINTS).astype(int)]
    m, n, k, t = (train[c].to_numpy(float) for c in ("m", "n", "k", "latency"))

    def residuals(z):
        return np.log(predict_ms(z, m, n, k, peak, hbm, bits / 8) / t)

    bounds = ([0.05, 0.0, 0.05, 0.0], [1.0, 8192, 1.0, 1e-4])
    result = least_squares(residuals, x0=[0.7, 64.0, 0.7, 5e-6], bounds=bounds,
                           x_scale=[0.1, 32.0, 0.1, 1e-6], loss="soft_l1", f_scale=0.1)
    stats = {}
    for label, part in (("fit", points[~back]), ("held_back", points[back])):
        pred = predict_ms(result.x, *(part[c].to_numpy(float) for c in ("m", "n", "k")), peak, hbm, bits / 8)
        err = np.abs(pred / part["latency"].to_numpy(float) - 1)
        stats[f"{label}_points"] = len(part)
        stats[f"{label}_median_abs_error"] = float(np.median(err))
        stats[f"{label}_p90_abs_error"] = float(np.quantile(err, 0.9))
    return result.x, stats


def section_toml(name: str, table: str, params: dict[str, tuple[float, str]], stats: dict) -> list[str]:
    """One ``[name]`` table: each parameter ``{ value, source }`` (package, version, table, meaning), then the
    fit's and the held-back points' median and p90 |error| of latency."""
    source = f"{PACKAGE} {version(PACKAGE)} {table}; fit on {stats['fit_points']} points"
    lines = [f"[{name}]"]
    lines += [f'{key} = {{ value = {value:.4g}, source = "{source}: {meaning}" }}'
              for key, (value, meaning) in params.items()]
    lines += [f"{key} = {stats[key]:.4f}" if isinstance(stats[key], float) else f"{key} = {stats[key]}"
              for key in ("fit_median_abs_error", "fit_p90_abs_error", "held_back_points",
                          "held_back_median_abs_error", "held_back_p90_abs_error")]
    return [*lines, ""]


def attention_and_collective_sections(root: Path, system: str, engine: str, hw) -> list[str]:
    """The ``[attention.*]`` and ``[collective.*]`` tables of one system x engine (forms: scripts/kernel_fits.py)."""
    lines: list[str] = []
    hbm, peak, link = hw.hbm_bandwidth_bytes_per_s, hw.peak_flop_per_s(16), hw.intra_node_bandwidth_bytes_per_s
    v = latest_version(root / system / "attention" / engine, "generation_attention_perf.parquet")
    if v is not None:
        table = f"systems/data/{system}/attention/{engine}/{v}/generation_attention_perf.parquet"
        x, stats = kernel_fits.fit_decode(kernel_fits.decode_points(root.parent.parent / table), hbm, peak)
        lines += section_toml("attention.decode", table, {
            "bandwidth_share": (x[0], f"share of HBM bandwidth {hbm:.3g} B/s the KV cache streams at"),
            "flop_share": (x[1], f"share of the 16-bit peak {peak:.3g} FLOP/s of the query heads' arithmetic"),
            "row_s": (x[2], "time per (sequence, query head) row"),
            "fixed_s": (x[3], "launch and tail time")}, stats)
        print(f"{system:10} {engine:7} decode attention  {x} |error| {stats['held_back_median_abs_error']:.3f}")
    v = latest_version(root / system / "attention" / engine, "context_attention_perf.parquet")
    if v is not None:
        table = f"systems/data/{system}/attention/{engine}/{v}/context_attention_perf.parquet"
        x, stats = kernel_fits.fit_prefill(kernel_fits.prefill_points(root.parent.parent / table), peak)
        lines += section_toml("attention.prefill", table, {
            "flop_share": (x[0], f"top share of the 16-bit peak {peak:.3g} FLOP/s of causal prompt attention"),
            "half_tokens": (x[1], "prompt tokens at which it reaches half of flop_share"),
            "fixed_s": (x[2], "launch and tail time")}, stats)
        print(f"{system:10} {engine:7} prefill attention {x} |error| {stats['held_back_median_abs_error']:.3f}")
    nccl = latest_version(root / system / "comm" / "nccl", "nccl_perf.parquet")
    custom = latest_version(root / system / "comm" / engine, "custom_allreduce_perf.parquet")
    for op in kernel_fits.COLLECTIVES:
        if op == "all_reduce" and custom is not None:  # the engine's own all-reduce kernel, as it serves TP
            table = f"systems/data/{system}/comm/{engine}/{custom}/custom_allreduce_perf.parquet"
        elif nccl is not None:
            table = f"systems/data/{system}/comm/nccl/{nccl}/nccl_perf.parquet"
        else:
            continue
        points = kernel_fits.collective_points(root.parent.parent / table, op)
        if len(points) < 20:
            continue
        x, stats = kernel_fits.fit_collective(points, op, link)
        groups = ", ".join(str(n) for n in sorted(points["num_gpus"].unique()))
        lines += section_toml(f"collective.{op}", f"{table} op_name {op} (groups of {groups} GPUs in a node)", {
            "latency_s": (x[0], "latency of a call"),
            "hop_latency_s": (x[1], "latency per GPU in the group beyond the first"),
            "bandwidth_share": (x[2], f"share of the intra-node link {link:.3g} B/s per direction the bus bytes "
                                      "move at")}, stats)
        print(f"{system:10} {engine:7} {op:15}   {x} |error| {stats['held_back_median_abs_error']:.3f}")
    versions = versions_newest_first(root / system / "moe" / engine, "moe_perf.parquet")
    for dtype, bits in kernel_fits.MOE_DTYPES.items():
        # the newest version that measured this precision (a release candidate may cover a few shapes only)
        found = ((f"systems/data/{system}/moe/{engine}/{v}/moe_perf.parquet", None) for v in versions)
        found = ((t, kernel_fits.moe_points(root.parent.parent / t, dtype)) for t, _ in found)
        table, points = next(((t, p) for t, p in found if len(p) >= 1000), (None, None))
        if table is None or bits not in hw.flop_per_s_by_bits:
            continue
        peak_bits = hw.peak_flop_per_s(bits)
        x, stats = kernel_fits.fit_moe(points, peak_bits, hbm, bits)
        lines += section_toml(f"moe.{bits}", f"{table} moe_dtype {dtype} distribution balanced", {
            "efficiency_max": (x[0], f"top share of the datasheet peak {peak_bits:.3g} FLOP/s of an expert GEMM"),
            "half_tokens": (x[1], "tokens per expert at half of efficiency_max"),
            "bandwidth_share": (x[2], f"share of HBM bandwidth {hbm:.3g} B/s the touched experts' weights stream at"),
            "fixed_s": (x[3], "launch, routing and tail time")}, stats)
        print(f"{system:10} {engine:7} moe {dtype:11}   {x} |error| {stats['held_back_median_abs_error']:.3f}")
    return lines


def curve_toml(system: str, hardware: str, engine: str, engine_version: str, curves: list[dict],
               extra: list[str] = ()) -> str:
    pkg = f"{PACKAGE} {version(PACKAGE)}"
    lines = [f"# Kernel curves (GEMM, attention, collectives) of {engine} on {system} (infecon hardware "
             f"'{hardware}'), written by",
             "# scripts/fit_kernel_curves.py; re-run it to refit. Form and parameters: that script's docstring.",
             f'hardware = "{hardware}"', f'engine = "{engine}"', ""]
    for c in curves:
        table = f"systems/data/{system}/gemm/{engine}/{engine_version}/gemm_perf.parquet gemm_dtype {c['dtype']}"
        source = f"{pkg} {table}; fit on {c['fit_points']} points"
        lines += [f"[gemm.{c['bits']}]",
                  f'efficiency_max = {{ value = {c["e_max"]:.4f}, source = "{source}: top share of the datasheet '
                  f'peak {c["peak"]:.3g} FLOP/s" }}',
                  f'half_tokens = {{ value = {c["m_half"]:.1f}, source = "{source}: tokens per GEMM at half '
                  'of efficiency_max" }',
                  f'bandwidth_share = {{ value = {c["beta"]:.4f}, source = "{source}: share of HBM bandwidth '
                  f'{c["hbm"]:.3g} B/s of a weight-bound GEMM" }}',
                  f'fixed_s = {{ value = {c["t0"]:.3g}, source = "{source}: launch and tail time" }}',
                  f'fit_median_abs_error = {c["fit_median_abs_error"]:.4f}',
                  f'fit_p90_abs_error = {c["fit_p90_abs_error"]:.4f}',
                  f'held_back_points = {c["held_back_points"]}',
                  f'held_back_median_abs_error = {c["held_back_median_abs_error"]:.4f}',
                  f'held_back_p90_abs_error = {c["held_back_p90_abs_error"]:.4f}', ""]
    return "\n".join([*lines, *extra])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "instances" / "kernels"), help="folder for <engine>/<hw>.toml")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated aiconfigurator systems")
    args = parser.parse_args(argv)
    root = data_root()
    for system in args.systems.split(","):
        hardware = SYSTEMS[system]
        hw = get_hardware(hardware)
        for engine in ENGINES:
            engine_version = latest_version(root / system / "gemm" / engine)
            if engine_version is None:
                continue
            path = root / system / "gemm" / engine / engine_version / "gemm_perf.parquet"
            curves = []
            for dtype, bits in DTYPES.items():
                points = load_points(path, dtype)
                if len(points) < 100 or bits not in hw.flop_per_s_by_bits:
                    continue
                peak, bandwidth = hw.peak_flop_per_s(bits), hw.hbm_bandwidth_bytes_per_s
                params, stats = fit(points, peak, bandwidth, bits)
                curves.append({"dtype": dtype, "bits": bits, "e_max": params[0], "m_half": params[1],
                               "beta": params[2], "t0": params[3], "peak": peak, "hbm": bandwidth, **stats})
                print(f"{system:10} {engine:7} {engine_version:10} {dtype:9} e_max {params[0]:.3f} m_half "
                      f"{params[1]:7.1f} beta {params[2]:.3f} t0 {params[3] * 1e6:5.1f} us | |error| fit "
                      f"{100 * stats['fit_median_abs_error']:.1f}/{100 * stats['fit_p90_abs_error']:.1f}% held back "
                      f"{100 * stats['held_back_median_abs_error']:.1f}/{100 * stats['held_back_p90_abs_error']:.1f}%")
            if curves:
                out = Path(args.out) / engine / f"{hardware}.toml"
                out.parent.mkdir(parents=True, exist_ok=True)
                extra = attention_and_collective_sections(root, system, engine, hw)
                out.write_text(curve_toml(system, hardware, engine, engine_version, curves, extra))
    return 0


if __name__ == "__main__":
    sys.exit(main())
