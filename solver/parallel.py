"""Run independent tasks in parallel: in this process, a local process pool, or on Ray.

Planning runs and fleet candidate generation are embarrassingly parallel (one task per scenario,
or per workload x GPU type). ``run_tasks`` keeps their code free of the choice:

* ``jobs == 1`` (or one task): in this process, in order;
* default: a ``ProcessPoolExecutor`` of ``jobs`` workers on this machine;
* ``ray=True``: a local Ray runtime; ``ray_address="ray://host:10001"`` (or ``"auto"``) joins an
  existing cluster, whose workers must have infecon installed (``pip install 'infecon[ray]'``).

Tasks and results must pickle; a task's function must be importable at module level. A task
that raises is reported as ``("error", message)`` rather than stopping the others.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from infecon.formulations.errors import InfeconError, InstanceError


def max_jobs() -> int:
    """The most worker processes a run may ask for: 4 per core.

    Why a bound: each worker is a whole Python process holding its own problem tables, so
    ``--jobs 100000`` on a laptop forks until memory runs out instead of going faster; past a few
    per core, workers only wait for each other. Ray's cluster size is Ray's business and not bounded here.
    """
    return 4 * (os.cpu_count() or 1)


def check_jobs(jobs: object, *, label: str = "'jobs'") -> None:
    """Raise ``InstanceError`` unless ``jobs`` is a whole number in ``[1, max_jobs()]``."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= max_jobs():
        raise InstanceError(f"{label} must be an integer in [1, {max_jobs()}] (at most 4 worker processes per "
                            f"core on this machine), got {jobs!r}")


def _guarded(function: Callable[[Any], Any], task: Any) -> tuple[str, Any]:
    try:
        return "ok", function(task)
    except InfeconError as exc:
        return "error", str(exc)


def progress_bar(total: int, desc: str, enabled: bool | None):
    """A tqdm bar on stderr; ``enabled=None`` shows it only when stderr is a terminal."""
    from tqdm import tqdm

    disable = total == 0 or ((not sys.stderr.isatty()) if enabled is None else not enabled)
    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False, disable=disable)


def _ray_map(function, tasks: Sequence[Any], address: str | None, done_with) -> list[tuple[str, Any]]:
    try:
        import ray
    except ImportError:
        raise InfeconError("--ray needs Ray: pip install 'infecon[ray]' (or pip install ray)") from None
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise InfeconError(f"cannot reach the Ray cluster at {address!r}: {exc}") from None
    try:
        remote = ray.remote(_guarded)
        pending = {remote.remote(function, task): i for i, task in enumerate(tasks)}
        results: list[Any] = [None] * len(tasks)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                index = pending.pop(ref)
                try:
                    results[index] = ray.get(ref)
                except Exception as exc:  # a worker that died: report this task, keep the others
                    results[index] = ("error", f"{type(exc).__name__}: {exc}")
                done_with(index, results[index])
        return results
    finally:
        if started_here:
            ray.shutdown()


def run_tasks(function: Callable[[Any], Any], tasks: Sequence[Any], *, jobs: int | None = None, ray: bool = False,
              ray_address: str | None = None, desc: str = "tasks", progress: bool | None = None,
              on_result: Callable[[int, tuple[str, Any]], None] | None = None) -> list[tuple[str, Any]]:
    """``[("ok", function(task)) or ("error", reason)]`` in the order of ``tasks``.

    Args:
        jobs: worker processes for the local pool (default: all cores); 1 runs in this process; at most
            ``max_jobs()`` (4 per core), else ``InstanceError``.
        ray: use Ray (a local runtime unless ``ray_address`` names a cluster).
        ray_address: join this Ray cluster (implies ``ray``).
        progress: show a progress bar on stderr (default: when stderr is a terminal).
        on_result: called with (task index, outcome) as each task finishes, e.g. to store it at once.
    """
    if jobs is None:
        jobs = os.cpu_count() or 1
    check_jobs(jobs)
    with progress_bar(len(tasks), desc, progress) as bar:
        def done_with(index: int, outcome: tuple[str, Any]) -> None:
            if on_result is not None:
                on_result(index, outcome)
            bar.update()

        if ray or ray_address:
            return _ray_map(function, tasks, ray_address, done_with)
        if jobs == 1 or len(tasks) <= 1:
            results = []
            for index, task in enumerate(tasks):
                results.append(_guarded(function, task))
                done_with(index, results[-1])
            return results
        results: list[Any] = [None] * len(tasks)
        with ProcessPoolExecutor(max_workers=min(jobs, len(tasks))) as pool:
            futures = {pool.submit(_guarded, function, task): i for i, task in enumerate(tasks)}
            for future in as_completed(futures):
                index = futures[future]
                try:
                    results[index] = future.result()
                except Exception as exc:  # a bug or a dead worker in one task must not lose the others
                    results[index] = ("error", f"{type(exc).__name__}: {exc}")
                done_with(index, results[index])
        return results
