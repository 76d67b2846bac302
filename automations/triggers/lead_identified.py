from typing import Any

from scoring.contracts import EventFact

from . import Change, Fired, Trigger, register


@register
class LeadIdentified(Trigger):
    key = "lead_identified"
    label = "Lead Identified"
    position = 70

    def fires(self, config: dict[str, Any], change: Change, events: list[EventFact]) -> Fired | None:
        return self.fired() if change.kind == "identified" else None
