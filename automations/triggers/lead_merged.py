from typing import Any

from scoring.contracts import EventFact

from . import Change, Fired, Trigger, register


@register
class LeadMerged(Trigger):
    key = "lead_merged"
    label = "Lead Merged"
    position = 60

    def fires(self, config: dict[str, Any], change: Change, events: list[EventFact]) -> Fired | None:
        return self.fired(mergedLeadId=change.merged_lead_id) if change.kind == "merged" else None
