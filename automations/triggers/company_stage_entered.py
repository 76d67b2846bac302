from typing import Any

from core.contracts import CompanyChange
from scoring.contracts import STAGES, EventFact

from ..config_schema import Choice, ConfigSchema
from . import MODEL, Change, Fired, Trigger, register, steps
from .stage_entered import stage_entered


@register
class CompanyStageEntered(Trigger):
    """A company enters a stage (or passes it upwards) under a model: as `stage_entered`, for the roll-up."""

    key = "company.stage_entered"
    label = "Company Stage Entered"
    position = 80
    subject = "company"
    config = ConfigSchema(
        (
            Choice(
                name="stage", label="Stage", choices=STAGES,
                help_text="Fires when a company's roll-up enters it, or passes it upwards.",
            ),
            MODEL,
        )
    )  # fmt: skip
    example = {"stage": "hot"}

    def fires(self, config: dict[str, Any], change: Change, events: list[EventFact]) -> Fired | None:
        return None  # a company trigger: lead changes never fire it

    def company_fires(self, config: dict[str, Any], change: CompanyChange) -> Fired | None:
        stage = config.get("stage")
        entered = stage_entered(steps(change), stage)
        return None if entered is None else self.fired(**{"from": entered[0], "to": entered[1], "stage": stage})
