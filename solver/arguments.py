"""Command-line value types shared by every subcommand's parser (``cli``, ``planning``, ``sweeps``, ``fleet``).

A module of its own so that the modules that register subcommands never import ``solver.cli``
(which imports them): the imports stay one-way.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from infecon.instances.limits import KNOB_RANGES, parse_number


def checked(text: str, parse, accept, expected: str):
    """Parse a command-line value and check it, or fail with "must be <expected>, got '<text>'"."""
    try:
        value = parse(text)
    except (ValueError, OverflowError):
        value = None
    if value is None or not accept(value):
        raise argparse.ArgumentTypeError(f"must be {expected}, got '{text}'")
    return value


def whole(text: str) -> int:
    """Text to a whole number through the one parser (``instances.limits.parse_number``): ASCII digits only."""
    return parse_number(text, whole=True)


def number(text: str) -> float:
    """Text to a finite number through the one parser: decimal literals only (no ``nan``, ``inf``, ``0x10``)."""
    return parse_number(text)


def tokens(text: str) -> int:
    """``8000``, ``8k`` or ``100K``: a whole number of tokens."""
    return parse_number(text, whole=True, thousands_suffix=True)


def positive_int(text: str) -> int:
    return checked(text, whole, lambda v: v >= 1, "a positive integer")


def positive_float(text: str) -> float:
    return checked(text, number, lambda v: 0 < v < float("inf"), "a positive number")


def worker_count(text: str) -> int:
    """``--jobs``: worker processes, 1 to 4 per core (``solver.parallel.max_jobs``)."""
    from infecon.solver.parallel import max_jobs

    return checked(text, whole, lambda v: 1 <= v <= max_jobs(),
                   f"an integer in [1, {max_jobs()}] (at most 4 worker processes per core on this machine)")


def knob(name: str, parse=None) -> Callable[[str], object]:
    """An argparse type for a knob, checked against its plausible range (``instances.limits.KNOB_RANGES``).

    ``parse`` is kept for callers that name a type; the knob's own rule decides (whole numbers for integer
    knobs, ``8k`` for token counts), through the one parser every door uses.
    """
    rule = KNOB_RANGES[name]
    parser = tokens if rule.unit == "tokens" else whole if rule.whole else number

    def convert(text: str):
        return checked(text, parser, rule.accepts, rule.describe())

    convert.__name__ = name  # argparse names the type in some messages
    return convert


def recipe_engine(text: str) -> str:
    """``--recipe ENGINE``: an engine ``solver.recipes`` writes launch commands for (vllm, sglang, trtllm)."""
    from infecon.solver.recipes import RECIPE_ENGINES

    if text.lower() not in RECIPE_ENGINES:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(RECIPE_ENGINES)}, got '{text}'")
    return text.lower()
def confidence(text: str) -> float:
    """``--confidence``: plan with the pessimistic end of the error band, reached with this probability."""
    from infecon.formulations.bands import CONFIDENCE_RANGE

    low, high = CONFIDENCE_RANGE
    return checked(text, float, lambda v: low <= v <= high, f"a number in [{low}, {high}] (e.g. 0.9)")


CONFIDENCE_HELP = ("plan with the pessimistic end of the error band: each configuration's speed is the one it "
                   "reaches with this probability (0.9: the 80 %% band's low end), capacity comes from it and SLOs "
                   "are checked on the matching high latency (range 0.5-0.95; default: the model's prediction)")
