"""Reacting to lead (and company) changes after they commit: fire each rule at most once per window, then act."""

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from celery import current_app as app
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.contracts import EXECUTE_TASK, CompanyChange, LeadChange
from core.leadfacets import lead_facets
from core.pipeline import lead_score_request
from core.realtime import project_broadcast
from ingest.models import Lead
from scoring.selectors import event_facts, lead_profile, leads_model_scores
from scoring.services import lead_lock

from .. import actions, engine, triggers
from ..models import AutomationExecution, AutomationRule, WebhookSubscription
from .deliveries import delivery_create

logger = logging.getLogger(__name__)


# {facet key: {lead id: value}}, as `core.leadfacets` reads them for a batch of leads
FacetValues = Mapping[str, Mapping[int, Any]]


def _lead_document(lead: Lead, facets: FacetValues | None = None) -> dict[str, Any]:
    """The lead as webhooks and actions carry it, with every lead facet's value (null: none), as the lead API has."""
    if facets is None:
        facets = lead_facets.values_for(project_id=lead.project_id, lead_ids=[lead.id])
    return {
        "id": lead.id,
        "anonymousId": lead.anonymous_id,
        "userId": lead.user_id,
        "email": lead.email,
        "name": lead.name,
        "company": lead.company,
        "currentScore": lead.current_score,
        "engagementScore": lead.engagement_score,
        "fitScore": lead.fit_score,
        "fitGrade": lead.fit_grade,
        "leadStage": lead.lead_stage,
        "eventsLast24h": lead.events_last_24h,
        "lastEventAt": lead.last_event_at.isoformat() if lead.last_event_at else None,
        "scores": leads_model_scores(project=lead.project, lead_ids=[lead.id]).for_lead(lead),
        **{facet.key: facets.get(facet.key, {}).get(lead.id) for facet in lead_facets},
    }


def _subscription_events(change: LeadChange) -> list[str]:
    if not change.primary:
        return []  # subscribers hear of the lead once; its `scores` carry every model's
    kinds: list[str] = []
    if change.kind == "merged":
        kinds.append(WebhookSubscription.Event.LEAD_MERGED)
    elif change.kind == "scored" and (change.old_score != change.new_score or change.event_ids):
        kinds.append(WebhookSubscription.Event.LEAD_UPDATED)
    if change.old_stage != change.new_stage:
        kinds.append(WebhookSubscription.Event.LEAD_STAGE_CHANGED)
    return kinds


def lead_changes_handle(*, changes: list[LeadChange]) -> int:
    """Handle a batch's lead changes in order, reading the lead facets' values once for the batch (one call per facet
    and project, only for projects with active rules or subscriptions); return how many rules fired."""
    leads: dict[int, set[int]] = defaultdict(set)
    for change in changes:
        leads[change.project_id].add(change.lead_id)
    listening = set(
        AutomationRule.objects.filter(project_id__in=list(leads), is_active=True).values_list("project_id", flat=True)
    ) | set(
        WebhookSubscription.objects.filter(project_id__in=list(leads), is_active=True).values_list(
            "project_id", flat=True
        )
    )
    facets = {
        project_id: lead_facets.values_for(project_id=project_id, lead_ids=sorted(ids))
        for project_id, ids in leads.items()
        if project_id in listening
    }
    return sum(
        lead_change_handle(change=change, facets=facets[change.project_id])
        for change in changes
        if change.project_id in facets
    )


