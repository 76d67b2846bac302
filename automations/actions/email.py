import json
import logging

from django.conf import settings
from django.core.mail import send_mail

from .. import engine, selectors, services
from ..config_schema import ConfigSchema, Emails
from . import SUCCEEDED, Action, ActionRun, Outcome, register

logger = logging.getLogger(__name__)

RECIPIENTS_PER_RULE = 10


def email_subject(*, rule_name: str, who: str, stage: str, score: int) -> str:
    """One header line: a lead's name comes from public ingest, so no line break or control character survives."""
    return engine.one_line(f"[LeadPulse] {rule_name}: {who} is {stage} ({score})")


@register
class Email(Action):
    """Mail the lead and what fired to project members or verified recipients, within the daily budget."""

    key = "email"
    label = "Email"
    position = 30
    config = ConfigSchema(
        (
            Emails(
                name="to",
                label="Recipients",
                max_items=RECIPIENTS_PER_RULE,
                expected=f"a list of 1 to {RECIPIENTS_PER_RULE} email addresses, each a project member's or a "
                "verified one",
                help_text="Members of the project, or addresses verified through `POST /api/email-recipients` "
                "(400 `recipient_not_allowed` otherwise); checked again at each send.",
            ),
        )
    )
    example = {"to": ["sales@example.com"]}
    subjects = ("lead", "company")

    def execute(self, run: ActionRun) -> Outcome:
        """Mail the rule's recipients that are still allowed, within the daily budget; skipped (and why) otherwise."""
        rule = run.rule
        # checked now, not only when the rule was saved: a member removed since is not mailed
        recipients = selectors.email_recipients_allowed(project=rule.project, addresses=list(run.config.get("to", [])))
        if not recipients:
            return Outcome(
                "skipped", "no_recipients: none of the rule's addresses is a member or a verified recipient any more"
            )
        if not services.email_budget_spend(project_id=rule.project_id, count=len(recipients)):
            logger.warning("automation %s: project %s's email budget is spent", rule.id, rule.project_id)
            budget = settings.LEADPULSE_EMAIL_DAILY_BUDGET
            return Outcome("skipped", f"budget_exhausted: the project's {budget} emails of today are spent")
        if run.company is not None:
            company = run.company
            who, stage, score = company["name"] or company["domain"], company["stage"], company["score"]
        else:
            lead = run.the_lead()
            who, stage, score = lead.name or lead.email or lead.anonymous_id, lead.lead_stage, lead.current_score
        send_mail(
            subject=email_subject(rule_name=rule.name, who=who, stage=stage, score=score),
            message=json.dumps({**run.subject, "trigger": run.execution.trigger}, indent=2),
            from_email=None,
            recipient_list=recipients,
        )
        return SUCCEEDED
