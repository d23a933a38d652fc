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
