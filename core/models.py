from django.db import models


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class FailedJob(TimeStampedModel):
    """The dead-letter queue: work that exhausted its retries, replayable from the admin and API."""

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="failed_jobs")
    kind = models.CharField(max_length=64)  # e.g. "webhook.delivery"
    reference = models.CharField(max_length=64, blank=True)  # the id of what failed (a delivery id, ...)
    payload = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    replayed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["project", "-created_at"], name="failedjob_project_time_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.reference}"
