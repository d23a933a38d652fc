"""The epsilon-constraint loop: strict tightening, lexicographic ties, no weakly dominated point."""

import dataclasses

import numpy as np
import pytest

from infecon.formulations.errors import SolverInconsistencyError
from infecon.formulations.perf import ConfigMetrics, StepTime
from infecon.formulations.space import ConfigTable
from infecon.solver import api, cli
from infecon.solver.backends import get_backend
from infecon.solver.enumeration import pareto_indices
from infecon.solver.epsilon import trace_frontier

# (latency_s, usd_per_million_tokens) of fabricated configurations, with exact ties on purpose:
# 0 and 1 tie in both objectives; 2 ties 0 in latency but costs more; 3 is slower than 2 at equal cost;
# 4 and 5 tie in cost with different latencies; 6 is infeasible but would dominate everything.
POINTS = [(1.0, 10.0), (1.0, 10.0), (1.0, 12.0), (2.0, 12.0), (2.0, 5.0), (3.0, 5.0), (0.5, 1.0), (4.0, 1.0)]
FEASIBLE = [True, True, True, True, True, True, False, True]


def fabricated_table() -> ConfigTable:
    """A ConfigTable with chosen objective values (the encodings only read the table)."""
    problem = api.build_problem("llama-3-8b", "h100")
    n = len(POINTS)
    latency = np.array([p[0] for p in POINTS])
    cost = np.array([p[1] for p in POINTS])
    zeros = np.zeros(n)
    step = StepTime(zeros, zeros, zeros, zeros, zeros)
    ones = np.ones(n, dtype=np.int64)
    # The infeasible point breaks HBM capacity by one byte, in bytes (CP-SAT) and in the mask (the others).
    hbm_used = np.where(FEASIBLE, 0, int(problem.hardware.hbm_capacity_bytes) + 1).astype(np.int64)
    metrics = ConfigMetrics(target=step, drafter=None, latency_s=latency, tokens_per_second=1 / latency,
                            total_tokens_per_second=1 / latency, usd_per_million_tokens=cost, utilization=zeros,
                            hbm_used_bytes_per_gpu=hbm_used, gpus=ones,
                            draft_tokens=np.zeros(n, dtype=np.int64), drafter_tp_rows=0 * ones,
                            drafter_tp_cols=0 * ones, drafter_pp=0 * ones)
    return ConfigTable(problem=problem, tp_rows=ones, tp_cols=ones, pp=ones, ep=ones, batch=np.arange(1, n + 1),
                       draft_tokens=np.zeros(n, dtype=np.int64), metrics=metrics,
                       violations={"hbm_capacity": hbm_used > int(problem.hardware.hbm_capacity_bytes)})


class TestTiesAndDominance:
    """Ties resolve to the lowest canonical index and weakly dominated points never appear."""

    def test_oracle_keeps_exactly_the_strict_frontier(self):
        """Of the fabricated points only 0 (fastest, cheapest of the fastest), 4 and 7 are non-dominated."""
        assert pareto_indices(fabricated_table()).tolist() == [0, 4, 7]

    def test_the_enumeration_resolves_ties_canonically(self):
        """The enumeration reports configurations 0, 4, 7 in that order, all proven optimal.

        The solver backends never read a table (they encode the physics); their tie-breaking is the
        same filter applied to the layouts they evaluate (``KnownLayouts.pareto``), and the backend
        contract checks their frontiers point for point against this one.
        """
        table = fabricated_table()
        frontier = trace_frontier(table.problem, "enumerate", table=table)
        assert frontier.points["config_index"].tolist() == [0, 4, 7]
        assert frontier.statuses == ["OPTIMAL"] * 3 and frontier.complete


class TestFrontierShape:
    """A real frontier is strictly monotone in both objectives."""

    @pytest.mark.parametrize("backend", ["enumerate", "cpsat", "milp"])
    def test_strictly_decreasing_speed_and_cost(self, backend):
        """Down the rows, tokens/s and cost both strictly decrease (each point strictly improves one)."""
        points = api.frontier("llama-3-70b", "h100", context_tokens=8000, backend=backend, max_gpus=16,
                              max_batch=256).points
        assert (np.diff(points["tokens_per_second"]) < 0).all()
        assert (np.diff(points["usd_per_million_tokens"]) < 0).all()

    def test_no_feasible_configuration_outside_dominates_a_point(self):
        """Brute force over the whole table: no feasible configuration weakly dominates a frontier point."""
        problem = api.build_problem("mixtral-8x7b", "h100", context_tokens=4000, demand_tokens_per_s=20000,
                                    max_batch=512)  # every integer batch to 512: a table of 330,000 configurations
        from infecon.formulations.space import tabulate

        table = tabulate(problem)
        speed, cost = table.metrics.tokens_per_second, table.usd_per_million_tokens
        for index in pareto_indices(table):
            better = (speed >= speed[index]) & (cost <= cost[index]) & ((speed > speed[index]) | (cost < cost[index]))
            assert not (better & table.feasible).any()


