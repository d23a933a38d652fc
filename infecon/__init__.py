"""infecon: exact cost/speed Pareto frontiers for serving a language model (after Erdil 2025).

The public Python API, under one name that cannot clash with other projects::

    import infecon
    f = infecon.frontier("llama-3-70b", "h100", context_tokens=8000)   # -> Frontier (.points: DataFrame)
    infecon.cheapest_at_speed("llama-3-70b", "h100", 60).points          # one row
    infecon.explain("llama-3-70b", "h100", tp=8, batch=64)               # -> Explanation

Why a re-export: the implementation lives in the repository's ``solver/``, ``formulations/`` and
``instances/`` packages (the design card's layout). This module names what is public and stable;
everything else may move. Bad input raises ``InstanceError`` (a ``ValueError``), "nothing fits"
``NoFeasibleLayoutError``; both derive from ``InfeconError``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from formulations.errors import (
    BackendUnavailableError,
    InfeconError,
    InstanceError,
    NoFeasibleLayoutError,
    SolverLimitError,
)
from formulations.space import Constraints, Problem, SearchSpace
from formulations.specs import HardwareSpec, ModelSpec, SpeculativeDecoding, Workload
from instances.limits import KNOB_RANGES
from instances.loader import get_hardware, get_model, load_hardware, load_model, model_from_hf_config
from solver.api import (
    Explanation,
    build_problem,
    cheapest_at_speed,
    explain,
    fastest_within_cost,
    frontier,
    layouts,
    list_hardware,
    list_models,
    resolve_hardware,
    resolve_model,
)
from solver.frontier import Frontier
from solver.planning import run_plan
from solver.sweeps import run_sweep

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
    "load_hardware",
    "load_model",
    "model_from_hf_config",
    "resolve_hardware",
    "resolve_model",
    "run_plan",
    "run_sweep",
]
