"""Automations and webhooks: fire once per window after scoring commits, deliver for real."""

import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import httpx
from celery import current_app as app
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from accounts.models import Project
from core import metrics
from core.contracts import DELIVER_TASK, EXECUTE_TASK, REPLAY_TASK, LeadChange
from core.errors import ApplicationError
from core.models import FailedJob
from core.pipeline import lead_listeners_changed, lead_score_request
from core.ratelimits import RateLimited
from core.realtime import project_broadcast
from ingest.models import Lead
from scoring.selectors import event_facts, lead_profile
from scoring.services import lead_lock

from . import actions, config_schema, engine, selectors, triggers
from .models import (
    AutomationExecution,
    AutomationRule,
    EmailSendDay,
    VerifiedRecipient,
    WebhookDelivery,
    WebhookSubscription,
)
from .ssrf import UnsafeUrl, url_check

logger = logging.getLogger(__name__)

RULE_FIELDS = (
    "name",
    "is_active",
    "trigger",
    "trigger_config",
    "lead_conditions",
    "action",
    "action_config",
    "cooldown_seconds",
)


def url_validate(url: str, *, field: str = "url") -> str:
    """Refuse non-http(s) and internal addresses at save time (checked again at delivery)."""
    try:
        url_check(url, allow_private=settings.LEADPULSE_WEBHOOK_ALLOW_PRIVATE)
    except UnsafeUrl as exc:
        raise ApplicationError(str(exc), field=field, code="unsafe_url") from None
    return url


# --- Rules --------------------------------------------------------------------------------


def _action_config_prepare(action_key: str, config: dict[str, Any], *, project: Project) -> dict[str, Any]:
    """Vet the config's URLs (public hosts only) and recipients (members or verified), then let the action finish it."""
    action = actions.registry.get(action_key)
    if action is None:
        raise ApplicationError(f"Unknown action {action_key!r}.", field="action", code="invalid")
    for setting in action.config:
        if setting.name not in config and not setting.required:
            continue
        path = f"actionConfig.{setting.name}"
        if isinstance(setting, config_schema.Url):
            url_validate(config.get(setting.name, ""), field=path)
        elif isinstance(setting, config_schema.Emails):
            recipients_validate(project=project, addresses=config.get(setting.name, []), field=path)
    return action.prepare(config, project=project)


@transaction.atomic
def automation_create(*, project: Project, data: dict[str, Any]) -> AutomationRule:
    data = {k: v for k, v in data.items() if k in RULE_FIELDS}
    data["action_config"] = _action_config_prepare(data["action"], data.get("action_config", {}), project=project)
    lead_listeners_changed(project_id=project.id)
    return AutomationRule.objects.create(project=project, **data)


@transaction.atomic
def automation_update(*, rule: AutomationRule, data: dict[str, Any]) -> AutomationRule:
    previous_secret = rule.action_config.get("secret")
    changed = [field for field in RULE_FIELDS if field in data and getattr(rule, field) != data[field]]
    for field in changed:
        setattr(rule, field, data[field])
    if "action" in changed or "action_config" in changed:
        # the signing secret survives a changed URL: receivers keep verifying
        config = (
            {"secret": previous_secret, **data.get("action_config", rule.action_config)}
            if previous_secret
            else {**data.get("action_config", rule.action_config)}
        )
        rule.action_config = _action_config_prepare(rule.action, config, project=rule.project)
        changed.append("action_config")
    if changed:
        rule.save(update_fields=[*set(changed), "updated_at"])
        lead_listeners_changed(project_id=rule.project_id)
    return rule


@transaction.atomic
def automation_delete(*, rule: AutomationRule) -> None:
    lead_listeners_changed(project_id=rule.project_id)
    rule.delete()


# --- Email recipients and the daily email budget ---------------------------------------------


class EmailBudgetExhausted(RateLimited):
    default_detail = "The project's emails for today are spent."
    default_code = "email_budget_exhausted"