class TestCliReportsIncompleteFrontiers:
    """A solver stopped by its time limit is announced on the CLI and in the exit code."""

    def test_time_limit_warns_and_exits_3(self, capsys):
        """--time-limit too small for CP-SAT to prove any point: one line saying so and exit code 3, no empty table."""
        code = cli.main(["frontier", "--model", "mixtral-8x22b", "--hardware", "h100", "--engine", "paper",
                         "--max-batch", "64", "--backend", "cpsat", "--time-limit", "1e-9"])
        assert code == 3
        captured = capsys.readouterr()
        assert captured.out == ""
        assert "no point proven before the time limit" in captured.err


class TestFrameOfManyPoints:
    """Over every integer batch a frontier has about one point per batch; its rows must not cost a DataFrame each."""

    def test_frames_are_built_per_evaluated_piece_not_per_point(self, monkeypatch):
        """CP-SAT's rows equal the enumeration's, built by a few configuration_frame calls per known layout.

        Per point it was ~27 ms (2,000 points: 38 s after the solves; 234,301 points at context 0: hours).
        The known layouts' frontiers come from the enumeration's pieces (``enumeration.LayoutFronts``).
        """
        import pandas as pd

        from infecon.solver import enumeration

        sizes: list[int] = []
        real = enumeration.configuration_frame

        def counted(table, indices):
            sizes.append(len(indices))
            return real(table, indices)

        monkeypatch.setattr(enumeration, "configuration_frame", counted)
        problem = api.build_problem("llama-3-8b", "h100", max_gpus=2, batch_mode="all", max_batch=300)
        solved = trace_frontier(problem, "cpsat")
        monkeypatch.undo()
        enumerated = trace_frontier(problem, "enumerate").points
        pd.testing.assert_frame_equal(solved.points, enumerated)
        layouts_on_frontier = len(solved.points[["tp_rows", "tp_cols", "pp", "ep"]].drop_duplicates())
        assert len(solved.points) > 300 and layouts_on_frontier >= 2  # many points, from more than one layout
        assert len(sizes) <= 10 * (solved.solves + 1)  # a handful of pieces per known layout, never one per point


class TestKnownFrontierSkipping:
    def test_a_known_frontier_prunes_a_layout_without_changing_the_merged_frontier(self):
        """LayoutFronts.front(known=...) evaluates fewer batches, and the merged frontier is the same points."""
        from infecon.solver.enumeration import LayoutFronts, strict_frontier

        problem = api.build_problem("llama-3-8b", "h100", max_gpus=2, context_tokens=0, max_batch=200_000)
        fronts = LayoutFronts(problem)
        first = fronts.front([0])
        alone = fronts.front([1])
        evaluated_alone = fronts.space.evaluated
        pruned = fronts.front([1], known=(first.latency_s, first.cost))
        assert fronts.space.evaluated < evaluated_alone

        def merged(other):
            latency = np.concatenate((first.latency_s, other.latency_s))
            cost = np.concatenate((first.cost, other.cost))
            canonical = np.concatenate((first.canonical, other.canonical))
            return canonical[strict_frontier(latency, cost, canonical)].tolist()

        assert merged(pruned) == merged(alone) and len(merged(alone)) > 100


class _OverclaimingBackend:
    """A real backend whose first optimal answer claims a bound 30 % above the truth (a solver bug)."""

    def __init__(self, name: str) -> None:
        self.inner = get_backend(name)
        self.name = name

    def session(self, problem):
        session = self.inner.session(problem)
        honest_solve, lied = session.solve, []

        def solve(**caps):
            answer = honest_solve(**caps)
            if answer.status == "OPTIMAL" and not lied:
                lied.append(True)
                return dataclasses.replace(answer, bound=answer.bound * 1.3)
            return answer

        session.solve = solve
        return session


class TestWrongSolverAnswers:
    def test_a_contradicted_optimum_stops_the_frontier_with_a_clear_error(self):
        """Points emitted on a false bound and later dominated are caught, not printed (nor an IndexError)."""
        problem = api.build_problem("llama-3-70b", "h100", max_batch=64)
        with pytest.raises(SolverInconsistencyError, match=r"milp \([^)]*\): a solve proven optimal was contradicted"):
            trace_frontier(problem, _OverclaimingBackend("milp"))

    def test_honest_answers_pass_the_check(self):
        problem = api.build_problem("llama-3-70b", "h100", max_batch=64)
        assert len(trace_frontier(problem, get_backend("milp")).points) == len(trace_frontier(problem).points)
