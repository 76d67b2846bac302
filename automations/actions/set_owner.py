from .. import services
from ..config_schema import ConfigSchema, Text
from . import SUCCEEDED, Action, ActionRun, Outcome, register


@register
class SetOwner(Action):
    """Set the lead's `traits.owner`; its fit is rescored."""

    key = "set_owner"
    label = "Set Owner"
    position = 50
    config = ConfigSchema((Text(name="owner", label="Owner", max_length=254, expected="an owner"),))
    example = {"owner": "ana@example.com"}

    def execute(self, run: ActionRun) -> Outcome:
        owner = run.config["owner"]
        services.lead_traits_update(lead_id=run.the_lead().id, update=lambda traits: {**traits, "owner": owner})
        return SUCCEEDED
