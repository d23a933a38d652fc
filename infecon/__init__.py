"""infecon: exact cost/speed Pareto frontiers for serving a language model (after Erdil 2025).

The public Python API, under one name that cannot clash with other projects::

    import infecon
    f = infecon.frontier("llama-3-70b", "h100", context_tokens=8000)   # -> Frontier (.points: DataFrame)
    infecon.cheapest_at_speed("llama-3-70b", "h100", 60).points          # one row
    infecon.explain("llama-3-70b", "h100", tp=8, batch=64)               # -> Explanation
    infecon.plan_fleet(infecon.load_fleet("fleet.toml")).plan            # -> DataFrame
    print(infecon.recipe("llama-3-70b", "h100", engine="vllm", tp=8, batch=64).text())  # vllm serve ...
    infecon.plan_horizon("week.toml").schedule                           # -> DataFrame (periods, sources)

Why a re-export: the implementation lives in ``infecon.solver``, ``infecon.formulations`` and
``infecon.instances`` (the repository's top-level ``solver/``, ``formulations/`` and ``instances/``
folders, the design card's layout). This module names what is public and stable;
everything else may move. Bad input raises ``InstanceError`` (a ``ValueError``), "nothing fits"
``NoFeasibleLayoutError``; both derive from ``InfeconError``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def _serve_source_checkout() -> None:
    """Let ``infecon.solver`` resolve to ``<repo>/solver`` when running from a source checkout.

    Why: the design card keeps ``solver/``, ``formulations/`` and ``instances/`` at the repository's
    top level, and the wheel maps them under ``infecon`` (``package-dir`` in pyproject.toml). A test
    run from the checkout imports this file, not the installed one, so the sibling folders must be
    on this package's path. An installed wheel has ``infecon/solver`` itself and is left alone.
    """
    here = Path(__file__).resolve().parent
    if not (here / "solver").is_dir() and (here.parent / "solver" / "__init__.py").is_file():
        __path__.append(str(here.parent))


_serve_source_checkout()

from infecon.formulations.errors import (
    BackendUnavailableError,
    InfeconError,
    InstanceError,
    NoFeasibleLayoutError,
    SolverLimitError,
)
from infecon.formulations.space import Constraints, Problem, SearchSpace
from infecon.formulations.specs import HardwareSpec, ModelSpec, SpeculativeDecoding, Workload
from infecon.instances.limits import KNOB_RANGES
from infecon.instances.loader import get_hardware, get_model, load_hardware, load_model, model_from_hf_config
from infecon.solver.api import (
    Explanation,
    build_problem,
    cheapest_at_speed,
    explain,
    fastest_within_cost,
    frontier,
    layouts,
    list_hardware,
    list_models,
    load_fleet,
    plan_fleet,
    plan_horizon,
    recipe,
    resolve_hardware,
    resolve_model,
)
from infecon.solver.frontier import Frontier
from infecon.solver.planning import run_plan
from infecon.solver.recipes import Recipe
from infecon.solver.sweeps import run_sweep

try:
    __version__ = version("infecon")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "KNOB_RANGES",
    "BackendUnavailableError",
    "Constraints",
    "Explanation",
    "Frontier",
    "HardwareSpec",
    "InfeconError",
    "InstanceError",
    "ModelSpec",
    "NoFeasibleLayoutError",
    "Problem",
    "Recipe",
    "SearchSpace",
    "SolverLimitError",
    "SpeculativeDecoding",
    "Workload",
    "__version__",
    "build_problem",
    "cheapest_at_speed",
    "explain",
    "fastest_within_cost",
    "frontier",
    "get_hardware",
    "get_model",
    "layouts",
    "list_hardware",
    "list_models",
    "load_fleet",
    "load_hardware",
    "load_model",
    "model_from_hf_config",
    "plan_fleet",
    "plan_horizon",
    "recipe",
    "resolve_hardware",
    "resolve_model",
    "run_plan",
    "run_sweep",
]
