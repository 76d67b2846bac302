from typing import Any

from scoring.contracts import EventFact

from ..config_schema import ConfigSchema, Integer
from . import Change, Fired, Trigger, register


@register
class VelocityAtLeast(Trigger):
    key = "velocity_at_least"
    label = "Velocity At Least"
    position = 40
    config = ConfigSchema(
        (Integer(name="velocity", label="Events in 24 h", minimum=1, help_text="Fires when a lead's events of the "
                 "last 24 hours reach this many."),)
    )  # fmt: skip
    example = {"velocity": 5}

    def fires(self, config: dict[str, Any], change: Change, events: list[EventFact]) -> Fired | None:
        if change.kind == "scored" and change.velocity >= config.get("velocity", 1):
            return self.fired(velocity=change.velocity)
        return None