def recipients_validate(*, project: Project, addresses: list[str], field: str) -> None:
    """Refuse an address that is neither a project member's nor verified by its owner (no open relay)."""
    allowed = {address.lower() for address in selectors.email_recipients_allowed(project=project, addresses=addresses)}
    for address in addresses:
        if address.lower() not in allowed:
            raise ApplicationError(
                f"{address} is neither a member of this project nor a verified recipient: request its verification.",
                field=field,
                code="recipient_not_allowed",
            )


def email_budget_spend(*, project_id: int, count: int) -> bool:
    """Take `count` emails from the project's budget for today (UTC); False, taking none, when too few are left.

    Counted by one conditional UPDATE of a row per project and day: concurrent workers on any host
    queue on its lock and each sees the others' counts.
    """
    day = timezone.now().date()
    with transaction.atomic():
        EmailSendDay.objects.get_or_create(project_id=project_id, day=day)
        spent = EmailSendDay.objects.filter(
            project_id=project_id, day=day, sent__lte=settings.LEADPULSE_EMAIL_DAILY_BUDGET - count
        ).update(sent=F("sent") + count)
    return spent == 1


def _seconds_to_tomorrow() -> int:
    now = timezone.now()
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(int((tomorrow - now).total_seconds()), 1)


@transaction.atomic
def email_recipient_request(*, project: Project, email: str) -> tuple[VerifiedRecipient, bool]:
    """Mail `email` a link that makes it a verified recipient of the project's automation emails.

    Returns the recipient and whether a link was sent (not when it is verified already). Each request
    replaces the previous link; the mail counts against the daily email budget (429 when spent).
    """
    email = email.lower()
    if email in selectors.email_recipients_allowed(project=project, addresses=[email]):
        recipient = VerifiedRecipient.objects.filter(project=project, email=email, verified_at__isnull=False).first()
        if recipient is None:
            raise ApplicationError(
                f"{email} is a member of this project: it needs no verification.", field="email", code="member"
            )
        return recipient, False
    if not email_budget_spend(project_id=project.id, count=1):
        raise EmailBudgetExhausted(wait=_seconds_to_tomorrow())
    recipient, _ = VerifiedRecipient.objects.get_or_create(project=project, email=email)
    token = engine.recipient_token_make(recipient_id=recipient.id, nonce=secrets.token_urlsafe(16))
    recipient.token_hash = engine.token_hash(token)
    recipient.save(update_fields=["token_hash", "updated_at"])
    link = settings.LEADPULSE_PUBLIC_URL.rstrip("/") + reverse("email-recipient-confirm-page", args=[token])
    message = (
        f"The LeadPulse project “{engine.one_line(project.name)}” asks to send its automation emails to "
        f"{email}.\n\nTo agree, open this link within 7 days and confirm:\n{link}\n\n"
        "If you did not expect this, ignore this email: nothing will be sent to you."
    )
    transaction.on_commit(
        partial(send_mail, "Confirm LeadPulse automation emails", message, None, [email]), robust=True
    )
    return recipient, True


def email_recipient_confirm(*, token: str) -> VerifiedRecipient:
    """Mark the recipient a confirmation link names as verified; the link works once, and only the latest one."""
    with transaction.atomic():
        recipient = selectors.email_recipient_for_token(token=token, lock=True)
        if recipient is None:
            raise ApplicationError(
                "This link is invalid, expired, used or replaced by a newer one.", code="invalid_token"
            )
        recipient.verified_at = timezone.now()
        recipient.token_hash = ""
        recipient.save(update_fields=["verified_at", "token_hash", "updated_at"])
    return recipient


def email_recipient_delete(*, recipient: VerifiedRecipient) -> None:
    """Forget a recipient: rules naming it stop mailing it at once (recipients are checked at send time)."""
    recipient.delete()


# --- Subscriptions ------------------------------------------------------------------------


