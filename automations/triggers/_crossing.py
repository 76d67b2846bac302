"""What the score-crossing triggers share: a threshold, and the first step across it."""

from typing import Any

from core.contracts import CompanyChange
from scoring.contracts import EventFact

from ..config_schema import ConfigSchema, Integer
from . import MODEL, Change, Fired, Trigger, steps

THRESHOLD = ConfigSchema((Integer(name="threshold", label="Score", minimum=0, expected="a score"), MODEL))


def crossing(change: Change | CompanyChange, threshold: Any, *, up: bool) -> tuple[int, int] | None:
    """The (from, to) scores of the first step that crossed `threshold` upwards (or downwards)."""
    for (before, _), (after, _) in steps(change):
        if (before < threshold <= after) if up else (before >= threshold > after):
            return before, after
    return None


class CrossingTrigger(Trigger):
    """Fires when the score crosses the configured threshold upwards (`up`) or downwards."""

    up: bool
    config = THRESHOLD

    def fires(self, config: dict[str, Any], change: Change, events: list[EventFact]) -> Fired | None:
        threshold = config.get("threshold", 0)
        crossed = crossing(change, threshold, up=self.up)
        return None if crossed is None else self.fired(threshold=threshold, **{"from": crossed[0], "to": crossed[1]})
