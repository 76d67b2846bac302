from typing import Any

from django.conf import settings

from .. import services
from ..config_schema import ConfigSchema, Url
from . import DELIVERING, Action, ActionRun, Outcome, register


def slack_escape(text: Any) -> str:
    """Slack mrkdwn control characters: lead names come from public ingest (no <!channel> pings)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(*, rule_name: str, lead: dict[str, Any], trigger: dict[str, Any], lead_url: str) -> dict[str, Any]:
    who = slack_escape(lead["name"] or lead["email"] or lead["anonymousId"])
    rule_name = slack_escape(rule_name)
    contact = f" ({slack_escape(lead['email'])})" if lead["email"] and lead["name"] else ""
    text = (
        f":fire: *{rule_name}*: {who}{contact} is *{lead['stage']}* with a score of *{lead['score']}*"
        f" ({trigger['trigger'].replace('_', ' ')}). <{lead_url}|Open the lead>"
    )
    return {"text": text}


@register
class Slack(Action):
    """A message to a Slack incoming webhook: who, score, stage, what fired and a link to the lead (unsigned)."""

    key = "slack"
    label = "Slack"
    position = 20
    config = ConfigSchema(
        (Url(name="url", label="Incoming-webhook URL", help_text="A Slack incoming-webhook URL.",
             expected="a Slack incoming-webhook URL"),)
    )  # fmt: skip
    example = {"url": "https://hooks.slack.com/services/T000/B000/XXXX"}

    def execute(self, run: ActionRun) -> Outcome:
        lead = run.lead
        body = slack_message(
            rule_name=run.rule.name,
            lead=run.document | {"stage": lead.lead_stage, "score": lead.current_score},
            trigger=run.execution.trigger,
            lead_url=f"{settings.LEADPULSE_PUBLIC_URL.rstrip('/')}/leads/{lead.id}/",
        )
        services.execution_deliver(run=run, url=run.config["url"], raw_body=body)
        return DELIVERING
