"""Rules, scoring settings and the re-score jobs that apply their changes retroactively."""

from datetime import datetime, timedelta
from itertools import takewhile
from typing import Any

from celery import current_app as app
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, Min, OuterRef, Q
from django.utils import timezone

from accounts.models import Project, User
from core.contracts import RESCORE_TASK
from ingest.models import Lead

from ..models import LeadScore, RescoreJob, ScoringModel, ScoringRule
from .batch import leads_claim, leads_decay, leads_refold_locked
from .fold import lead_lock
from .versions import version_publish

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
def rule_create(
    *, project: Project, data: dict[str, Any], model: ScoringModel | None = None, author: User | None = None
) -> ScoringRule:
    """Create a validated rule in one of the project's models (the primary one by default): a new version, re-scored."""
    model = model or ScoringModel.objects.get(project=project, is_primary=True)
    fields = {k: v for k, v in data.items() if k in RULE_FIELDS}
    rule = ScoringRule.objects.create(project=project, model=model, **fields)
    version_publish(model=model, author=author, note=f"rule {rule.id} created")
    rescore_job_start(project=project, reason=f"rule {rule.id} created")
    return rule


@transaction.atomic
def rule_update(*, rule: ScoringRule, data: dict[str, Any], author: User | None = None) -> ScoringRule:
    """Change a rule (full or partial); when anything changed, a new version of its model, re-scored."""
    changed = [field for field in RULE_FIELDS if field in data and getattr(rule, field) != data[field]]
    for field in changed:
        setattr(rule, field, data[field])
    if changed:
        rule.save(update_fields=[*changed, "updated_at"])
        reason = f"rule {rule.id} changed: {', '.join(changed)}"
        version_publish(model=rule.model, author=author, note=reason)
        rescore_job_start(project=rule.project, reason=reason)
    return rule


@transaction.atomic
def rule_delete(*, rule: ScoringRule, author: User | None = None) -> None:
    """Delete a rule: a new version of its model, re-scored."""
    project, model, rule_id = rule.project, rule.model, rule.id
    rule.delete()
    version_publish(model=model, author=author, note=f"rule {rule_id} deleted")
    rescore_job_start(project=project, reason=f"rule {rule_id} deleted")


@transaction.atomic
def scoring_settings_update(*, model: ScoringModel, data: dict[str, Any], author: User | None = None) -> ScoringModel:
    """Change a model's thresholds, score range or decay policy: a new version, leads re-staged and re-scored."""
    changed = [field for field in SETTINGS_FIELDS if field in data and getattr(model, field) != data[field]]
    for field in changed:
        setattr(model, field, data[field])
    if changed:
        model.save(update_fields=[*changed, "updated_at"])
        reason = f"{model.key} settings changed: {', '.join(changed)}"
        version_publish(model=model, author=author, note=reason)
        rescore_job_start(project=model.project, reason=reason)
    return model


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
    """Refold the next chunk of the job's leads in one transaction; True if more remain.

    The chunk's leads are claimed together (`SKIP LOCKED`), refolded on the batch path
    (`leads_refold_locked`: one read, one bulk write) and counted in the job's progress in
    the same transaction, so a worker that dies mid-chunk leaves exact progress behind and
    a resumed job neither skips nor double-counts a lead. The chunk stops before the first
    lead another worker holds; when that is the first one, it is waited for alone (holding
    no other lead, so no deadlock). Ingest and scoring carry on meanwhile.
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
    if not lead_ids:
        running.update(status=RescoreJob.Status.SUCCEEDED, finished_at=timezone.now(), updated_at=timezone.now())
        return False
    for wait in (False, True):
        with transaction.atomic():
            if wait:  # the first lead is held elsewhere: wait for it alone
                lead = lead_lock(lead_id=lead_ids[0])
                leads, covered = [lead] if lead is not None else [], lead_ids[:1]
            else:
                leads = leads_claim(lead_ids=lead_ids)
                claimed = {lead.id for lead in leads}
                covered = list(takewhile(claimed.__contains__, lead_ids))
                if not covered:
                    continue  # this transaction wrote nothing; its locks go at its end
                leads = leads[: len(covered)]
            changed = leads_refold_locked(leads=leads, now=timezone.now())
            progressed = running.filter(cursor__lt=covered[0]).update(
                cursor=covered[-1],
                done=F("done") + len(covered),
                changed=F("changed") + changed,
                updated_at=timezone.now(),
            )
            if not progressed:
                transaction.set_rollback(True)  # superseded (or already counted): leave it to the newer job
                return False
            return True
    return True


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
    """Write decay for leads idle past their project's grace period, a batch of leads per transaction.

    Idempotent within a day, so a run that dies half way is resumed by the next one.

    Also zeroes the 24-hour velocity of leads with no event in the last 24 hours (it is
    otherwise refreshed only when a lead scores).
    """
    now = now or timezone.now()
    Lead.objects.filter(events_last_24h__gt=0, last_event_at__lt=now - timedelta(hours=24)).update(
        events_last_24h=0, velocity_score=0, updated_at=now
    )
    changed = 0
    # a project's leads idle past the shortest grace of its decaying models (each model decays its own)
    graces = (
        ScoringModel.objects.filter(decay_enabled=True, project__is_active=True)
        .values("project_id")
        .annotate(grace=Min("decay_grace_days"))
        .order_by("project_id")
    )
    for row in graces:
        cutoff = now - timedelta(days=row["grace"] + 1)
        lead_ids = (
            Lead.objects.filter(
                Q(engagement_score__gt=0) | Exists(LeadScore.objects.filter(lead=OuterRef("pk"), engagement__gt=0)),
                project_id=row["project_id"],
                merged_into__isnull=True,
                last_event_at__lte=cutoff,
            )
            .order_by("id")
            .values_list("id", flat=True)
        )
        batch: list[int] = []
        for lead_id in lead_ids.iterator(chunk_size=1000):
            batch.append(lead_id)
            if len(batch) == settings.LEADPULSE_SCORE_BATCH:
                changed += leads_decay(lead_ids=batch, now=now)
                batch = []
        changed += leads_decay(lead_ids=batch, now=now)
    return changed
