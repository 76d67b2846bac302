from django.db import models
from django.db.models import Q

from core.models import TimeStampedModel

DEFAULT_WON_EVENT_TYPE = "contract_signed"


class Outcome(TimeStampedModel):
    """A lead's outcome (won or lost): at most one per lead, the current one; recording another replaces it.

    No history is kept: the learner needs each lead's current label and the time it was reached, and a
    replaced outcome was a mistake or a change of mind. Who recorded it (a person or a secret key) and
    how (`source`) stay with it.
    """

    class Kind(models.TextChoices):
        WON = "won"
        LOST = "lost"

    class Source(models.TextChoices):
        API = "api"
        CSV = "csv"  # a CSV upload
        EVENT = "event"  # the project's "won" event type was folded into the lead
        PAGE = "page"  # the lead page's form

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="outcomes")
    # as companies' memberships: no database constraint, Django cascades a lead's deletion
    lead = models.ForeignKey(
        "ingest.Lead", on_delete=models.CASCADE, related_name="outcome", db_constraint=False, db_index=False
    )
    outcome = models.CharField(max_length=8, choices=Kind.choices)
    value = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    occurred_at = models.DateTimeField()  # `at` on the wire: when the deal was won or lost
    reason = models.TextField(blank=True)
    source = models.CharField(max_length=8, choices=Source.choices)
    source_event_id = models.BigIntegerField(null=True, blank=True)  # the event that made it (source "event")
    author = models.ForeignKey(
        "accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="outcomes_recorded"
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="outcomes_recorded"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["lead"], name="outcome_unique_lead"),
            models.CheckConstraint(condition=Q(outcome__in=["won", "lost"]), name="outcome_kind_valid"),
            models.CheckConstraint(condition=Q(value__gte=0) | Q(value__isnull=True), name="outcome_value_positive"),
        ]
        indexes = [models.Index(fields=["project", "outcome", "-occurred_at"], name="outcome_project_kind_idx")]

    def __str__(self) -> str:
        return f"lead {self.lead_id}: {self.outcome}"


class PredictionSettings(models.Model):
    """A project's prediction settings; a project without a row has the defaults."""

    project = models.OneToOneField("accounts.Project", on_delete=models.CASCADE, related_name="prediction_settings")
    # an event of this type folded into a lead records it as won (source "event"); "" turns that off
    won_event_type = models.CharField(max_length=128, blank=True, default=DEFAULT_WON_EVENT_TYPE)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "prediction settings"

    def __str__(self) -> str:
        return f"prediction settings of project {self.project_id}"


class PredictionModel(TimeStampedModel):
    """A trained model of a project and scoring model: `learn.TrainedModel.to_json()`, its report, and counts.

    Versions number a scoring model's trainings from 1; the active one scores leads (at most one per scoring model).
    """

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="prediction_models")
    scoring_model = models.ForeignKey(
        "scoring.ScoringModel", on_delete=models.CASCADE, related_name="prediction_models"
    )
    version = models.PositiveIntegerField()
    trained_at = models.DateTimeField()
    document = models.JSONField()  # the learnt model (`TrainedModel.to_json()`)
    report = models.JSONField()  # `learn.Report`, kept beside the document for the report's reads
    train_count = models.PositiveIntegerField()
    test_count = models.PositiveIntegerField()
    active = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scoring_model", "version"], name="prediction_model_version_unique"),
            models.UniqueConstraint(
                fields=["scoring_model"], condition=Q(active=True), name="prediction_model_one_active"
            ),
        ]

    def __str__(self) -> str:
        return f"prediction model v{self.version} of scoring model {self.scoring_model_id}"


class TrainingJob(TimeStampedModel):
    """One training run of a project's scoring model's prediction model, with its progress (polled by the page)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        REFUSED = "refused"  # too few outcomes: `message` says how many more

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="training_jobs")
    scoring_model = models.ForeignKey("scoring.ScoringModel", on_delete=models.CASCADE, related_name="training_jobs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    progress = models.PositiveSmallIntegerField(default=0)
    message = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    requested_by = models.ForeignKey(
        "accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="training_jobs"
    )
    prediction_model = models.ForeignKey(
        PredictionModel, on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(progress__lte=100), name="training_job_progress_range"),
        ]
        indexes = [models.Index(fields=["project", "-created_at"], name="training_job_project_idx")]

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED, self.Status.REFUSED)

    def __str__(self) -> str:
        return f"training job {self.id} ({self.status})"


class LeadPrediction(models.Model):
    """A lead's probability of being won under a prediction model, with its top factors, as last computed."""

    project = models.ForeignKey(
        "accounts.Project", on_delete=models.CASCADE, related_name="lead_predictions", db_constraint=False
    )
    # as outcomes: no database constraint, Django cascades a lead's deletion
    lead = models.ForeignKey(
        "ingest.Lead", on_delete=models.CASCADE, related_name="predictions", db_constraint=False, db_index=False
    )
    prediction_model = models.ForeignKey(PredictionModel, on_delete=models.CASCADE, related_name="lead_predictions")
    probability = models.FloatField()
    factors = models.JSONField(default=list)  # [{feature, value, contribution, label}], largest first
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["lead", "prediction_model"], name="lead_prediction_unique"),
            models.CheckConstraint(
                condition=Q(probability__gte=0) & Q(probability__lte=1), name="lead_prediction_probability_range"
            ),
        ]
        indexes = [models.Index(fields=["prediction_model", "probability"], name="lead_prediction_prob_idx")]

    def __str__(self) -> str:
        return f"lead {self.lead_id}: {self.probability:.2f}"
