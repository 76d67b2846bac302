"""Rules, scoring settings and the re-score jobs that apply their changes retroactively."""

from datetime import datetime, timedelta
from functools import partial
from itertools import takewhile
from typing import Any

from celery import current_app as app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, Min, OuterRef, Q
from django.utils import timezone

from accounts.models import Project, User
from core.contracts import RESCORE_TASK
from ingest.models import Lead

from ..models import LeadScore, RescoreJob, RescoreSlice, ScoringModel, ScoringRule
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
    "window_count",
    "window_days",
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
    """Supersede any unfinished job of the project and start a new one, a task per slice, after commit."""
    now = timezone.now()
    RescoreJob.objects.filter(
        project=project, status__in=[RescoreJob.Status.PENDING, RescoreJob.Status.RUNNING]
    ).update(status=RescoreJob.Status.SUPERSEDED, finished_at=now, updated_at=now)
    total = Lead.objects.filter(project=project, merged_into__isnull=True).count()
    count = max(1, settings.LEADPULSE_RESCORE_SLICES)
    job = RescoreJob.objects.create(project=project, reason=reason[:200], total=total, slice_count=count)
    RescoreSlice.objects.bulk_create([RescoreSlice(job=job, index=index) for index in range(count)])
    for index in range(count):
        transaction.on_commit(partial(app.send_task, RESCORE_TASK, kwargs={"job_id": job.id, "slice_index": index}))
    return job


def rescore_job_run(*, job_id: int, slice_index: int = 0, chunk: int | None = None) -> bool:
    """Refold the next chunk of one slice of the job's leads in one transaction; True if more remain.

    A job's leads are split into `slice_count` slices by lead id, each run by a task of its
    own, so worker processes on any host share the job. The chunk's leads are claimed
    together (`SKIP LOCKED`), refolded on the batch path (`leads_refold_locked`: one read,
    one bulk write) and counted in the job's and the slice's progress in the same
    transaction, so a worker that dies mid-chunk leaves exact progress behind and a resumed
    slice neither skips nor double-counts a lead. The chunk stops before the first lead
    another worker holds; when that is the first one, it is waited for alone (holding no
    other lead, so no deadlock). Ingest and scoring carry on meanwhile. The slice that
    finishes last marks the job succeeded.
    """
    job = RescoreJob.objects.select_related("project").filter(id=job_id).first()
    if job is not None and job.status == RescoreJob.Status.PENDING:
        job = _rescore_job_begin(job)
    if job is None or job.status != RescoreJob.Status.RUNNING:
        return False
    part = RescoreSlice.objects.filter(job=job, index=slice_index, finished_at__isnull=True).first()
    if part is None:
        return False  # finished already (a redelivered or resumed task)
    size = chunk or settings.LEADPULSE_RESCORE_CHUNK
    lead_ids = list(
        Lead.objects.filter(project=job.project, merged_into__isnull=True, id__gt=part.cursor, id__lte=job.last_lead_id)
        .alias(slice_of=F("id") % job.slice_count)
        .filter(slice_of=slice_index)
        .order_by("id")
        .values_list("id", flat=True)[:size]
    )
    if not lead_ids:
        _rescore_slice_finish(job=job, part=part)
        return False
    with transaction.atomic():
        leads = leads_claim(lead_ids=lead_ids)
        claimed = {lead.id for lead in leads}
        covered = list(takewhile(claimed.__contains__, lead_ids))
        if covered:
            return _rescore_chunk(job=job, part=part, leads=leads[: len(covered)], covered=covered)
    # the first lead is held elsewhere (that transaction wrote nothing): wait for it alone
    with transaction.atomic():
        lead = lead_lock(lead_id=lead_ids[0])
        return _rescore_chunk(job=job, part=part, leads=[lead] if lead is not None else [], covered=lead_ids[:1])


