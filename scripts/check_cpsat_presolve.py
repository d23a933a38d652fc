"""Re-check CP-SAT's presolve on random frontiers: run this after every OR-Tools upgrade.

Every CP-SAT solve that the epsilon loop makes on generated problems, and that the fleet frontier walk
makes on generated small fleets (``tests.strategies``), is solved again under several presolve
settings, and each answer is compared with presolve switched off. The loops trust a solver's "optimal"
as a bound, so an answer above the presolve-free optimum, or a false "infeasible", can make a frontier
skip a point. OR-Tools 9.15 does both with its defaults, and with probing off;
``formulations.cpsat_solver`` switches off inclusion detection, which agreed on every solve measured
(see that module). The script prints one row per kind of solve and setting:

    python scripts/check_cpsat_presolve.py --problems 3000 --fleets 1000 --seed 4

``solves``: solves compared; ``wrong_optimum``: optimal with another objective than presolve-off;
``wrong_status``: another status. A non-zero count for ``configured`` means the workaround no longer holds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, seed, settings
from ortools.sat.python import cp_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.strategies from a source checkout

from infecon.formulations.cpsat_solver import configured_solver
from infecon.solver.epsilon import trace_frontier
from infecon.solver.fleet.scales import scale_frontier
from tests.strategies import serving_problems, small_fleets

SETTINGS = {
    "configured": {},  # configured_solver as shipped
    "default": {"presolve_inclusion_work_limit": 100_000_000},  # OR-Tools' default inclusion work limit
    "no_probing": {"presolve_inclusion_work_limit": 100_000_000, "cp_model_probing_level": 0},
}
REFERENCE = {"cp_model_presolve": False}


def _answer(model: cp_model.CpModel, changes: dict) -> tuple[str, int | None]:
    solver = configured_solver()
    for name, value in changes.items():
        setattr(solver.parameters, name, value)
    status = _original_solve(solver, model)
    return solver.status_name(status), round(solver.objective_value) if status == cp_model.OPTIMAL else None


_original_solve = cp_model.CpSolver.solve
counts = {(kind, name): {"solves": 0, "wrong_optimum": 0, "wrong_status": 0}
          for kind in ("frontier", "fleet") for name in SETTINGS}
kind_now = ["frontier"]


def _compare(self: cp_model.CpSolver, model: cp_model.CpModel, *args, **kwargs):
    """Solve as asked, then once per setting and once without presolve (the reference)."""
    status = _original_solve(self, model, *args, **kwargs)
    if self.parameters.max_time_in_seconds < 1e9:  # a timed solve: a status under a deadline is not comparable
        return status
    reference = _answer(model, REFERENCE)
    for name, changes in SETTINGS.items():
        answer = _answer(model, changes)
        row = counts[kind_now[0], name]
        row["solves"] += 1
        if answer[0] != reference[0]:
            row["wrong_status"] += 1
        elif answer != reference:
            row["wrong_optimum"] += 1
    return status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=1000, help="generated problems (default 1000)")
    parser.add_argument("--fleets", type=int, default=300, help="generated small fleets (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="Hypothesis seed, for a reproducible run")
    args = parser.parse_args()
    if args.problems < 0 or args.fleets < 0:
        parser.error("--problems and --fleets must be >= 0")
    common = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))

    @seed(args.seed)
    @settings(max_examples=max(args.problems, 1), **common)
    @given(problem=serving_problems())
    def trace(problem) -> None:
        trace_frontier(problem, "cpsat")

    @seed(args.seed)
    @settings(max_examples=max(args.fleets, 1), **common)
    @given(data=small_fleets(scale_ranks=True, max_rank=5))
    def walk(data) -> None:
        scale_frontier(data, "cpsat")

    start = time.perf_counter()
    cp_model.CpSolver.solve = _compare
    try:
        if args.problems:
            trace()
        kind_now[0] = "fleet"
        if args.fleets:
            walk()
    finally:
        cp_model.CpSolver.solve = _original_solve
    print(f"OR-Tools {_ortools_version()}, {args.problems} problems and {args.fleets} fleets, "
          f"seed {args.seed}, {time.perf_counter() - start:.0f} s; reference: presolve off")
    table = pd.DataFrame(counts).T
    table.index.names = ["solves of", "setting"]
    print(table.to_string())


def _ortools_version() -> str:
    import ortools

    return ortools.__version__


if __name__ == "__main__":
    main()
