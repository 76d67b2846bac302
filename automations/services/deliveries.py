"""Webhook deliveries: record one, POST it to the vetted address, retry, dead-letter and replay it."""

import json
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from celery import current_app as app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from core import metrics
from core.contracts import DELIVER_TASK, REPLAY_TASK
from core.models import FailedJob
from core.pipeline import lead_listeners_changed

from .. import engine
from ..models import AutomationExecution, WebhookDelivery, WebhookSubscription
from ..ssrf import UnsafeUrl, url_check


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


def _delivery_claim(*, delivery_id: int, fresh: bool, claimant: str) -> bool:
    """Claim a pending delivery for one attempt (until it settles, or its claim lapses with a killed worker's).

    A second deliver message for it meanwhile (a duplicate, the outbox sweep's) claims nothing, so sends nothing;
    the claimant's own message, redelivered after its worker died mid-attempt, claims it again.
    `fresh`: only a delivery never attempted (the sweep's message must not bring a retry forward).
    """
    now = timezone.now()
    pending = WebhookDelivery.objects.filter(id=delivery_id, status=WebhookDelivery.Status.PENDING).filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now) | Q(claimed_by=claimant)
    )
    if fresh:
        pending = pending.filter(attempts=0)
    lease = timedelta(seconds=settings.LEADPULSE_WEBHOOK_CLAIM_SECONDS)
    return pending.update(claimed_until=now + lease, claimed_by=claimant) == 1


def delivery_attempt(*, delivery_id: int, fresh: bool = False, claimant: str = "") -> Attempt:
    """Try a pending delivery once; decide whether to retry, and dead-letter it when retries run out.

    `claimant`: the deliver message's task id (its redelivery carries the same); none, a claimant of its own.
    """
    if not _delivery_claim(delivery_id=delivery_id, fresh=fresh, claimant=claimant or uuid.uuid4().hex):
        return Attempt("done")
    delivery = WebhookDelivery.objects.select_related("subscription", "execution__rule").filter(id=delivery_id).first()
    if delivery is None:
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
            claimed_until=None,
            claimed_by="",
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
            status=WebhookDelivery.Status.PENDING, attempts=0, error="", claimed_until=None, updated_at=timezone.now()
        )
        if updated:
            transaction.on_commit(lambda: app.send_task(DELIVER_TASK, kwargs={"delivery_id": delivery_id}))


def lead_deliveries_erase(*, project_id: int, lead_ids: list[int]) -> int:
    """Delete webhook deliveries whose payload carries one of these leads (a lead-erasure hook).

    A company's firing that names one as the member that moved it keeps its execution, without the member.
    """
    deliveries = WebhookDelivery.objects.filter(project_id=project_id).filter(
        Q(payload__data__lead__id__in=lead_ids) | Q(payload__data__member__id__in=lead_ids)
    )
    deleted, _ = deliveries.delete()
    named = AutomationExecution.objects.filter(project_id=project_id, subject__member__id__in=lead_ids)
    for execution in named.only("id", "subject"):
        execution.subject = {**execution.subject, "member": None}
        execution.save(update_fields=["subject", "updated_at"])
    return deleted
