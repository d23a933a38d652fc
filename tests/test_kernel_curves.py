"""The fitted GEMM curves (instances/kernels/) against the points of their own table that the fit never saw.

Needs the kernels extra (aiconfigurator-core's tables), which CI installs: these tests are not skipped.
"""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import numpy as np
import pytest

from infecon.instances.loader import get_hardware

ROOT = Path(__file__).resolve().parents[1]
CURVE_FILES = sorted((ROOT / "instances" / "kernels").glob("*/*.toml"))


def _script():
    spec = importlib.util.spec_from_file_location("_fit_kernel_curves", ROOT / "scripts" / "fit_kernel_curves.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FIT = _script()


def test_every_system_and_engine_has_curves():
    """8 NVIDIA systems x 3 engines (trtllm, vllm, sglang) that have both a hardware file and GEMM tables (GB300
    NVL72 since issue 17)."""
    assert len(CURVE_FILES) == 24
    assert {p.parent.name for p in CURVE_FILES if p.stem == "gb300_nvl72"} == {"trtllm", "vllm", "sglang"}


@pytest.mark.parametrize("path", CURVE_FILES, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_held_back_points(path):
    """Each curve predicts the GEMMs held back from its fit (one shape in five) to its recorded error, and to a
    median |error| of latency under 20 % (the fits' own medians are 4-19 %: FP8/FP4 kernels vary most by shape)."""
    data = tomllib.loads(path.read_text())
    hw = get_hardware(data["hardware"])
    system = {v: k for k, v in FIT.SYSTEMS.items()}[data["hardware"]]
    for bits, curve in data["gemm"].items():
        table_name = curve["efficiency_max"]["source"].split()[2]  # systems/data/<system>/gemm/<engine>/<v>/...
        dtype = curve["efficiency_max"]["source"].split("gemm_dtype ")[1].split(";")[0]
        points = FIT.load_points(FIT.data_root().parent.parent / table_name, dtype)
        assert table_name.startswith(f"systems/data/{system}/gemm/{data['engine']}/")
        back = points[FIT.held_back(points)]
        assert len(back) == curve["held_back_points"] > 100
        params = [curve[k]["value"] for k in ("efficiency_max", "half_tokens", "bandwidth_share", "fixed_s")]
        predicted = FIT.predict_ms(params, *(back[c].to_numpy(float) for c in ("m", "n", "k")),
                                   hw.peak_flop_per_s(int(bits)), hw.hbm_bandwidth_bytes_per_s, int(bits) / 8)
        error = np.abs(predicted / back["latency"].to_numpy(float) - 1)
        # The file rounds the parameters to 4 significant digits: the median moves by well under 0.5 points.
        assert np.median(error) == pytest.approx(curve["held_back_median_abs_error"], abs=5e-3)
        assert np.median(error) < 0.20
