"""The CP-SAT backend meets the backend contract."""

from tests.solver.backend_contract import BackendContract


class TestCpSatBackend(BackendContract):
    backend_name = "cpsat"