@transaction.atomic
def webhook_subscribe(*, project: Project, url: str, events: list[str]) -> WebhookSubscription:
    """Subscribe a URL to lead events; its signing secret is returned once, here."""
    lead_listeners_changed(project_id=project.id)
    return WebhookSubscription.objects.create(project=project, url=url_validate(url), events=sorted(set(events)))


@transaction.atomic
def webhook_unsubscribe(*, subscription: WebhookSubscription) -> None:
    lead_listeners_changed(project_id=subscription.project_id)
    subscription.delete()


def webhook_test_send(*, subscription: WebhookSubscription) -> WebhookDelivery:
    """Queue a signed `ping` to the subscription now."""
    with transaction.atomic():
        delivery = delivery_create(
            project_id=subscription.project_id,
            url=subscription.url,
            event="ping",
            data={"message": "A test delivery from LeadPulse."},
            subscription=subscription,
        )
    assert delivery is not None  # only deliveries of a change are deduplicated
    return delivery


# --- Reacting to lead changes ---------------------------------------------------------------


def _lead_document(lead: Lead) -> dict[str, Any]:
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
    }


def _subscription_events(change: LeadChange) -> list[str]:
    kinds: list[str] = []
    if change.kind == "merged":
        kinds.append(WebhookSubscription.Event.LEAD_MERGED)
    elif change.kind == "scored" and (change.old_score != change.new_score or change.event_ids):
        kinds.append(WebhookSubscription.Event.LEAD_UPDATED)
    if change.old_stage != change.new_stage:
        kinds.append(WebhookSubscription.Event.LEAD_STAGE_CHANGED)
    return kinds


def lead_change_handle(*, change: LeadChange) -> int:
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
    lead = Lead.objects.filter(project_id=project_id, id=change.lead_id).first()
    if lead is None:
        return 0
    document = _lead_document(lead)
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
        execution = _execution_claim(rule=rule, lead=lead, trigger=trigger, now=timezone.now())
        if execution is None:
            continue  # already fired in this window
        fired += 1
        with transaction.atomic():
            for subscription in subscriptions:
                if WebhookSubscription.Event.AUTOMATION_FIRED in subscription.events:
                    delivery_create(
                        project_id=project_id,
                        url=subscription.url,
                        event="automation.fired",
                        data={"automation": {"id": rule.id, "name": rule.name}, "lead": document, "trigger": trigger},
                        subscription=subscription,
                    )
            transaction.on_commit(partial(app.send_task, EXECUTE_TASK, kwargs={"execution_id": execution.id}))
        project_broadcast(
            project_id=project_id,
            type="automation.fired",
            payload={"automationId": rule.id, "name": rule.name, "leadId": lead.id, "trigger": trigger},
        )
    return fired


def _execution_claim(*, rule: AutomationRule, lead: Lead, trigger: dict, now: datetime) -> AutomationExecution | None:
    window = int(now.timestamp()) // max(rule.cooldown_seconds, 1)
    try:
        with transaction.atomic():
            return AutomationExecution.objects.create(
                project_id=rule.project_id, rule=rule, lead=lead, window=window, trigger=trigger
            )
    except IntegrityError:
        return None