def lead_change_handle(*, change: LeadChange, facets: FacetValues | None = None) -> int:
    """Fire the project's automations whose trigger this change meets; feed webhook subscribers.

    Runs after the scoring transaction committed. Each firing claims its (rule, lead,
    window) row first: the unique constraint makes concurrent or redelivered changes fire
    a rule at most once per lead and cooldown window. Returns how many rules fired.
    """
    project_id = change.project_id
    rules = list(AutomationRule.objects.filter(project_id=project_id, is_active=True))
    subscriptions = list(WebhookSubscription.objects.filter(project_id=project_id, is_active=True))
    if not rules and not subscriptions:
        return 0
    lead = Lead.objects.filter(project_id=project_id, id=change.lead_id).select_related("project").first()
    if lead is None:
        return 0
    document = _lead_document(lead, facets)
    with transaction.atomic():
        for kind in _subscription_events(change):
            for subscription in subscriptions:
                if kind in subscription.events:
                    delivery_create(
                        project_id=project_id,
                        url=subscription.url,
                        event=kind,
                        data={"lead": document, "change": change.to_message()},
                        subscription=subscription,
                        change_key=f"{change.change_id}:{kind}" if change.change_id else "",
                    )

    needs_events = any(getattr(triggers.registry.get(rule.trigger), "needs_events", False) for rule in rules)
    events = event_facts(event_ids=list(change.event_ids)) if needs_events else []
    subject = {
        "stage": lead.lead_stage,
        "score": lead.current_score,
        "grade": lead.fit_grade,
        "profile": lead_profile(lead),
    }
    fired = 0
    for rule in rules:
        trigger = engine.trigger_fires(rule.trigger, rule.trigger_config, change, events)
        if trigger is None or not engine.lead_conditions_hold(rule.lead_conditions, subject):
            continue
        with transaction.atomic():  # the claim commits with its firing's deliveries, or not at all
            execution = _execution_claim(rule=rule, lead=lead, trigger=trigger, now=timezone.now())
            if execution is None:
                continue  # already fired in this window
            fired += 1
            _automation_fired(project_id=project_id, rule=rule, execution=execution, subscriptions=subscriptions,
                              data={"lead": document, "trigger": trigger}, subject={"leadId": lead.id})  # fmt: skip
    return fired


def _automation_fired(
    *,
    project_id: int,
    rule: AutomationRule,
    execution: AutomationExecution,
    subscriptions: Any,
    data: dict[str, Any],
    subject: dict[str, Any],
) -> None:
    """A claimed execution: its `automation.fired` deliveries, its action's task and the broadcast after commit
    (`data`: what the deliveries carry besides the automation; `subject`: the lead's or the company's id)."""
    with transaction.atomic():
        for subscription in subscriptions:
            if WebhookSubscription.Event.AUTOMATION_FIRED in subscription.events:
                delivery_create(
                    project_id=project_id,
                    url=subscription.url,
                    event="automation.fired",
                    data={"automation": {"id": rule.id, "name": rule.name}, **data},
                    subscription=subscription,
                )
        transaction.on_commit(partial(app.send_task, EXECUTE_TASK, kwargs={"execution_id": execution.id}))
        transaction.on_commit(
            partial(
                project_broadcast,
                project_id=project_id,
                type="automation.fired",
                payload={"automationId": rule.id, "name": rule.name, **subject, "trigger": data["trigger"]},
            )
        )


def _execution_claim(
    *,
    rule: AutomationRule,
    trigger: dict,
    now: datetime,
    lead: Lead | None = None,
    company_id: int | None = None,
    subject: dict[str, Any] | None = None,
) -> AutomationExecution | None:
    """The rule's execution for this lead (or company) in the current window, or None when it has one already."""
    window = int(now.timestamp()) // max(rule.cooldown_seconds, 1)
    try:
        with transaction.atomic():
            return AutomationExecution.objects.create(
                project_id=rule.project_id, rule=rule, lead=lead, company_id=company_id, window=window,
                trigger=trigger, subject=subject or {},
            )  # fmt: skip
    except IntegrityError:
        return None


def _member_document(*, project_id: int, lead_id: int | None) -> dict[str, Any] | None:
    lead = Lead.objects.filter(project_id=project_id, id=lead_id).first() if lead_id is not None else None
    if lead is None:
        return None
    return {
        "id": lead.id,
        "anonymousId": lead.anonymous_id,
        "userId": lead.user_id,
        "email": lead.email,
        "name": lead.name,
        "currentScore": lead.current_score,
        "leadStage": lead.lead_stage,
    }


