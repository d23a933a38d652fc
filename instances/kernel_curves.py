"""Measured kernel curves (``instances/kernels/<engine>/<hardware>.toml``, written by scripts/fit_kernel_curves.py).

Why: a built-in hardware's GEMMs reach their top efficiency only past some tokens per step, differently per
engine and precision. ``get_hardware`` attaches each engine's curves to the spec (``HardwareSpec.kernel_curves``);
a hardware file the user gives (``--hardware-file``) and hardware without measured kernels (AMD, TPU, Gaudi)
have none, and keep the constant efficiency. The same files carry decode attention's and the in-node
collectives' curves (``measured_kernels``, ``HardwareSpec.measured_kernels``).
"""

from __future__ import annotations

from pathlib import Path

from infecon.formulations.errors import InstanceError
from infecon.formulations.specs import CollectiveCurve, MeasuredKernels
from infecon.instances.limits import check_field
from infecon.instances.loader import read_toml

KERNELS_DIR = Path(__file__).resolve().parent / "kernels"


def gemm_half_tokens(hardware_stem: str, directory: Path = KERNELS_DIR) -> dict[str, dict[int, float]]:
    """{engine: {weight bits: tokens at which a GEMM reaches half its top efficiency}} for one hardware file."""
    curves: dict[str, dict[int, float]] = {}
    for path in sorted(directory.glob(f"*/{hardware_stem}.toml")):
        data = read_toml(path)
        try:
            curves[path.parent.name] = {int(bits): float(c["half_tokens"]["value"])
                                        for bits, c in data.get("gemm", {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise InstanceError(f"{path}: [gemm.<bits>] half_tokens must be {{ value = number }} ({exc})") from None
        for bits, half in curves[path.parent.name].items():
            check_field("gemm_half_tokens", half, label=f"'gemm.{bits}.half_tokens'", where=str(path))
    return curves


# The files' collective names -> the step model's kinds (perf._DATA_COPIES); all-gather and reduce-scatter are
# fitted too but the step model has no such call.
COLLECTIVE_KINDS = {"all_reduce": "all_reduce", "alltoall": "all_to_all"}


def _value(path: Path, section: str, data: dict, key: str) -> float:
    try:
        value = float(data[key]["value"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InstanceError(f"{path}: [{section}] {key} must be {{ value = number }} ({exc})") from None
    if not value >= 0:
        raise InstanceError(f"{path}: [{section}] {key} must be >= 0, got {value}")
    return value


def measured_kernels(hardware_stem: str, directory: Path = KERNELS_DIR,
                     collectives: bool = False) -> dict[str, MeasuredKernels]:
    """{engine: decode attention's KV stream ratio (and, with ``collectives``, the in-node collective curves)}.

    The ratio is the 16-bit weight-bound GEMMs' share of HBM bandwidth over decode attention's (both
    measured on the engine's kernels); an engine file without both keeps 1. The collective curves are
    fitted and shipped but not attached by default: with them in force the profiles refitted on the silicon
    sample were worse (median per-user speed and TPOT |error| 12 -> 13 %, TTFT p90 101 -> 109 %;
    scripts/bench_fidelity.py --no-held-out), so built-in hardware keeps NCCL's published latencies.
    """
    kernels: dict[str, MeasuredKernels] = {}
    for path in sorted(directory.glob(f"*/{hardware_stem}.toml")):
        data = read_toml(path)
        ratio = 1.0
        decode, gemm = data.get("attention", {}).get("decode"), data.get("gemm", {}).get("16")
        if decode is not None and gemm is not None:
            attention_share = _value(path, "attention.decode", decode, "bandwidth_share")
            gemm_share = _value(path, "gemm.16", gemm, "bandwidth_share")
            if attention_share <= 0:
                raise InstanceError(f"{path}: [attention.decode] bandwidth_share must be > 0")
            ratio = gemm_share / attention_share
        curves = {}
        for name, kind in COLLECTIVE_KINDS.items() if collectives else ():
            curve = data.get("collective", {}).get(name)
            if curve is None:
                continue
            section = f"collective.{name}"
            share = _value(path, section, curve, "bandwidth_share")
            if share <= 0:
                raise InstanceError(f"{path}: [{section}] bandwidth_share must be > 0")
            curves[kind] = CollectiveCurve(_value(path, section, curve, "latency_s"),
                                                _value(path, section, curve, "hop_latency_s"), share)
        kernels[path.parent.name] = MeasuredKernels(ratio, curves)
    return kernels
