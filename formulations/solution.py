"""What one solve of an encoding returns; shared by the encodings here and the backends in ``solver``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Solution:
    """A solve's answer: the configuration index (None unless proven optimal) and a status.

    Statuses: ``OPTIMAL`` (proven), ``INFEASIBLE`` (proven), ``TIME_LIMIT`` or ``UNKNOWN``.
    """

    index: int | None
    status: str


@dataclass(frozen=True)
class Answer:
    """One solve of a relaxed encoding (``formulations.relaxation``): which layout the solver points at.

    ``layout`` indexes the encoding's layouts; ``bound`` is the solver's proven lower bound on its
    objective over every layout it was allowed (seconds per token for the latency objective).
    Statuses as for ``Solution``; ``layout`` and ``bound`` are None unless ``OPTIMAL``.
    """

    status: str
    layout: int | None = None
    bound: float | None = None
