"""Rules, scoring settings and the re-score jobs that apply their changes retroactively."""

from datetime import datetime, timedelta
from typing import Any

from celery import current_app as app
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Project
from ingest.models import Lead

from ..models import RescoreJob, ScoringRule
from .fold import lead_decay_locked, lead_fold_locked, lead_lock

RESCORE_TASK = "scoring.rescore_job_run_task"
RULE_FIELDS = (
    "name",
    "kind",
    "event_type",
    "conditions",
    "points",
    "max_per_day",
    "max_per_lead",
    "max_points",
    "is_active",
)
SETTINGS_FIELDS = (
    "warm_threshold",
    "hot_threshold",
    "qualified_threshold",
    "max_score",
    "decay_enabled",
    "decay_rate_percent",
    "decay_grace_days",
)


@transaction.atomic
def rule_create(*, project: Project, data: dict[str, Any]) -> ScoringRule:
    """Create a validated rule and re-score the project with it."""
    rule = ScoringRule.objects.create(project=project, **{k: v for k, v in data.items() if k in RULE_FIELDS})
    rescore_job_start(project=project, reason=f"rule {rule.id} created")
    return rule


@transaction.atomic
def rule_update(*, rule: ScoringRule, data: dict[str, Any]) -> ScoringRule:
    """Change a rule (full or partial) and re-score the project when anything changed."""
    changed = [field for field in RULE_FIELDS if field in data and getattr(rule, field) != data[field]]
    for field in changed:
        setattr(rule, field, data[field])
    if changed:
        rule.save(update_fields=[*changed, "updated_at"])
        rescore_job_start(project=rule.project, reason=f"rule {rule.id} changed: {', '.join(changed)}")
    return rule


@transaction.atomic
def rule_delete(*, rule: ScoringRule) -> None:
    project, rule_id = rule.project, rule.id
    rule.delete()
    rescore_job_start(project=project, reason=f"rule {rule_id} deleted")


@transaction.atomic
def scoring_settings_update(*, project: Project, data: dict[str, Any]) -> Project:
    """Change thresholds, score range or decay policy; leads are re-staged and re-scored."""
    changed = [field for field in SETTINGS_FIELDS if field in data and getattr(project, field) != data[field]]
    for field in changed:
        setattr(project, field, data[field])
    if changed:
        project.save(update_fields=[*changed, "updated_at"])
        rescore_job_start(project=project, reason=f"settings changed: {', '.join(changed)}")
    return project


def rescore_job_start(*, project: Project, reason: str) -> RescoreJob:
    """Supersede any unfinished job of the project and start a new one after commit."""
    now = timezone.now()
    RescoreJob.objects.filter(
        project=project, status__in=[RescoreJob.Status.PENDING, RescoreJob.Status.RUNNING]
    ).update(status=RescoreJob.Status.SUPERSEDED, finished_at=now, updated_at=now)
    total = Lead.objects.filter(project=project, merged_into__isnull=True).count()
    job = RescoreJob.objects.create(project=project, reason=reason[:200], total=total)
    transaction.on_commit(lambda: app.send_task(RESCORE_TASK, kwargs={"job_id": job.id}))
    return job


def rescore_job_run(*, job_id: int, chunk: int | None = None) -> bool:
    """Refold the next chunk of the job's leads; True if more remain.

    Each lead is refolded and counted in one transaction (lead row lock + job progress),
    so a worker that dies mid-chunk leaves exact progress behind and a resumed job
    neither skips nor double-counts a lead. Ingest and scoring carry on meanwhile.
    """
    job = RescoreJob.objects.select_related("project").filter(id=job_id).first()
    if job is None or job.status not in (RescoreJob.Status.PENDING, RescoreJob.Status.RUNNING):
        return False
    now = timezone.now()
    if job.status == RescoreJob.Status.PENDING:
        # the job covers the leads visible once the change committed; later ones score with the new rules
        live = Lead.objects.filter(project=job.project, merged_into__isnull=True)
        job.last_lead_id = live.order_by("-id").values_list("id", flat=True).first() or 0
        job.total = live.count()
        RescoreJob.objects.filter(id=job.id, status=RescoreJob.Status.PENDING).update(
            status=RescoreJob.Status.RUNNING,
            started_at=now,
            updated_at=now,
            last_lead_id=job.last_lead_id,
            total=job.total,
        )
    size = chunk or settings.LEADPULSE_RESCORE_CHUNK
    lead_ids = list(
        Lead.objects.filter(project=job.project, merged_into__isnull=True, id__gt=job.cursor, id__lte=job.last_lead_id)
        .order_by("id")
        .values_list("id", flat=True)[:size]
    )
    running = RescoreJob.objects.filter(id=job.id, status=RescoreJob.Status.RUNNING)
    for lead_id in lead_ids:
        with transaction.atomic():
            lead = lead_lock(lead_id=lead_id)
            changed = 0
            if lead is not None and not lead.merged_into_id:
                changed = int(lead_fold_locked(lead=lead, now=timezone.now(), refold=True, reason="rescore"))
            progressed = running.filter(cursor__lt=lead_id).update(
                cursor=lead_id, done=F("done") + 1, changed=F("changed") + changed, updated_at=timezone.now()
            )
            if not progressed:
                transaction.set_rollback(True)  # superseded (or already counted): leave it to the newer job
                return False
    if lead_ids:
        return True
    running.update(status=RescoreJob.Status.SUCCEEDED, finished_at=timezone.now(), updated_at=timezone.now())
    return False


def rescore_jobs_resume() -> int:
    """Re-enqueue jobs whose worker went away (no progress for a while)."""
    cutoff = timezone.now() - timedelta(seconds=settings.LEADPULSE_RESCORE_STALE_SECONDS)
    stale = list(
        RescoreJob.objects.filter(
            status__in=[RescoreJob.Status.PENDING, RescoreJob.Status.RUNNING], updated_at__lt=cutoff
        ).values_list("id", flat=True)
    )
    for job_id in stale:
        RescoreJob.objects.filter(id=job_id).update(updated_at=timezone.now())
        app.send_task(RESCORE_TASK, kwargs={"job_id": job_id})
    return len(stale)


def decay_materialise(*, now: datetime | None = None) -> int:
    """Write decay for leads idle past their project's grace period; idempotent within a day.

    Also zeroes the 24-hour velocity of leads with no event in the last 24 hours (it is
    otherwise refreshed only when a lead scores).
    """
    now = now or timezone.now()
    Lead.objects.filter(events_last_24h__gt=0, last_event_at__lt=now - timedelta(hours=24)).update(
        events_last_24h=0, velocity_score=0, updated_at=now
    )
    changed = 0
    for project in Project.objects.filter(decay_enabled=True, is_active=True):
        cutoff = now - timedelta(days=project.decay_grace_days + 1)
        lead_ids = (
            Lead.objects.filter(
                project=project, merged_into__isnull=True, last_event_at__lte=cutoff, engagement_score__gt=0
            )
            .order_by("id")
            .values_list("id", flat=True)
        )
        for lead_id in lead_ids.iterator(chunk_size=1000):
            with transaction.atomic():
                # a lead being scored right now gets its decay from that fold
                lead = lead_lock(lead_id=lead_id, skip_locked=True)
                if lead is not None:
                    changed += lead_decay_locked(lead=lead, now=now)
    return changed
