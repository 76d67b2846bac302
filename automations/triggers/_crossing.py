"""What the score-crossing triggers share: a threshold, and the first step across it."""

from typing import Any

from ..config_schema import ConfigSchema, Integer
from . import Change, steps

THRESHOLD = ConfigSchema((Integer(name="threshold", label="Score", minimum=0, expected="a score"),))


def crossing(change: Change, threshold: Any, *, up: bool) -> tuple[int, int] | None:
    """The (from, to) scores of the first step that crossed `threshold` upwards (or downwards)."""
    for (before, _), (after, _) in steps(change):
        if (before < threshold <= after) if up else (before >= threshold > after):
            return before, after
    return None
