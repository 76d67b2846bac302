from celery import shared_task
from django.db import OperationalError

from core.contracts import PREDICTION_LEAD_CHANGES_TASK, LeadChange

from . import services


@shared_task(name=PREDICTION_LEAD_CHANGES_TASK, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def lead_changes_task(*, changes: list[dict]) -> int:
    """Record won outcomes from a scoring batch's folded events, and move merged-away leads' outcomes."""
    return services.lead_changes_consume(changes=[LeadChange.from_message(change) for change in changes])
