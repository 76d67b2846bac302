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


def slack_company_message(
    *, rule_name: str, company: dict[str, Any], trigger: dict[str, Any], company_url: str
) -> dict[str, Any]:
    who = slack_escape(company["name"] or company["domain"] or f"company {company['id']}")
    domain = (
        f" ({slack_escape(company['domain'])})" if company["domain"] and company["name"] != company["domain"] else ""
    )
    text = (
        f":office: *{slack_escape(rule_name)}*: {who}{domain} is *{company['stage']}* with a score of"
        f" *{company['score']}* ({trigger['trigger'].replace('_', ' ')}). <{company_url}|Open the company>"
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
    subjects = ("lead", "company")

    def execute(self, run: ActionRun) -> Outcome:
        base = settings.LEADPULSE_PUBLIC_URL.rstrip("/")
        if run.company is not None:
            body = slack_company_message(
                rule_name=run.rule.name,
                company=run.company,
                trigger=run.execution.trigger,
                company_url=f"{base}/companies/{run.company['id']}/",
            )
            services.execution_deliver(run=run, url=run.config["url"], raw_body=body)
            return DELIVERING
        lead = run.the_lead()
        body = slack_message(
            rule_name=run.rule.name,
            lead=run.document | {"stage": lead.lead_stage, "score": lead.current_score},
            trigger=run.execution.trigger,
            lead_url=f"{base}/leads/{lead.id}/",
        )
        services.execution_deliver(run=run, url=run.config["url"], raw_body=body)
        return DELIVERING
