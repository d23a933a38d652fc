"""Issue 21, item 5: single-deployment solvers say what they have and which solver ran; exported models read
like the design (options named by layout and segment, no vacuous rows)."""

from __future__ import annotations

from unittest import mock

import numpy as np

from infecon.formulations import milp
from infecon.formulations.relaxation import build_options, option_names
from infecon.solver import api
from infecon.solver.backends import MilpBackend

SMALL = dict(engine="generic", max_gpus=2, max_batch=48)


class TestFallbackIsNamed:
    def test_cbc_fallback_is_named_and_exact(self):
        """Without highspy the MILP runs on CBC: the frontier says so, and still equals the enumeration."""
        with mock.patch.object(milp, "highs_available", return_value=False):
            result = api.frontier("llama-3-8b", "h100", backend="milp", **SMALL)
        assert result.backend == "milp (CBC through PuLP: highspy is not installed)"
        oracle = api.frontier("llama-3-8b", "h100", backend="enumerate", **SMALL)
        np.testing.assert_allclose(result.points["usd_per_million_tokens"], oracle.points["usd_per_million_tokens"])

    def test_highs_is_named(self):
        if not milp.highs_available():
            return
        assert api.frontier("llama-3-8b", "h100", backend="milp", **SMALL).backend == "milp (HiGHS)"

    def test_cbc_asked_for_is_not_a_fallback(self):
        session = MilpBackend(solver="cbc").session(api.build_problem("llama-3-8b", "h100", **SMALL))
        assert session.description == "milp (CBC)"


class TestOptionNames:
    def test_names_are_layout_and_segment(self):
        """tp8_pp1_ep1_s0 ...: unique, and each names its own layout's degrees."""
        problem = api.build_problem("mixtral-8x7b", "h100", max_gpus=8, max_batch=64)
        options = build_options(problem)
        names = option_names(options)
        assert len(set(names)) == len(names)
        for k, name in enumerate(names):
            rows, cols, pp, ep, _ = options.layouts[options.layout[k]]
            tp = f"tp{cols}" if rows == 1 else f"tp{rows}x{cols}"
            assert name.startswith(f"{tp}_pp{pp}_ep{ep}_"), name

    def test_export_reads_like_the_design(self, tmp_path, capsys):
        from infecon.solver.cli import main

        assert main(["frontier", "--model", "llama-3-8b", "--max-gpus", "2", "--max-batch", "16", "--export-model",
                     str(tmp_path)]) == 0
        lp = (tmp_path / "model.lp").read_text()
        assert "choose_tp1_pp1_ep1_s0" in lp and "choose_7" not in lp
        assert "1e+30" not in lp and "cost_cap" not in lp
        cpsat = (tmp_path / "model.cpsat.txt").read_text()
        assert "choose_tp2_pp1_ep1_s0" in cpsat
