from typing import Any

from scoring.contracts import STAGES, EventFact

from ..config_schema import Choice, ConfigSchema
from . import MODEL, Change, Fired, Trigger, register, steps

STAGE_ORDER = {stage: i for i, stage in enumerate(STAGES)}


def stage_entered(path_steps: list[tuple[tuple[int, str], tuple[int, str]]], stage: Any) -> tuple[str, str] | None:
    """The (from, to) step that entered `stage`: into it, or past it on the way up.

    "Tell me when a lead gets hot" includes one that jumps straight to qualified; cold is entered by dropping into it.
    """
    rank = STAGE_ORDER.get(str(stage), -1)
    for (_, before), (_, after) in path_steps:
        if (rank > 0 and STAGE_ORDER[before] < rank <= STAGE_ORDER[after]) or (
            rank == 0 and after == stage and before != stage
        ):
            return before, after
    return None


@register
class StageEntered(Trigger):
    key = "stage_entered"
    label = "Stage Entered"
    position = 10
    config = ConfigSchema(
        (
            Choice(
                name="stage", label="Stage", choices=STAGES, help_text="Fires on entering it, or passing it upwards."
            ),
            MODEL,
        )
    )
    example = {"stage": "hot"}

    def fires(self, config: dict[str, Any], change: Change, events: list[EventFact]) -> Fired | None:
        stage = config.get("stage")
        entered = stage_entered(steps(change), stage)
        return None if entered is None else self.fired(**{"from": entered[0], "to": entered[1], "stage": stage})