def automation_execute(*, execution_id: int) -> None:
    """Carry out a claimed execution's action."""
    # claim it: a redelivered task finds attempts > 0 and does nothing
    claimed = AutomationExecution.objects.filter(
        id=execution_id, status=AutomationExecution.Status.PENDING, attempts=0
    ).update(attempts=1)
    execution = AutomationExecution.objects.select_related("rule__project", "lead").filter(id=execution_id).first()
    if not claimed or execution is None:
        return
    rule, lead = execution.rule, execution.lead
    run = actions.ActionRun(execution=execution, rule=rule, lead=lead, document=_lead_document(lead))
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
    """Queue the POST of a fired rule (signed `automation.fired` unless `raw_body` replaces it); it settles the run."""
    rule = run.rule
    with transaction.atomic():
        delivery_create(
            project_id=rule.project_id,
            url=url,
            event="automation.fired",
            data={
                "automation": {"id": rule.id, "name": rule.name},
                "lead": run.document,
                "trigger": run.execution.trigger,
            },
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


# --- Deliveries -----------------------------------------------------------------------------


def delivery_create(
    *,
    project_id: int,
    url: str,
    event: str,
    data: dict[str, Any],
    subscription: WebhookSubscription | None = None,
    execution: AutomationExecution | None = None,
    raw_body: dict[str, Any] | None = None,
    change_key: str = "",
) -> WebhookDelivery | None:
    """Record a delivery and send it after commit (call inside a transaction).

    With a `change_key`, a subscription gets one delivery per change: None when it already has it.
    """
    delivery_id = uuid.uuid4()
    payload = raw_body or {
        "id": str(delivery_id),
        "type": event,
        "createdAt": timezone.now().isoformat(),
        "projectId": project_id,
        "data": data,
    }
    try:
        with transaction.atomic():  # a savepoint: a concurrent redelivery may insert the same change first
            delivery = WebhookDelivery.objects.create(
                project_id=project_id,
                subscription=subscription,
                execution=execution,
                delivery_id=delivery_id,
                url=url,
                event=event,
                payload=payload,
                signed=raw_body is None,
                change_key=change_key,
            )
    except IntegrityError:
        if not change_key:
            raise
        return None
    transaction.on_commit(lambda: app.send_task(DELIVER_TASK, kwargs={"delivery_id": delivery.id}))
    return delivery


@dataclass(frozen=True)
class Attempt:
    status: str  # "succeeded", "retry" or "failed"
    retry_in: float | None = None


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST to the vetted address of `url` (no second DNS lookup), without following redirects: the status code.

    The response body is never read: whatever the receiver answers, only its status is kept.
    """
    target = url_check(url, allow_private=settings.LEADPULSE_WEBHOOK_ALLOW_PRIVATE)
    parts = httpx.URL(url)
    address = f"[{target.address}]" if ":" in target.address else target.address
    default_port = 443 if parts.scheme == "https" else 80
    host_header = parts.host if target.port == default_port else f"{parts.host}:{target.port}"
    pinned = parts.copy_with(host=address.strip("[]"))
    with (
        httpx.Client(timeout=settings.LEADPULSE_WEBHOOK_TIMEOUT_SECONDS, follow_redirects=False) as client,
        client.stream(
            "POST",
            pinned,
            content=body,
            headers={**headers, "Host": host_header},
            extensions={"sni_hostname": parts.host} if parts.scheme == "https" else {},
        ) as response,
    ):
        return response.status_code


def delivery_attempt(*, delivery_id: int) -> Attempt:
    """Try a pending delivery once; decide whether to retry, and dead-letter it when retries run out."""
    delivery = WebhookDelivery.objects.select_related("subscription", "execution__rule").filter(id=delivery_id).first()
    if delivery is None or delivery.status != WebhookDelivery.Status.PENDING:
        return Attempt("done")
    subscription = delivery.subscription
    if subscription is not None and not subscription.is_active and delivery.event != "ping":
        return _delivery_settle(delivery, ok=False, code=None, error="The subscription is disabled.", final=True)
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "LeadPulse-Webhooks/1.0",
        "LeadPulse-Event": delivery.event,
        "LeadPulse-Delivery": str(delivery.delivery_id),
    }
    secret = (
        subscription.secret
        if subscription
        else (delivery.execution.rule.action_config.get("secret", "") if delivery.execution else "")
    )
    if delivery.signed and secret:
        headers["LeadPulse-Signature"] = engine.signature_header(secret=secret, timestamp=int(time.time()), body=body)
    try:
        code = _post(delivery.url, body, headers)
    except UnsafeUrl as exc:
        return _delivery_settle(delivery, ok=False, code=None, error=str(exc), final=True)
    except httpx.HTTPError as exc:
        timeout = settings.LEADPULSE_WEBHOOK_TIMEOUT_SECONDS
        return _delivery_settle(delivery, ok=False, code=None, error=engine.error_reason(exc, timeout=timeout))
    ok = 200 <= code < 300
    return _delivery_settle(delivery, ok=ok, code=code, error="" if ok else engine.status_reason(code))


def _delivery_settle(
    delivery: WebhookDelivery, *, ok: bool, code: int | None, error: str, final: bool = False
) -> Attempt:
    """Record an attempt's outcome (every delivery outcome passes here) and decide what comes next."""
    error = engine.one_line(error)
    attempts = delivery.attempts + 1
    delays = settings.LEADPULSE_WEBHOOK_RETRY_DELAYS
    retry = not ok and not final and attempts <= len(delays)
    now = timezone.now()
    status = (
        WebhookDelivery.Status.SUCCEEDED
        if ok
        else WebhookDelivery.Status.PENDING
        if retry
        else WebhookDelivery.Status.FAILED
    )
    with transaction.atomic():
        WebhookDelivery.objects.filter(id=delivery.id).update(
            status=status,
            attempts=attempts,
            response_code=code,
            error=error,
            delivered_at=now if ok else None,
            updated_at=now,
        )
        if delivery.subscription_id:
            _subscription_health(delivery.subscription_id, ok=ok)
        if status != WebhookDelivery.Status.PENDING and delivery.execution_id:
            AutomationExecution.objects.filter(id=delivery.execution_id).update(
                status=AutomationExecution.Status.SUCCEEDED if ok else AutomationExecution.Status.FAILED,
                attempts=attempts,
                response_code=code,
                error=error,
                finished_at=now,
                updated_at=now,
            )
        if status == WebhookDelivery.Status.FAILED:
            FailedJob.objects.create(
                project_id=delivery.project_id,
                kind="webhook.delivery",
                reference=str(delivery.delivery_id),
                payload={
                    "task": REPLAY_TASK,
                    "kwargs": {"delivery_id": delivery.id},
                    "url": delivery.url,
                    "event": delivery.event,
                },
                error=error,
                attempts=attempts,
            )
            metrics.dead_lettered(kind="webhook.delivery")
    metrics.webhook_delivery(outcome="succeeded" if ok else "retrying" if retry else "failed")
    if retry:
        return Attempt("retry", retry_in=delays[attempts - 1])
    return Attempt("succeeded" if ok else "failed")


def _subscription_health(subscription_id: int, *, ok: bool) -> None:
    if ok:
        WebhookSubscription.objects.filter(id=subscription_id).update(consecutive_failures=0)
        return
    subscription = WebhookSubscription.objects.select_for_update().get(id=subscription_id)
    subscription.consecutive_failures += 1
    fields = ["consecutive_failures"]
    if subscription.is_active and subscription.consecutive_failures >= settings.LEADPULSE_WEBHOOK_DISABLE_AFTER:
        subscription.is_active = False
        subscription.disabled_at = timezone.now()
        subscription.disabled_reason = f"{subscription.consecutive_failures} failed attempts in a row"
        fields += ["is_active", "disabled_at", "disabled_reason"]
        lead_listeners_changed(project_id=subscription.project_id)
    subscription.save(update_fields=fields)


def delivery_replay(*, delivery_id: int) -> None:
    """Send a failed delivery again from scratch (from the dead-letter queue)."""
    with transaction.atomic():
        updated = WebhookDelivery.objects.filter(id=delivery_id, status=WebhookDelivery.Status.FAILED).update(
            status=WebhookDelivery.Status.PENDING, attempts=0, error="", updated_at=timezone.now()
        )
        if updated:
            transaction.on_commit(lambda: app.send_task(DELIVER_TASK, kwargs={"delivery_id": delivery_id}))


def lead_deliveries_erase(*, project_id: int, lead_ids: list[int]) -> int:
    """Delete webhook deliveries whose payload carries one of these leads (a lead-erasure hook)."""
    deleted, _ = WebhookDelivery.objects.filter(project_id=project_id, payload__data__lead__id__in=lead_ids).delete()
    return deleted
