from celery import shared_task
from django.db import OperationalError

from core.contracts import CompanyChange, LeadChange

from . import services


@shared_task(name="automations.lead_changed_task", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def lead_changed_task(*, change: dict) -> int:
    """Fire automations and webhook subscriptions for one committed lead change."""
    return services.lead_change_handle(change=LeadChange.from_message(change))


@shared_task(name="automations.lead_changes_task", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def lead_changes_task(*, changes: list[dict]) -> int:
    """Handle a scoring batch's lead changes in order (each keeps its change id: a retry repeats none)."""
    return services.lead_changes_handle(changes=[LeadChange.from_message(change) for change in changes])


@shared_task(
    name="automations.company_changes_task", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5
)
def company_changes_task(*, changes: list[dict]) -> int:
    """Fire company automations for a recompute's committed company changes (a retry fires none twice)."""
    return sum(services.company_change_handle(change=CompanyChange.from_message(change)) for change in changes)


@shared_task(name="automations.automation_execute_task", autoretry_for=(OperationalError,), max_retries=5)
def automation_execute_task(*, execution_id: int) -> None:
    """Carry out one claimed automation execution."""
    services.automation_execute(execution_id=execution_id)


@shared_task(bind=True, name="automations.webhook_deliver_task", max_retries=None)
def webhook_deliver_task(self, *, delivery_id: int, fresh: bool = False) -> str:
    """Attempt a delivery; retries with backoff live in the service (attempts are stored).

    `fresh` (the outbox sweep's): only if never attempted yet.
    """
    attempt = services.delivery_attempt(delivery_id=delivery_id, fresh=fresh, claimant=self.request.id or "")
    if attempt.retry_in is not None:
        raise self.retry(countdown=attempt.retry_in, kwargs={"delivery_id": delivery_id})
    return attempt.status


@shared_task(name="automations.webhook_replay_task")
def webhook_replay_task(*, delivery_id: int) -> None:
    """Replay a dead-lettered delivery."""
    services.delivery_replay(delivery_id=delivery_id)


@shared_task(name="automations.outbox_sweep_task")
def outbox_sweep_task() -> int:
    """Re-send deliveries and executions whose messages were lost (a worker killed between commit and send)."""
    return services.outbox_sweep()
