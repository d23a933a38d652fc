"""Measured kernel curves (``instances/kernels/<engine>/<hardware>.toml``, written by scripts/fit_kernel_curves.py).

Why: a built-in hardware's GEMMs reach their top efficiency only past some tokens per step, differently per
engine and precision. ``get_hardware`` attaches each engine's curves to the spec (``HardwareSpec.kernel_curves``);
a hardware file the user gives (``--hardware-file``) and hardware without measured kernels (AMD, TPU, Gaudi)
have none, and keep the constant efficiency.
"""

from __future__ import annotations

from pathlib import Path

from infecon.formulations.errors import InstanceError
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
        if any(v < 0 for v in curves[path.parent.name].values()):
            raise InstanceError(f"{path}: half_tokens must be >= 0")
    return curves
