"""``frontier --tp 8 --pp 1``: the frontier of one layout family alone, with every batch it runs (issue 18, item 6)."""

from __future__ import annotations

import numpy as np
import pytest

from infecon.formulations.errors import InstanceError
from infecon.formulations.space import SearchSpace, candidate_layouts, tabulate
from infecon.instances.loader import get_hardware, get_model
from infecon.solver import api
from infecon.solver.enumeration import pareto_indices
from tests.solver.test_cli import assert_one_line_error, frontier_csv, run

ARGS = ("--model", "llama-3-70b", "--hardware", "h100")


def test_family_frontier_has_only_that_layout_and_its_high_batches(capsys):
    family = frontier_csv(capsys, *ARGS, "--tp", "8", "--pp", "1")
    whole = frontier_csv(capsys, *ARGS)
    assert len(family) > 0
    assert set(zip(family["tp_rows"], family["tp_cols"], family["pp"], family["ep"], strict=True)) == {(1, 8, 1, 1)}
    on_whole = whole[(whole["tp_rows"] == 1) & (whole["tp_cols"] == 8) & (whole["pp"] == 1)]
    # The global frontier drops TP 8's high batches (TP 4 and PP layouts are cheaper there); the family keeps them.
    assert family["batch"].max() > on_whole["batch"].max()
    # Every TP 8 point of the global frontier is on the family's frontier (a subset of the space cannot lose it).
    assert set(on_whole["batch"]) <= set(family["batch"])


def test_family_frontier_is_the_pareto_set_of_its_layout():
    """Oracle: tabulate the one layout at every batch that fits, and keep its Pareto set."""
    problem = api.build_problem("llama-3-70b", "h100", engine="generic", layout={"tp": 8, "pp": 1})
    result = api.frontier(problem, None)
    table = tabulate(problem, layouts=[(1, 8, 1, 1, 0)])
    keep = pareto_indices(table)
    expected = sorted(int(b) for b in table.batch[keep])
    assert sorted(result.points["batch"].astype(int)) == expected


def test_candidate_layouts_filter_each_axis():
    model, hw = get_model("llama-3-70b"), get_hardware("h100")
    for fixed, check in (({"pp": 2}, lambda r: r[2] == 2), ({"gpus": 16}, lambda r: r[0] * r[1] * r[2] == 16),
                         ({"tp_grid": (2, 4)}, lambda r: (r[0], r[1]) == (2, 4)),
                         ({"tp": 4, "gpus": 8}, lambda r: (r[0], r[1], r[2]) == (1, 4, 2))):
        rows = candidate_layouts(model, hw, SearchSpace(**fixed))
        assert len(rows) > 0 and all(check(r) for r in rows), fixed
        every = candidate_layouts(model, hw, SearchSpace())
        assert len(rows) == sum(check(r) for r in every)  # nothing valid left out


def test_no_layout_in_family_names_the_rule():
    with pytest.raises(InstanceError, match="pp_divides_layers: 80 layers do not split into 3 stages"):
        candidate_layouts(get_model("llama-3-70b"), get_hardware("h100"), SearchSpace(tp=8, pp=3))


@pytest.mark.parametrize("argv, fragment", [
    (("--tp", "0"), "--tp"), (("--tp", "x"), "--tp"), (("--pp", "-1"), "--pp"), (("--ep", "1.5"), "--ep"),
    (("--gpus", "0"), "--gpus"), (("--tp-grid", "4"), "--tp-grid"), (("--tp", "8", "--tp-grid", "2x4"), "--tp-grid"),
    (("--tp", "3"), "TP 3"), (("--tp", "8", "--pp", "3", "--engine", "paper"), "pp_divides_layers"),
    (("--tp", "8", "--pp", "9"), "max_pp: PP 9 exceeds the engine's largest, 8"),
    (("--tp", "8", "--pp", "81", "--max-pp", "81"), "pp_divides_layers"),
    (("--ep", "2"), "EP 2"), (("--gpus", "2048"), "GPUs 2048"),
])
def test_bad_family_values_are_one_line_exit_2(capsys, argv, fragment):
    code, _, err = run(capsys, "frontier", *ARGS, *argv)
    assert_one_line_error(code, err, fragment)


def test_header_names_the_family(capsys):
    code, out, _ = run(capsys, "frontier", *ARGS, "--tp", "8", "--pp", "1")
    assert code == 0
    assert "layouts: TP 8, PP 1" in out.splitlines()[0]


def test_solver_backend_agrees_on_a_family():
    kwargs = dict(engine="generic", layout={"gpus": 8}, max_batch=64)
    oracle = api.frontier("llama-3-8b", "h100", **kwargs)
    milp = api.frontier("llama-3-8b", "h100", backend="milp", **kwargs)
    assert oracle.layouts() == milp.layouts()
    assert np.all(oracle.points["gpus"] == 8)
