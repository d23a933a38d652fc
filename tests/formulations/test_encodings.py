"""The CP-SAT and MILP encodings read the performance model's table faithfully and order points exactly."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from ortools.sat.python import cp_model

from formulations.cpsat import build_cpsat
from formulations.milp import build_milp_rows, to_pulp
from formulations.space import tabulate
from solver import api


def _small_table():
    problem = api.build_problem("mixtral-8x7b", "h100", max_gpus=16, context_tokens=8000, batch_sizes=[1, 4, 64, 512],
                                demand_tokens_per_s=5000, budget_usd_per_hour=20)
    return tabulate(problem)


class TestEveryConfigurationThroughTheEncodings:
    """Fixing the encoding to one configuration reproduces the model's verdict on it."""

    def test_cpsat_feasibility_equals_model(self):
        """For every configuration, CP-SAT with its position fixed is feasible iff the model says so."""
        table = _small_table()
        assert table.feasible.any() and not table.feasible.all()
        enc = build_cpsat(table, "fastest")
        position_of = np.empty(len(table), dtype=np.int64)
        position_of[enc.config_at_position] = np.arange(len(table))
        for index in range(len(table)):
            model = enc.model.clone()
            model.add(model.get_int_var_from_proto_index(enc.position.index) == int(position_of[index]))
            status = cp_model.CpSolver().solve(model)
            assert (status == cp_model.OPTIMAL) == bool(table.feasible[index]), index

    def test_cpsat_decodes_each_position_to_its_configuration(self):
        """Both orders are bijections: position k decodes to the configuration ranked k."""
        table = _small_table()
        for objective, rank in (("fastest", table.fastest_first_rank), ("cheapest", table.cheapest_first_rank)):
            enc = build_cpsat(table, objective)
            assert np.array_equal(rank[enc.config_at_position], np.arange(len(table)))

    def test_milp_rows_equal_model_values(self):
        """Every MILP row's coefficient for z[k] is the model's value for configuration k."""
        table = _small_table()
        rows = {row.name: row for row in build_milp_rows(table).rows}
        assert np.array_equal(rows["max_gpus"].coefficients, table.metrics.gpus)
        for rule, broken in table.violations.items():
            assert np.array_equal(rows[rule].coefficients, broken.astype(float))
        assert np.array_equal(rows["cost_cap"].coefficients, table.cost_rank)
        assert np.array_equal(rows["latency_cap"].coefficients, table.latency_rank)
        violated = sum(rows[rule].coefficients for rule in table.violations)
        assert np.array_equal(violated == 0, table.feasible)

    def test_milp_exports_readable_named_rows(self, tmp_path):
        """The PuLP model's LP file names each rule (it reads like the design)."""
        problem, _ = to_pulp(build_milp_rows(_small_table()))
        path = tmp_path / "model.lp"
        problem.writeLP(str(path))
        text = path.read_text()
        for name in ("one_configuration", "hbm_capacity", "demand_cap", "budget", "cost_cap", "max_gpus"):
            assert name in text


class TestRankScaling:
    """Floats become integers only as dense ranks, which can neither reorder nor merge distinct values."""

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.floats(min_value=1e-12, max_value=1e6, allow_nan=False), min_size=2, max_size=60))
    def test_dense_rank_preserves_strict_order_and_ties(self, values):
        """rank(a) < rank(b) iff a < b, and rank(a) == rank(b) iff a == b, even for values 1 ulp apart."""
        values = np.array([*values, np.nextafter(values[0], np.inf)])
        ranks = np.unique(values, return_inverse=True)[1]
        less = values[:, None] < values[None, :]
        assert np.array_equal(ranks[:, None] < ranks[None, :], less)
        assert np.array_equal(ranks[:, None] == ranks[None, :], values[:, None] == values[None, :])

    def test_table_ranks_are_the_order_of_the_physics(self):
        """On a real table, cost and latency ranks sort exactly like the model's floats."""
        table = _small_table()
        for rank, values in ((table.cost_rank, table.usd_per_million_tokens), (table.latency_rank, table.latency_s)):
            order = np.argsort(values, kind="stable")
            assert np.all(np.diff(rank[order]) >= 0)
            assert np.array_equal(np.diff(rank[order]) > 0, np.diff(values[order]) > 0)
