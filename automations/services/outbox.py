"""The outbox sweep: re-send the messages a killed worker committed a firing or a delivery for but never sent."""

import logging
from datetime import timedelta

from celery import current_app as app
from django.conf import settings
from django.utils import timezone

from core.contracts import DELIVER_TASK, EXECUTE_TASK

from ..models import AutomationExecution, WebhookDelivery

logger = logging.getLogger(__name__)


def outbox_sweep(*, limit: int = 1000) -> int:
    """Re-send the deliver or execute message of deliveries and executions still pending and never attempted after
    the grace period; return how many were sent.

    Their rows commit before their messages go out (after commit), so a process killed in between leaves them
    pending, and a redelivered change finds them recorded and sends nothing. A message re-sent for one whose first
    is only late acts once all the same: a delivery is claimed per attempt, an execution once.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.LEADPULSE_OUTBOX_GRACE_SECONDS)
    deliveries = list(
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, attempts=0, created_at__lte=cutoff)
        .exclude(claimed_until__gte=timezone.now())
        .order_by("created_at")
        .values_list("id", flat=True)[:limit]
    )
    executions = list(
        AutomationExecution.objects.filter(
            status=AutomationExecution.Status.PENDING, attempts=0, created_at__lte=cutoff
        )
        .order_by("created_at")
        .values_list("id", flat=True)[:limit]
    )
    for execution_id in executions:
        app.send_task(EXECUTE_TASK, kwargs={"execution_id": execution_id})
    for delivery_id in deliveries:
        app.send_task(DELIVER_TASK, kwargs={"delivery_id": delivery_id, "fresh": True})
    if deliveries or executions:
        logger.warning("outbox sweep: re-sent %d deliveries and %d executions", len(deliveries), len(executions))
    return len(deliveries) + len(executions)
