from typing import Any

from scoring.contracts import EventFact

from . import Change, Fired, Trigger, register
from ._crossing import THRESHOLD, crossing


@register
class ScoreCrossedUp(Trigger):
    key = "score_crossed_up"
    label = "Score Crossed Up"
    position = 20
    config = THRESHOLD
    example = {"threshold": 50}

    def fires(self, config: dict[str, Any], change: Change, events: list[EventFact]) -> Fired | None:
        threshold = config.get("threshold", 0)
        crossed = crossing(change, threshold, up=True)
        return None if crossed is None else self.fired(threshold=threshold, **{"from": crossed[0], "to": crossed[1]})
