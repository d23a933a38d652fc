"""Solver backends behind one protocol, looked up by name.

The enumeration evaluates every configuration (``solver.enumeration``). A solver backend opens a
``session`` on a problem: it builds its encoding once from the physics' structure
(``formulations.relaxation``) and answers repeated ``solve`` calls that differ only in the caps
and in the layouts already evaluated exactly, as the epsilon loop needs (``solver.epsilon``).
"""

from __future__ import annotations

from typing import Protocol

from infecon.formulations.errors import BackendUnavailableError
from infecon.formulations.relaxation import OptionPool, Options, build_options
from infecon.formulations.solution import Answer, Solution
from infecon.formulations.space import Problem

__all__ = ["BACKEND_NAMES", "Answer", "Backend", "Session", "Solution", "get_backend"]


class Session(Protocol):
    options: Options
    pool: OptionPool  # the options still allowed, with their floors (the loop aims its horizon with them)

    def exclude_layouts(self, layouts) -> None:
        """Forbid these layout indices from now on (the loop knows their points exactly)."""
        ...

    def solve(self, *, max_usd_per_million_tokens: float | None = None, max_latency_s: float | None = None,
              objective: str = "latency", time_limit_s: float | None = None) -> Answer:
        """The layout of the best allowed option under the caps, with a proven lower bound on the objective."""
        ...


class Backend(Protocol):
    name: str

    def available(self) -> bool: ...

    def session(self, problem: Problem) -> Session: ...


class EnumerationBackend:
    """The exhaustive oracle; ``solver.epsilon`` runs it directly, without a session."""

    name = "enumerate"

    def available(self) -> bool:
        return True

    def session(self, problem: Problem) -> Session:
        raise BackendUnavailableError("the enumeration has no encoding to open a session on")


class CpSatBackend:
    name = "cpsat"

    def available(self) -> bool:
        try:
            import ortools.sat.python.cp_model  # noqa: F401
        except ImportError:
            return False
        return True

    def session(self, problem: Problem):
        from infecon.formulations.cpsat import CpSatSession

        return CpSatSession(problem, build_options(problem))


class MilpBackend:
    """The MILP solved by HiGHS through highspy; PuLP's bundled CBC when highspy is missing (or asked for)."""

    name = "milp"

    def __init__(self, solver: str | None = None) -> None:
        self.solver = solver

    def available(self) -> bool:
        try:
            import pulp  # noqa: F401
        except ImportError:
            return False
        return True

    def session(self, problem: Problem):
        from infecon.formulations.milp import MilpSession

        return MilpSession(problem, build_options(problem), solver=self.solver)


_BACKENDS = {"enumerate": EnumerationBackend, "cpsat": CpSatBackend, "milp": MilpBackend}
BACKEND_NAMES = tuple(_BACKENDS)


def get_backend(name: str) -> Backend:
    """A backend by name; ``auto`` is the enumeration."""
    key = "enumerate" if name == "auto" else name
    if key not in _BACKENDS:
        raise BackendUnavailableError(f"unknown backend '{name}' (choose from: auto, {', '.join(BACKEND_NAMES)})")
    backend = _BACKENDS[key]()
    if not backend.available():
        raise BackendUnavailableError(f"backend '{name}' is not installed (pip install ortools pulp highspy)")
    return backend