def _rescore_chunk(*, job: RescoreJob, part: RescoreSlice, leads: list[Lead], covered: list[int]) -> bool:
    """Refold the locked leads and count the chunk, in the caller's transaction; False when it must not count."""
    if connection.vendor == "postgresql":
        # The chunk and its progress commit together, so a commit lost to a server crash is lost whole and
        # the slice redoes the chunk; any later synchronous commit (scoring, a merge) flushes it first. Not
        # waiting for each chunk's WAL flush saves a disk sync per chunk.
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
    changed = leads_refold_locked(leads=leads, now=timezone.now())
    if not _rescore_progress(job=job, part=part, covered=covered, changed=changed):
        transaction.set_rollback(True)  # superseded (or counted by another task): leave it to the newer job
        return False
    return True


def _rescore_job_begin(job: RescoreJob) -> RescoreJob | None:
    """Start a pending job on the leads visible now (later ones score with the new rules); the job as it is then."""
    now = timezone.now()
    live = Lead.objects.filter(project=job.project, merged_into__isnull=True)
    last_lead_id = live.order_by("-id").values_list("id", flat=True).first() or 0
    RescoreJob.objects.filter(id=job.id, status=RescoreJob.Status.PENDING).update(
        status=RescoreJob.Status.RUNNING,
        started_at=now,
        updated_at=now,
        last_lead_id=last_lead_id,
        total=live.filter(id__lte=last_lead_id).count(),
    )
    # another slice's task may have started it first (with its own view of the leads): read what won
    return RescoreJob.objects.select_related("project").filter(id=job.id).first()


def _rescore_progress(*, job: RescoreJob, part: RescoreSlice, covered: list[int], changed: int) -> bool:
    """Count a refolded chunk in the job and its slice (in the chunk's transaction); False if it must not count.

    The job row is written first, then the slice's, as `_rescore_slice_finish` locks them: the
    slices of a job never wait on each other in opposite orders.
    """
    now = timezone.now()
    counted = RescoreJob.objects.filter(id=job.id, status=RescoreJob.Status.RUNNING).update(
        done=F("done") + len(covered), changed=F("changed") + changed, updated_at=now
    )
    return bool(counted) and bool(
        RescoreSlice.objects.filter(id=part.id, cursor__lt=covered[0], finished_at__isnull=True).update(
            cursor=covered[-1], done=F("done") + len(covered), updated_at=now
        )
    )


@transaction.atomic
def _rescore_slice_finish(*, job: RescoreJob, part: RescoreSlice) -> None:
    """Mark the slice finished; the last slice to finish marks the job succeeded."""
    now = timezone.now()
    # the job row is locked first: two slices finishing at once are serialised, so one sees the other's finish
    locked = RescoreJob.objects.select_for_update().filter(id=job.id, status=RescoreJob.Status.RUNNING).first()
    if locked is None:
        return  # superseded meanwhile
    RescoreSlice.objects.filter(id=part.id, finished_at__isnull=True).update(finished_at=now, updated_at=now)
    if not RescoreSlice.objects.filter(job_id=job.id, finished_at__isnull=True).exists():
        RescoreJob.objects.filter(id=job.id).update(status=RescoreJob.Status.SUCCEEDED, finished_at=now, updated_at=now)


def rescore_jobs_resume() -> int:
    """Re-enqueue the unfinished slices whose worker went away (no progress for a while)."""
    cutoff = timezone.now() - timedelta(seconds=settings.LEADPULSE_RESCORE_STALE_SECONDS)
    stale = list(
        RescoreSlice.objects.filter(
            job__status__in=[RescoreJob.Status.PENDING, RescoreJob.Status.RUNNING],
            finished_at__isnull=True,
            updated_at__lt=cutoff,
        ).values_list("id", "job_id", "index")
    )
    for pk, job_id, index in stale:
        RescoreSlice.objects.filter(id=pk).update(updated_at=timezone.now())
        app.send_task(RESCORE_TASK, kwargs={"job_id": job_id, "slice_index": index})
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