def company_change_handle(*, change: CompanyChange) -> int:
    """Fire the project's company automations whose trigger this company change meets; return how many fired.

    Runs after the companies transaction committed. Each firing claims its (rule, company, window) row
    first, so concurrent or redelivered changes fire a rule at most once per company and cooldown window.
    """
    project_id = change.project_id
    company_keys = [trigger.key for trigger in triggers.registry if trigger.subject == "company"]
    rules = list(AutomationRule.objects.filter(project_id=project_id, is_active=True, trigger__in=company_keys))
    fired_rules = [
        (rule, trigger)
        for rule in rules
        if (trigger := engine.company_trigger_fires(rule.trigger, rule.trigger_config, change)) is not None
    ]
    if not fired_rules:
        return 0
    subscriptions = list(
        WebhookSubscription.objects.filter(project_id=project_id, is_active=True)
    )  # for `automation.fired`
    company = {
        "id": change.company_id,
        "name": change.name,
        "domain": change.domain,
        "score": change.new_score,
        "stage": change.new_stage,
        "previousScore": change.old_score,
        "previousStage": change.old_stage,
        "model": change.model,
    }
    subject = {"company": company, "member": _member_document(project_id=project_id, lead_id=change.moved_by)}
    fired = 0
    for rule, trigger in fired_rules:
        with transaction.atomic():  # the claim commits with its firing's deliveries, or not at all
            execution = _execution_claim(
                rule=rule, trigger=trigger, now=timezone.now(), company_id=change.company_id, subject=subject
            )
            if execution is None:
                continue  # already fired in this window
            fired += 1
            _automation_fired(
                project_id=project_id, rule=rule, execution=execution, subscriptions=subscriptions,
                data={**subject, "trigger": trigger}, subject={"companyId": change.company_id},
            )  # fmt: skip
    return fired


def automation_execute(*, execution_id: int) -> None:
    """Carry out a claimed execution's action."""
    # claim it: a redelivered task finds attempts > 0 and does nothing
    claimed = AutomationExecution.objects.filter(
        id=execution_id, status=AutomationExecution.Status.PENDING, attempts=0
    ).update(attempts=1)
    execution = (
        AutomationExecution.objects.select_related("rule__project", "lead__project").filter(id=execution_id).first()
    )
    if not claimed or execution is None:
        return
    rule, lead = execution.rule, execution.lead
    if lead is not None:
        run = actions.ActionRun(execution=execution, rule=rule, lead=lead, document=_lead_document(lead))
    else:  # a company's: the company and its member as they were when the rule fired
        subject = execution.subject or {}
        run = actions.ActionRun(
            execution=execution, rule=rule, lead=None, document={}, company=subject.get("company") or {},
            member=subject.get("member"),
        )  # fmt: skip
    try:
        action = actions.registry.get(rule.action)
        if action is None:
            raise LookupError(f"unknown action {rule.action!r}")
        outcome = action.execute(run)
    except Exception as exc:
        logger.exception("automation %s failed", rule.id)
        _execution_finish(execution, status=AutomationExecution.Status.FAILED, error=str(exc))
        return
    if outcome.status == "skipped":
        _execution_finish(execution, status=AutomationExecution.Status.SKIPPED, error=outcome.reason)
    elif outcome.status == "succeeded":
        _execution_finish(execution, status=AutomationExecution.Status.SUCCEEDED)
    # "delivering": the webhook delivery settles the execution's status


def execution_deliver(*, run: actions.ActionRun, url: str, raw_body: dict[str, Any] | None = None) -> None:
    """Queue the POST of a fired rule (signed `automation.fired` unless `raw_body` replaces it); it settles the run.

    Its `data` names what fired for: `lead`, or `company` and the `member` that moved it.
    """
    rule = run.rule
    with transaction.atomic():
        delivery_create(
            project_id=rule.project_id,
            url=url,
            event="automation.fired",
            data={"automation": {"id": rule.id, "name": rule.name}, **run.subject, "trigger": run.execution.trigger},
            execution=run.execution,
            raw_body=raw_body,
        )


def lead_traits_update(*, lead_id: int, update: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Replace a lead's traits by `update(traits)` under its row lock; its fit is rescored after commit."""
    with transaction.atomic():
        locked = lead_lock(lead_id=lead_id)
        if locked is None:
            return
        locked.traits = update(locked.traits)
        locked.save(update_fields=["traits", "updated_at"])
        transaction.on_commit(partial(lead_score_request, lead_ids=[locked.id]))


def _execution_finish(execution: AutomationExecution, *, status: str, code: int | None = None, error: str = "") -> None:
    AutomationExecution.objects.filter(id=execution.id).update(
        status=status,
        response_code=code,
        error=engine.one_line(error),
        attempts=max(execution.attempts, 1),
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )
