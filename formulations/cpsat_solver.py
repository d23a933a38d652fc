"""The one place where CP-SAT solvers are configured, for single deployments and fleets alike.

Why a module of its own: a parameter that guards correctness must reach every CP-SAT solve. OR-Tools
9.15 presolve returned a wrong "optimal" on a two-option model of ``formulations.cpsat`` (a Hypothesis
case the enumeration oracle caught in CI: Llama 3 8B on H100, batches 100 and 121, latency 2.467 ms
claimed optimal where a feasible 2.417 ms exists). Turning off either its constraint-inclusion
detection (``presolve_inclusion_work_limit = 0``) or its probing gives the right answer; OR-Tools 9.14
gets it right with defaults. Reported upstream: google/or-tools#5293. ``scripts/check_cpsat_presolve.py``
re-solved every CP-SAT solve of 16,000 random frontiers with presolve off: defaults were wrong on 4 of
91,487 solves (an optimum above the true one, which the epsilon loop would trust as a bound), probing off
on 3, inclusion detection off on none.
Losing inclusion detection costs nothing measurable (``scripts/bench_frontier.py``: CP-SAT 0.26 / 2.90 /
0.58 s against 0.24 / 2.52 / 0.65 s; the fleet frontier example 33 s against 40 s).
"""

from __future__ import annotations

from ortools.sat.python import cp_model


def configured_solver(*, workers: int = 1, time_limit_s: float | None = None) -> cp_model.CpSolver:
    """A CpSolver with ``workers`` threads, an optional time limit, the full LP relaxation and safe presolve.

    ``linearization_level = 2`` puts the LP relaxation in the propagation: tighter bounds per solve
    (single deployments) and the covering bound of replica counts (fleets: example 40 s -> 0.6 s).
    """
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = workers
    solver.parameters.linearization_level = 2
    # Module docstring: OR-Tools 9.15 presolve bug, reported upstream as google/or-tools#5293
    # (https://github.com/google/or-tools/issues/5293); drop this line once a release fixes it and
    # scripts/check_cpsat_presolve.py finds no wrong optimum with defaults.
    solver.parameters.presolve_inclusion_work_limit = 0
    if time_limit_s is not None:
        solver.parameters.max_time_in_seconds = max(float(time_limit_s), 1e-3)
    return solver
