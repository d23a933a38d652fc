"""The CP-SAT solver configuration against a model on which OR-Tools 9.15's default presolve is wrong.

The model is the one ``formulations.cpsat`` built for a Hypothesis case that failed in CI (Llama 3 8B on
H100, TP 4 by 1 or 2 by 4 with one draft token, micro-batches 100 to 121, a cost cap and a latency cap),
copied row by row from its exported proto. Checked by hand: option 0 at micro-batch 100 has busy
1,500,900 ns (the compute line, above HBM's 355,767) and latency ceil(158,420,055,312 / 65,536) =
2,417,299 ns, and meets every row (its cost cap: 8,121,552 - 284,714 x 100 + 4 x 1,500,900 < 0); option 1
needs micro-batch 111 for its cost cap and then has 2,467,219 ns, which default presolve called optimal.
"""

from __future__ import annotations

from ortools.sat.python import cp_model

from infecon.formulations.cpsat_solver import configured_solver

HAND_OPTIMUM_NS = 2_417_299


def _regression_model() -> tuple[cp_model.CpModel, dict[str, cp_model.IntVar]]:
    m = cp_model.CpModel()
    v = {
        "choose_0": m.new_bool_var("choose_0"), "choose_1": m.new_bool_var("choose_1"),
        "mb_0": m.new_int_var(0, 121, "micro_batch_0"), "mb_1": m.new_int_var(0, 121, "micro_batch_1"),
        "busy_0": m.new_int_var(0, 1_816_089, "busy_ns_0"), "busy_1": m.new_int_var(0, 907_984, "busy_ns_1"),
        "batch": m.new_int_var(100, 121, "batch"), "tp_rows": m.new_int_var(1, 2, "tp_rows"),
        "tp_cols": m.new_int_var(4, 4, "tp_cols"), "pp": m.new_int_var(1, 1, "pp"), "ep": m.new_int_var(1, 1, "ep"),
        "attention_dp": m.new_int_var(0, 0, "attention_dp"),
        "gpus": m.new_int_var_from_domain(cp_model.Domain.from_values([4, 8]), "gpus"),
        "latency": m.new_int_var(0, 4_692_267, "latency_ns"),
    }
    c0, c1, mb0, mb1, b0, b1 = (v[k] for k in ("choose_0", "choose_1", "mb_0", "mb_1", "busy_0", "busy_1"))
    m.add_exactly_one([c0, c1])
    m.add(mb0 >= 100 * c0)
    m.add(mb0 <= 121 * c0)
    m.add(b0 >= 15_009 * mb0)
    m.add(b0 >= 715 * mb0 + 284_267 * c0)
    m.add(mb1 >= 100 * c1)
    m.add(mb1 <= 121 * c1)
    m.add(b1 >= 7_504 * mb1)
    m.add(b1 >= 357 * mb1 + 142_133 * c1)
    m.add(v["batch"] == mb0 + mb1)
    m.add(v["tp_rows"] == c0 + 2 * c1)
    m.add(v["tp_cols"] == 4 * c0 + 4 * c1)
    m.add(v["pp"] == c0 + c1)
    m.add(v["ep"] == c0 + c1)
    m.add(v["gpus"] == 4 * c0 + 8 * c1)
    m.add(65_536 * v["latency"] >= 76_036_000_212 * c0 + 95_390_017_902 * c1 + 261_768_510 * mb0
          + 316_294_254 * mb1 + 37_449 * b0 + 37_449 * b1)
    m.add_modulo_equality(0, 32, v["tp_cols"])
    m.add(v["gpus"] <= 8)
    m.add(161_024 * mb0 - 78_996_249_600 * c0 <= 0)
    m.add(96_896 * mb1 - 79_498_128_800 * c1 <= 0)
    m.add(8_121_552 * c0 - 284_714 * mb0 + 4 * b0 <= 0)
    m.add(20_377_584 * c1 - 245_106 * mb1 + 8 * b1 <= 0)
    m.add(v["latency"] <= 2_469_751)
    m.minimize(v["latency"])
    return m, v


class TestConfiguredSolver:
    def test_finds_the_hand_optimum_of_the_regression_model(self):
        model, _ = _regression_model()
        solver = configured_solver()
        assert solver.solve(model) == cp_model.OPTIMAL
        assert solver.objective_value == HAND_OPTIMUM_NS

    def test_the_hand_optimum_is_feasible(self):
        """Fixing the hand solution leaves a feasible model: the optimum cannot be above it (no presolve at all)."""
        model, v = _regression_model()
        for name, value in {"choose_0": 1, "mb_0": 100, "busy_0": 1_500_900, "latency": HAND_OPTIMUM_NS}.items():
            model.add(v[name] == value)
        solver = cp_model.CpSolver()
        solver.parameters.cp_model_presolve = False
        assert solver.solve(model) in (cp_model.OPTIMAL, cp_model.FEASIBLE)

    def test_passes_workers_and_time_limit(self):
        solver = configured_solver(workers=2, time_limit_s=0.0)
        assert solver.parameters.num_workers == 2
        assert solver.parameters.max_time_in_seconds == 1e-3
        assert solver.parameters.linearization_level == 2
