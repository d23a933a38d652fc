"""The exact fleet solver (dominance, workloads apart, Pareto patterns) against exhaustive search,
and the plain model."""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import re
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings

from infecon.formulations.fleet.model import FleetData, dominated_candidates, fleet_cost, gpus_used
from infecon.instances.fleet_scenario import load_fleet_scenario
from infecon.solver.fleet.candidates import CANDIDATE_COLUMNS
from infecon.solver.fleet.plan import fleet_data, generate_candidates, naive_solution
from infecon.solver.fleet.solve import fleet_backend, pareto_patterns, solve_fleet, workload_alone
from tests.fleet_oracle import brute_force_cost, meets_rules
from tests.strategies import small_fleets


class TestSolveFleet:
    @settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(small_fleets())
    def test_both_backends_match_exhaustive_search(self, data):
        """On 50 generated small fleets the reduced solve proves the exhaustive optimum with either backend,
        and its plan obeys every rule and costs what it reports."""
        expected = brute_force_cost(data)
        hint = naive_solution(data)
        for backend in ("milp", "cpsat"):
            solution = solve_fleet(data, backend, hint=hint)
            if expected is None:
                assert solution.status == "INFEASIBLE", solution.backend
                continue
            assert solution.status == "OPTIMAL" and solution.objective == expected, solution.backend
            assert meets_rules(data, solution.replicas)
            assert fleet_cost(data, solution.replicas) == expected

    def test_binding_inventory_goes_through_patterns(self):
        """Two workloads want the cheap type's 4 GPUs each (8 > 6 available): the patterns put one on the dear
        type. Cheap: 1 GPU at 1 serves 1; dear: 1 GPU at 3 serves 1; demands 4 and 4. Cheapest: 6 cheap GPUs and
        2 dear ones = 6 x 1 + 2 x 3 = 12."""
        data = FleetData(("a", "b"), [4, 4], ("never", "never"), ("cheap", "dear"), [6, -1], [8, 8], [1, 3],
                         [0, 0, 1, 1], [0, 1, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0])
        solution = solve_fleet(data, "milp")
        assert solution.status == "OPTIMAL" and solution.objective == 12
        assert "patterns over cheap" in solution.backend
        assert solve_fleet(data, "cpsat").objective == 12


class TestParetoPatterns:
    def test_complete_against_enumeration(self):
        """One workload on two limited types: the patterns are exactly the Pareto set of (cost, GPUs per type)
        over every replica vector that serves it."""
        data = FleetData(("w",), [6], ("never",), ("g0", "g1"), [8, 8], [8, 8], [2, 3], [0, 0, 0],
                         [0, 1, 0], [0, 0, 0], [1, 1, 2], [2, 3, 5], [0, 0, 0])
        alone, mine = workload_alone(data, 0)
        front = pareto_patterns(alone, np.zeros(len(mine), dtype=bool), [0, 1], fleet_backend("milp"),
                                max_scale_rank=None, time_limit_s=None)
        found = sorted((s.objective, *gpus_used(alone, s.replicas)) for s in front)
        points = []
        for n in itertools.product(range(7), repeat=3):
            n = np.array(n)
            if (n * alone.capacity).sum() >= 6:
                points.append((fleet_cost(alone, n), *gpus_used(alone, n)))
        pareto = sorted({p for p in points if not any(q != p and all(a <= b for a, b in zip(q, p, strict=True))
                                                       for q in points)})
        assert found == pareto


class TestReductionOnScenarios:
    def test_reduced_equals_plain_on_a_generated_fleet(self, tmp_path):
        """A generated fleet of real candidates (bench generator, 6 workloads x 3 GPU types, an inventory that
        binds): the reduced solve and the plain model prove the same least cost."""
        root = Path(__file__).resolve().parents[2]
        spec = importlib.util.spec_from_file_location("bench_fleet", root / "scripts" / "bench_fleet.py")
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
        path = tmp_path / "fleet.toml"
        path.write_text(re.sub(r"available = \d+", "available = 8", bench.generated_scenario(6, 3, seed=3)))
        scenario = load_fleet_scenario(path)
        generated = generate_candidates(scenario, jobs=1)
        data = fleet_data(scenario, pd.concat([c.frame for c in generated], ignore_index=True)
                          .reindex(columns=CANDIDATE_COLUMNS))
        plain = solve_fleet(data, "milp", reduce=False, time_limit_s=120)
        reduced = solve_fleet(data, "milp", hint=naive_solution(data))
        assert plain.status == reduced.status == "OPTIMAL"
        assert plain.objective == reduced.objective
        assert dominated_candidates(data).any()
        tight = dataclasses.replace(data, available=np.where(data.available >= 0, 4, -1))
        assert solve_fleet(tight, "milp", reduce=False, time_limit_s=120).objective == \
            solve_fleet(tight, "milp").objective
