from celery import shared_task
from django.db import OperationalError

from core.contracts import LeadChange

from . import services


@shared_task(name="companies.lead_changes_task", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def lead_changes_task(*, changes: list[dict]) -> int:
    """Assign a scoring batch's changed leads to companies and recompute each company touched once."""
    return services.lead_changes_consume(changes=[LeadChange.from_message(change) for change in changes])


@shared_task(name=services.PROJECT_RECOMPUTE_TASK, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def project_recompute_task(*, project_id: int) -> int:
    """Recompute every company of the project (after its roll-up settings changed)."""
    return services.project_companies_recompute(project_id=project_id)
