from django.db import models
from django.db.models import Q

from core.models import TimeStampedModel


class ScoringRule(TimeStampedModel):
    """Points for matching events (engagement) or lead traits (fit). Per project, never shared."""

    class Kind(models.TextChoices):
        ENGAGEMENT = "engagement"
        FIT = "fit"

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="scoring_rules")
    name = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.ENGAGEMENT)
    # Engagement rules: the event name they score, or "*" for every event. Unused by fit rules.
    event_type = models.CharField(max_length=128, blank=True)
    # [{"path": "properties.url", "op": "contains", "value": "/pricing"}, ...]: all must hold.
    conditions = models.JSONField(default=list, blank=True)
    points = models.IntegerField()
    max_per_day = models.PositiveIntegerField(null=True, blank=True)
    max_per_lead = models.PositiveIntegerField(null=True, blank=True)
    max_points = models.PositiveIntegerField(null=True, blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        indexes = [models.Index(fields=["project", "event_type"], name="rule_project_event_type_idx")]

    def __str__(self) -> str:
        return f"{self.event_type} {self.points:+d}"


class ScoreHistory(models.Model):
    """One change of a lead's score: the audit trail the fold leaves behind."""

    class Reason(models.TextChoices):
        RULE = "rule"
        DECAY = "decay"
        MERGE = "merge"
        RESCORE = "rescore"
        FIT = "fit"

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="score_history")
    lead = models.ForeignKey("ingest.Lead", on_delete=models.CASCADE, related_name="score_history")
    event = models.ForeignKey(
        "ingest.Event", null=True, blank=True, on_delete=models.CASCADE, related_name="score_history"
    )
    reason = models.CharField(max_length=16, choices=Reason.choices, default=Reason.RULE)
    old_score = models.IntegerField()
    new_score = models.IntegerField()
    delta = models.IntegerField()
    # [{"ruleId": 1, "points": 5}, ...]: which rules produced the delta.
    details = models.JSONField(default=list, blank=True)
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "score history"
        constraints = [
            models.UniqueConstraint(
                fields=["lead", "event"], condition=Q(event__isnull=False), name="history_unique_lead_event"
            ),
        ]
        indexes = [models.Index(fields=["lead", "occurred_at"], name="history_lead_time_idx")]

    def __str__(self) -> str:
        return f"{self.lead_id}: {self.old_score} → {self.new_score} ({self.reason})"


class RescoreJob(TimeStampedModel):
    """A background refold of a project's leads after its rules or policy changed."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        SUPERSEDED = "superseded"
        FAILED = "failed"

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="rescore_jobs")
    reason = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0)
    # The job's leads are split into `slice_count` slices (lead id modulo the count), each
    # refolded by a task of its own, so several worker processes share one job. Leads
    # created after the job started (id > last_lead_id) are scored with the new rules already.
    slice_count = models.PositiveSmallIntegerField(default=1)
    last_lead_id = models.BigIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["project", "status"], name="rescore_project_status_idx")]

    def __str__(self) -> str:
        return f"rescore {self.project_id} {self.status} {self.done}/{self.total}"


class RescoreSlice(TimeStampedModel):
    """The leads of a re-score job whose id modulo the job's `slice_count` is `index`, refolded in id order."""

    job = models.ForeignKey(RescoreJob, on_delete=models.CASCADE, related_name="slices")
    index = models.PositiveSmallIntegerField()
    # The last lead id of the slice refolded: a restarted worker resumes after it.
    cursor = models.BigIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="rescore_slice_unique_job_index")]

    def __str__(self) -> str:
        return f"rescore {self.job_id} slice {self.index}: after {self.cursor}, {self.done} done"
