"""The dead-letter queue: list and replay jobs that exhausted their retries."""

from celery import current_app as app
from django.db.models import QuerySet
from django.utils import timezone

from core.errors import NotFound

from .models import FailedJob


def failed_jobs_for_project(*, project_id: int) -> QuerySet[FailedJob]:
    return FailedJob.objects.filter(project_id=project_id).order_by("-id")


def failed_job_get(*, project_id: int, job_id: int | str) -> FailedJob:
    try:
        return FailedJob.objects.get(project_id=project_id, id=int(job_id))
    except (TypeError, ValueError, FailedJob.DoesNotExist):
        raise NotFound("Failed job not found.") from None


def failed_job_replay(*, job: FailedJob) -> FailedJob:
    """Replay a dead-lettered job through the task it names (`payload = {task, kwargs}`)."""
    FailedJob.objects.filter(id=job.id).update(replayed_at=timezone.now(), updated_at=timezone.now())
    app.send_task(job.payload["task"], kwargs=job.payload.get("kwargs", {}))
    job.refresh_from_db()
    return job
