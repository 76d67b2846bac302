from typing import Any

from scoring import contracts as scoring_engine

from ..config_schema import Conditions, ConfigSchema, Text
from . import Change, Fired, Trigger, register


@register
class EventReceived(Trigger):
    key = "event_received"
    label = "Event Received"
    position = 50
    config = ConfigSchema(
        (
            Text(name="eventType", label="Event", required=False, default="*", help_text="An event name, or `*`.",
                 invalid="An event name, or *."),
            Conditions(name="conditions", label="Property conditions", help_text="All must hold, as in scoring rules."),
        )
    )  # fmt: skip
    example = {"eventType": "demo_request", "conditions": [{"path": "properties.plan", "op": "eq", "value": "pro"}]}
    needs_events = True

    def fires(self, config: dict[str, Any], change: Change, events: list[scoring_engine.EventFact]) -> Fired | None:
        rule = scoring_engine.Rule(
            id=0,
            event_type=config.get("eventType", "*"),
            points=0,
            conditions=tuple(scoring_engine.compile_condition(c) for c in config.get("conditions", [])),
        )
        for event in events:
            if rule.event_type in ("*", event.name) and rule.matches(event.subject()):
                return self.fired(eventId=event.event_id, eventType=event.name)
        return None
