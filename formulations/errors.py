"""The project's expected errors: each prints as one line and exits 2 on the CLI, never as a traceback."""


class InfeconError(Exception):
    """Base of every expected, user-facing error."""


class InstanceError(InfeconError, ValueError):
    """Bad input data: a model, hardware or scenario file, or an out-of-range argument.

    The message names the file (if any), the field, the rule and the value, e.g.
    ``h100.toml: 'hbm_capacity_bytes' must be > 0 (got -8e+10)``.
    """


class NoFeasibleLayoutError(InfeconError):
    """Nothing in the search space satisfies the constraints; the message names the binding rule."""


class BackendUnavailableError(InfeconError):
    """A requested solver backend is not installed or not known."""


class SolverLimitError(InfeconError):
    """A solver hit its time limit before proving optimality, so its answer would be partial."""


class SolverInconsistencyError(InfeconError):
    """A solver's proven answer was contradicted by the physics: the frontier it led to would be wrong.

    The epsilon loop trusts each "optimal" as a bound; when a point it emitted on that trust is later
    dominated by a point the physics evaluated, the solver was wrong (OR-Tools 9.15's presolve did this,
    ``formulations.cpsat_solver``), and the run stops instead of printing a wrong frontier.
    """
