from typing import Any

from core.contracts import CompanyChange
from scoring.contracts import EventFact

from . import Change, Fired, Trigger, register
from ._crossing import THRESHOLD, crossing


@register
class CompanyScoreCrossedUp(Trigger):
    """A company's roll-up crosses the threshold upwards under a model: as `score_crossed_up`, for the roll-up."""

    key = "company.score_crossed_up"
    label = "Company Score Crossed Up"
    position = 90
    subject = "company"
    config = THRESHOLD
    example = {"threshold": 100}

    def fires(self, config: dict[str, Any], change: Change, events: list[EventFact]) -> Fired | None:
        return None  # a company trigger: lead changes never fire it

    def company_fires(self, config: dict[str, Any], change: CompanyChange) -> Fired | None:
        threshold = config.get("threshold", 0)
        crossed = crossing(change, threshold, up=True)
        return None if crossed is None else self.fired(threshold=threshold, **{"from": crossed[0], "to": crossed[1]})
