import time

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from core import pipeline

from . import services


@shared_task(name="scoring.leads_score_task", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def leads_score_task(*, lead_ids: list[int] | None = None) -> int:
    """Score pending leads in batches until none is left (`lead_ids`: request these first)."""
    if lead_ids:
        pipeline.lead_score_request(lead_ids=lead_ids, wake=False)  # this task drains them now
    return services.leads_score_drain()


@shared_task(name="scoring.lead_score_task", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def lead_score_task(*, lead_id: int) -> None:
    """Score one lead now (messages sent before batches existed, manual runs): a batch of one."""
    services.lead_score(lead_id=lead_id)


@shared_task(name="scoring.events_reconcile_task")
def events_reconcile_task() -> int:
    """Re-enqueue leads whose events were not scored in time (lost messages, crashes)."""
    return services.events_reconcile()


@shared_task(name="scoring.rescore_job_run_task", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def rescore_job_run_task(*, job_id: int, slice_index: int = 0) -> None:
    """Refold a slice of a re-score job chunk after chunk for a while, then queue the rest (other tasks get a turn)."""
    deadline = time.monotonic() + settings.LEADPULSE_SCORE_DRAIN_SECONDS
    while services.rescore_job_run(job_id=job_id, slice_index=slice_index):
        if time.monotonic() > deadline:
            rescore_job_run_task.delay(job_id=job_id, slice_index=slice_index)
            return


@shared_task(name="scoring.decay_materialise_task")
def decay_materialise_task() -> int:
    """Write inactivity decay into leads' scores and history (celery-beat, hourly by default)."""
    return services.decay_materialise()
