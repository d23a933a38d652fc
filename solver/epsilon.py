"""The epsilon-constraint loop that traces the exact frontier with any backend.

Objective: fastest (lowest latency per token), ties broken by cost and then by canonical index,
so each solve returns one non-dominated point. Constraint: a cost cap, kept as one handle and
tightened strictly below each point found. Integer ranks make "strictly below" exact: the next
cap is the found point's cost rank minus one, with no floating-point epsilon to choose.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from formulations.errors import SolverLimitError
from formulations.space import ConfigTable, Problem, tabulate
from solver.backends import Backend, Solution, get_backend
from solver.enumeration import pareto_indices
from solver.frontier import Frontier, configuration_frame


def trace_frontier(problem: Problem, backend: Backend | str = "enumerate", *, time_limit_s: float | None = None,
                   table: ConfigTable | None = None,
                   progress: Callable[[int], None] | None = None) -> Frontier:
    """Every non-dominated configuration, fastest first.

    Args:
        problem: model, hardware, workload, search space and constraints.
        backend: a ``Backend`` or its name (``enumerate``, ``cpsat``, ``milp``).
        time_limit_s: wall-clock budget for the whole frontier; a solver that runs out marks the
            result incomplete (``Frontier.complete``) rather than returning a silent prefix.
        table: a precomputed tabulation of ``problem`` (saves the evaluation when comparing backends).
        progress: called with the number of points found so far, after each point.
    """
    backend = get_backend(backend) if isinstance(backend, str) else backend
    start = time.perf_counter()
    table = table if table is not None else tabulate(problem)
    if backend.name == "enumerate":
        indices = pareto_indices(table)
        frame = configuration_frame(table, indices)
        return Frontier(problem, backend.name, frame, ["OPTIMAL"] * len(frame), time.perf_counter() - start,
                        complete=True, solves=1)
    session = backend.session(table)
    indices, statuses, complete, solves = [], [], True, 0
    cost_cap: int | None = None
    while True:
        remaining = None if time_limit_s is None else time_limit_s - (time.perf_counter() - start)
        if remaining is not None and remaining <= 0:
            complete = False
            break
        solution: Solution = session.solve("fastest", cost_rank_cap=cost_cap, time_limit_s=remaining,
                                           after_index=indices[-1] if indices else None)
        solves += 1
        if solution.status == "INFEASIBLE":
            break
        if solution.status != "OPTIMAL":
            complete = False
            break
        indices.append(solution.index)
        statuses.append(solution.status)
        if progress is not None:
            progress(len(indices))
        cost_cap = int(table.cost_rank[solution.index]) - 1
        if cost_cap < 0:
            break
    frame = configuration_frame(table, indices)
    return Frontier(problem, backend.name, frame, statuses, time.perf_counter() - start, complete=complete,
                    solves=solves)


def solve_point(problem: Problem, backend: Backend | str = "enumerate", *, min_tokens_per_s: float | None = None,
                max_usd_per_million_tokens: float | None = None, time_limit_s: float | None = None,
                table: ConfigTable | None = None) -> Frontier:
    """One constrained solve instead of a whole frontier.

    With ``min_tokens_per_s``: the cheapest configuration at least that fast (ties: faster).
    With ``max_usd_per_million_tokens``: the fastest configuration at most that expensive.
    Returns a one-row (or empty, if infeasible) ``Frontier``; raises ``SolverLimitError`` if the
    solver stopped before proving optimality.
    """
    if (min_tokens_per_s is None) == (max_usd_per_million_tokens is None):
        raise ValueError("give exactly one of min_tokens_per_s and max_usd_per_million_tokens")
    backend = get_backend(backend) if isinstance(backend, str) else backend
    start = time.perf_counter()
    table = table if table is not None else tabulate(problem)
    session = backend.session(table)
    if min_tokens_per_s is not None:
        cap = table.latency_rank_at_most(1.0 / min_tokens_per_s)
        solution = session.solve("cheapest", latency_rank_cap=cap, time_limit_s=time_limit_s) if cap >= 0 \
            else Solution(None, "INFEASIBLE")
    else:
        cap = table.cost_rank_at_most(max_usd_per_million_tokens)
        solution = session.solve("fastest", cost_rank_cap=cap, time_limit_s=time_limit_s) if cap >= 0 \
            else Solution(None, "INFEASIBLE")
    if solution.status not in ("OPTIMAL", "INFEASIBLE"):
        raise SolverLimitError(f"{backend.name} stopped with status {solution.status} before proving the optimum; "
                               "raise --time-limit")
    indices = [] if solution.index is None else [solution.index]
    return Frontier(problem, backend.name, configuration_frame(table, indices),
                    [solution.status] * len(indices), time.perf_counter() - start, solves=1)
