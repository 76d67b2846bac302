from typing import TYPE_CHECKING, Any

from .. import services
from ..config_schema import ConfigSchema, Text, Url
from ..models import new_signing_secret
from . import DELIVERING, Action, ActionRun, Outcome, register

if TYPE_CHECKING:
    from accounts.models import Project


@register
class Webhook(Action):
    """A signed POST of the lead (or company) and what fired (`LeadPulse-Signature`, as subscriptions' deliveries)."""

    key = "webhook"
    label = "Webhook"
    position = 10
    subjects = ("lead", "company")
    config = ConfigSchema(
        (
            Url(name="url", label="URL"),
            Text(name="secret", label="Signing secret", required=False, min_length=0, secret=True,
                 help_text="The signing secret (default: a new `whsec_…`); shown in the create response only."),
        )
    )  # fmt: skip
    example = {"url": "https://example.com/hooks/leadpulse"}

    def prepare(self, config: dict[str, Any], *, project: "Project") -> dict[str, Any]:
        return config if config.get("secret") else {**config, "secret": new_signing_secret()}

    def execute(self, run: ActionRun) -> Outcome:
        services.execution_deliver(run=run, url=run.config["url"])
        return DELIVERING
