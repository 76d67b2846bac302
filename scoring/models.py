from django.conf import settings
from django.db import models
from django.db.models import F, Q

from core.models import TimeStampedModel

from . import engine

MODELS_PER_PROJECT = 25


class ScoringModel(TimeStampedModel):
    """One way of scoring a project's leads: its own rules, stage thresholds, score range and decay.

    A project has 1 to MODELS_PER_PROJECT of them. Exactly one is primary: it drives the lead's
    `current_score`, `lead_stage` and `fit_grade`; the others' results are `LeadScore` rows.
    """

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="scoring_models")
    key = models.SlugField(max_length=50)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    is_primary = models.BooleanField(default=False)
    # Stage thresholds: cold < warm_threshold <= warm < hot_threshold <= hot < qualified_threshold <= qualified.
    warm_threshold = models.PositiveIntegerField(default=11)
    hot_threshold = models.PositiveIntegerField(default=31)
    qualified_threshold = models.PositiveIntegerField(default=60)
    max_score = models.PositiveIntegerField(default=10000)
    # Inactivity decay: after decay_grace_days idle days, lose decay_rate_percent % a day.
    decay_enabled = models.BooleanField(default=True)
    decay_rate_percent = models.FloatField(default=5.0)
    decay_grace_days = models.PositiveIntegerField(default=7)
    # The number of the live RuleSetVersion: every published change of the rules or settings adds one.
    version = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "key"], name="scoring_model_unique_key"),
            models.UniqueConstraint(fields=["project"], condition=Q(is_primary=True), name="scoring_model_one_primary"),
            models.CheckConstraint(
                condition=Q(warm_threshold__gt=0)
                & Q(hot_threshold__gt=F("warm_threshold"))
                & Q(qualified_threshold__gt=F("hot_threshold"))
                & Q(max_score__gte=F("qualified_threshold")),
                name="scoring_model_thresholds_monotonic",
            ),
            models.CheckConstraint(
                condition=Q(decay_rate_percent__gte=0) & Q(decay_rate_percent__lte=100),
                name="scoring_model_decay_rate_percent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key}{' (primary)' if self.is_primary else ''}"


class RuleSetVersion(models.Model):
    """An immutable published state of a model's rules and settings: what produced the history rows citing it.

    `document`: {"settings": {field: value}, "rules": [{"id", "name", "kind", "event_type", ...}]}, the
    rules as they were (with their ids, so a rollback restores them and their history's details).
    """

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="rule_set_versions")
    model = models.ForeignKey(ScoringModel, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(max_length=500, blank=True)
    document = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "number"], name="rule_set_version_unique_number")]

    def __str__(self) -> str:
        return f"{self.model_id} v{self.number}"


class RuleSetDraft(TimeStampedModel):
    """A model's unpublished rules and settings (same document shape as a version): previewed, then published."""

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="rule_set_drafts")
    model = models.OneToOneField(ScoringModel, on_delete=models.CASCADE, related_name="draft")
    document = models.JSONField()
    base_version = models.PositiveIntegerField(help_text="The live version the draft started from.")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"draft of {self.model_id} (from v{self.base_version})"


class LeadScore(models.Model):
    """A lead's result under one of its project's non-primary models (the primary's is on the lead).

    A cache of that model's fold over the lead's log, like the lead's own score columns.
    """

    # Written with the leads, in every batch: constraints checked by the code that writes them (Django
    # cascades deletions), not at each commit.
    project = models.ForeignKey(
        "accounts.Project", on_delete=models.CASCADE, related_name="lead_scores", db_constraint=False
    )
    # no index of its own: the (lead, model) unique constraint's index serves lookups by lead
    lead = models.ForeignKey(
        "ingest.Lead", on_delete=models.CASCADE, related_name="model_scores", db_constraint=False, db_index=False
    )
    model = models.ForeignKey(
        ScoringModel, on_delete=models.CASCADE, related_name="lead_scores", db_constraint=False, db_index=False
    )
    score = models.IntegerField(default=0)
    engagement = models.IntegerField(default=0)
    fit = models.IntegerField(default=0)
    grade = models.CharField(max_length=1, default="C")
    stage = models.CharField(max_length=16, default="cold")
    fold_state = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["lead", "model"], name="lead_score_unique_model")]
        indexes = [
            models.Index(fields=["model", "-score"], name="lead_score_model_score_idx"),
            models.Index(fields=["model", "stage"], name="lead_score_model_stage_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.lead_id}/{self.model_id}: {self.score} {self.stage}"


class ScoringRule(TimeStampedModel):
    """Points for matching events (engagement) or lead traits (fit). Per project, never shared."""

    class Kind(models.TextChoices):
        ENGAGEMENT = "engagement"
        FIT = "fit"

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="scoring_rules")
    model = models.ForeignKey(ScoringModel, on_delete=models.CASCADE, related_name="rules")
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
    # Engagement rules: award only on the event that makes window_count matches within window_days days
    # (then rest window_days days); both or neither.
    window_count = models.PositiveSmallIntegerField(null=True, blank=True)
    window_days = models.PositiveSmallIntegerField(null=True, blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        indexes = [models.Index(fields=["project", "event_type"], name="rule_project_event_type_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(window_count__isnull=True, window_days__isnull=True)
                | Q(window_count__gte=1, window_count__lte=100, window_days__gte=1, window_days__lte=365),
                name="scoring_rule_window",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.points:+d}"

    @property
    def window_label(self) -> str:
        """The window as the pages show it, e.g. "3\u00d7 in 7 days" ("" without one)."""
        if not self.window_count or not self.window_days:
            return ""
        return engine.Window(self.window_count, self.window_days).label


class ScoreHistory(models.Model):
    """One change of a lead's score: the audit trail the fold leaves behind."""

    class Reason(models.TextChoices):
        RULE = "rule"
        DECAY = "decay"
        MERGE = "merge"
        RESCORE = "rescore"
        FIT = "fit"

    # No database constraints (Django still cascades deletions; only scoring writes rows, for leads and
    # events it holds locked): one row per event per model, and each constraint was a trigger per row at
    # commit, 40 % of a five-model batch's database time. Lookups by lead (and model) use the
    # (lead, model, occurred_at) index, so neither has an index of its own; event deletions use the event's.
    project = models.ForeignKey(
        "accounts.Project", on_delete=models.CASCADE, related_name="score_history", db_constraint=False
    )
    lead = models.ForeignKey(
        "ingest.Lead", on_delete=models.CASCADE, related_name="score_history", db_constraint=False, db_index=False
    )
    model = models.ForeignKey(
        ScoringModel, on_delete=models.CASCADE, related_name="history", db_constraint=False, db_index=False
    )
    event = models.ForeignKey(
        "ingest.Event",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="score_history",
        db_constraint=False,
    )
    # The model's version whose rules produced the row (null: rows from before versions existed).
    version = models.PositiveIntegerField(null=True, blank=True)
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
                fields=["lead", "model", "event"], condition=Q(event__isnull=False), name="history_unique_lead_event"
            ),
        ]
        indexes = [models.Index(fields=["lead", "model", "occurred_at"], name="history_lead_time_idx")]

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
