"""Solver backends behind one protocol, looked up by name.

A backend opens a ``session`` on a tabulated problem (building its model once) and answers
repeated ``solve`` calls that differ only in the cap's constant, as the epsilon loop needs.
"""

from __future__ import annotations

from typing import Protocol

from formulations.errors import BackendUnavailableError
from formulations.solution import Solution
from formulations.space import ConfigTable
from solver.enumeration import best_index

__all__ = ["BACKEND_NAMES", "Backend", "Session", "Solution", "get_backend"]


class Session(Protocol):
    def solve(self, objective: str, *, cost_rank_cap: int | None = None, latency_rank_cap: int | None = None,
              after_index: int | None = None, time_limit_s: float | None = None) -> Solution:
        """Lexicographically best feasible configuration under the caps.

        ``after_index`` is an earlier answer under looser caps: the answer lies strictly after it
        in the objective's order, which a backend may use to prune.
        """
        ...


class Backend(Protocol):
    name: str

    def available(self) -> bool: ...

    def session(self, table: ConfigTable) -> Session: ...


class EnumerationSession:
    def __init__(self, table: ConfigTable) -> None:
        self.table = table

    def solve(self, objective: str, *, cost_rank_cap: int | None = None, latency_rank_cap: int | None = None,
              after_index: int | None = None, time_limit_s: float | None = None) -> Solution:
        index = best_index(self.table, objective, cost_rank_cap=cost_rank_cap, latency_rank_cap=latency_rank_cap)
        return Solution(index, "INFEASIBLE" if index is None else "OPTIMAL")


class EnumerationBackend:
    name = "enumerate"

    def available(self) -> bool:
        return True

    def session(self, table: ConfigTable) -> EnumerationSession:
        return EnumerationSession(table)


class CpSatBackend:
    name = "cpsat"

    def available(self) -> bool:
        try:
            import ortools.sat.python.cp_model  # noqa: F401
        except ImportError:
            return False
        return True

    def session(self, table: ConfigTable):
        from formulations.cpsat import CpSatSession

        return CpSatSession(table)


class MilpBackend:
    """PuLP model solved by HiGHS through highspy; PuLP's bundled CBC when highspy is missing."""

    name = "milp"

    def __init__(self, solver: str | None = None) -> None:
        self.solver = solver

    def available(self) -> bool:
        try:
            import pulp  # noqa: F401
        except ImportError:
            return False
        return True

    def session(self, table: ConfigTable):
        from formulations.milp import MilpSession

        return MilpSession(table, solver=self.solver)


_BACKENDS = {"enumerate": EnumerationBackend, "cpsat": CpSatBackend, "milp": MilpBackend}
BACKEND_NAMES = tuple(_BACKENDS)


def get_backend(name: str) -> Backend:
    """A backend by name; ``auto`` is the enumeration, fastest on every shipped space (scripts/bench_frontier.py)."""
    key = "enumerate" if name == "auto" else name
    if key not in _BACKENDS:
        raise BackendUnavailableError(f"unknown backend '{name}' (choose from: auto, {', '.join(BACKEND_NAMES)})")
    backend = _BACKENDS[key]()
    if not backend.available():
        raise BackendUnavailableError(f"backend '{name}' is not installed (pip install ortools pulp highspy)")
    return backend
