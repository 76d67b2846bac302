from typing import Any

from .. import services
from ..config_schema import ConfigSchema, Text
from . import SUCCEEDED, Action, ActionRun, Outcome, register


@register
class AddTag(Action):
    """Add a tag to the lead's `traits.tags` (once); its fit is rescored."""

    key = "add_tag"
    label = "Add Tag"
    position = 40
    config = ConfigSchema((Text(name="tag", label="Tag", max_length=64, expected="a tag of at most 64 characters"),))
    example = {"tag": "hot-lead"}

    def execute(self, run: ActionRun) -> Outcome:
        tag = run.config["tag"]

        def tagged(traits: dict[str, Any]) -> dict[str, Any]:
            return {**traits, "tags": [*(t for t in traits.get("tags", []) if t != tag), tag]}

        services.lead_traits_update(lead_id=run.the_lead().id, update=tagged)
        return SUCCEEDED
