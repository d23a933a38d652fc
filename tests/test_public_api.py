"""``import infecon``: the public API under one name, the same objects as the implementation's."""

import tomllib
from pathlib import Path

import pandas as pd
import pytest

import infecon
from infecon.solver import api

ROOT = Path(__file__).resolve().parents[1]


def test_every_public_name_exists():
    """Each name in ``infecon.__all__`` is importable from ``infecon``."""
    missing = [name for name in infecon.__all__ if not hasattr(infecon, name)]
    assert missing == []


def test_same_functions_as_solver_api():
    """The re-exports are the implementation's own functions, not copies that could drift."""
    for name in ("frontier", "explain", "cheapest_at_speed", "fastest_within_cost", "build_problem"):
        assert getattr(infecon, name) is getattr(api, name)


def test_frontier_and_query():
    """infecon.frontier returns a Frontier whose cheapest point at >= 100 tok/s is what cheapest_at_speed finds."""
    front = infecon.frontier("llama-3-8b", "h100", max_gpus=8)
    assert isinstance(front, infecon.Frontier) and isinstance(front.points, pd.DataFrame)
    row = infecon.cheapest_at_speed("llama-3-8b", "h100", 100, max_gpus=8).points
    fast = front.points[front.points["tokens_per_second"] >= 100]
    assert row["usd_per_million_tokens"].iloc[0] == pytest.approx(fast["usd_per_million_tokens"].min(), rel=1e-12)


def test_errors_are_catchable_by_base_class():
    """Bad input raises InstanceError, which is both an InfeconError and a ValueError."""
    with pytest.raises(infecon.InfeconError):
        infecon.frontier("gpt-5-ultra", "h100")
    assert issubclass(infecon.InstanceError, ValueError)


def test_installed_as_a_package():
    """pyproject installs the infecon package (and its __main__, so `python -m infecon` works)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "infecon" in config["tool"]["setuptools"]["packages"]
    assert (ROOT / "infecon" / "__main__.py").is_file()
