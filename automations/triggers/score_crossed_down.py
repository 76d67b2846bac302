from typing import Any

from scoring.contracts import EventFact

from . import Change, Fired, Trigger, register
from ._crossing import THRESHOLD, crossing


@register
class ScoreCrossedDown(Trigger):
    key = "score_crossed_down"
    label = "Score Crossed Down"
    position = 30
    config = THRESHOLD
    example = {"threshold": 20}

    def fires(self, config: dict[str, Any], change: Change, events: list[EventFact]) -> Fired | None:
        threshold = config.get("threshold", 0)
        crossed = crossing(change, threshold, up=False)
        return None if crossed is None else self.fired(threshold=threshold, **{"from": crossed[0], "to": crossed[1]})
