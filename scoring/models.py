from django.db import models
from django.db.models import Q

from leadpulse.models import TimeStampedModel


class ScoringRule(TimeStampedModel):
    """Points a project gives an event type. Per project, never shared."""

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="scoring_rules")
    name = models.CharField(max_length=200, blank=True)
    event_type = models.CharField(max_length=128)
    points = models.IntegerField()
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
