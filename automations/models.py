import secrets

from django.db import models

from core.models import TimeStampedModel

from . import actions, triggers


class AutomationRule(TimeStampedModel):
    """When a lead does or becomes something, act: once per lead per cooldown window."""

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="automation_rules")
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    # the registries' keys (automations/triggers/, automations/actions/): one module each, with its config schema
    trigger = models.CharField(max_length=triggers.KEY_MAX_LENGTH, choices=triggers.choices)
    trigger_config = models.JSONField(default=dict, blank=True)
    # Extra conditions on the lead: {"stages": [...], "minScore": n, "maxScore": n, "grades": [...],
    # "traits": [{"path", "op", "value"}]}.
    lead_conditions = models.JSONField(default=dict, blank=True)
    action = models.CharField(max_length=actions.KEY_MAX_LENGTH, choices=actions.choices)
    action_config = models.JSONField(default=dict, blank=True)
    cooldown_seconds = models.PositiveIntegerField(default=86400)

    class Meta:
        indexes = [models.Index(fields=["project", "is_active"], name="automation_project_active_idx")]

    def __str__(self) -> str:
        return self.name


class AutomationExecution(TimeStampedModel):
    """One firing of a rule for its subject, a lead or a company: at most one per rule, subject and cooldown window."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        SKIPPED = "skipped"

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="automation_executions")
    rule = models.ForeignKey(AutomationRule, on_delete=models.CASCADE, related_name="executions")
    # the subject: a lead (lead triggers) or a company (company triggers), never both
    lead = models.ForeignKey(
        "ingest.Lead", null=True, blank=True, on_delete=models.CASCADE, related_name="automation_executions"
    )
    company = models.ForeignKey(
        "companies.Company", null=True, blank=True, on_delete=models.CASCADE, related_name="automation_executions"
    )
    # a company subject as it was when the rule fired: {"company": {...}, "member": {...} | None}
    subject = models.JSONField(default=dict, blank=True)
    window = models.BigIntegerField()  # the cooldown window number: epoch seconds // cooldown
    trigger = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rule", "lead", "window"], name="execution_once_per_window"),
            models.UniqueConstraint(fields=["rule", "company", "window"], name="execution_once_per_company_window"),
            models.CheckConstraint(
                condition=models.Q(lead__isnull=False, company__isnull=True)
                | models.Q(lead__isnull=True, company__isnull=False),
                name="execution_one_subject",
            ),
        ]
        indexes = [
            models.Index(fields=["rule", "-created_at"], name="execution_rule_time_idx"),
            # the outbox sweep's: the few executions still pending
            models.Index(fields=["created_at"], condition=models.Q(status="pending"), name="execution_pending_idx"),
        ]

    def __str__(self) -> str:
        subject = f"company {self.company_id}" if self.company_id else self.lead_id
        return f"{self.rule_id} → {subject} ({self.status})"


def new_signing_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class WebhookSubscription(TimeStampedModel):
    class Event(models.TextChoices):
        LEAD_UPDATED = "lead.updated"
        LEAD_STAGE_CHANGED = "lead.stage_changed"
        LEAD_MERGED = "lead.merged"
        AUTOMATION_FIRED = "automation.fired"

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="webhook_subscriptions")
    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list)
    # Needed in clear to sign deliveries; shown to the user once, at subscribe time.
    secret = models.CharField(max_length=80, default=new_signing_secret)
    is_active = models.BooleanField(default=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(TimeStampedModel):
    """One outbound POST (a subscription's event, an automation's webhook or Slack message)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="webhook_deliveries")
    subscription = models.ForeignKey(
        WebhookSubscription, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    execution = models.ForeignKey(
        AutomationExecution, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    delivery_id = models.UUIDField(unique=True)
    url = models.URLField(max_length=2000)
    event = models.CharField(max_length=64)
    payload = models.JSONField()
    signed = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # while an attempt runs: a second deliver message for it (a duplicate, the outbox sweep's) sends nothing; the
    # same message redelivered (its worker killed mid-attempt) claims it again, by its task id
    claimed_until = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=64, blank=True, default="")
    # "<changeId>:<event>" for a subscription's delivery of a lead change: a redelivered change task sends nothing twice
    change_key = models.CharField(max_length=80, blank=True, default="")

    class Meta:
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["project", "-created_at"], name="delivery_project_time_idx"),
            # the outbox sweep's: the few deliveries still pending
            models.Index(fields=["created_at"], condition=models.Q(status="pending"), name="delivery_pending_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "change_key"],
                condition=~models.Q(change_key=""),
                name="delivery_once_per_change",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.url} ({self.status})"


class VerifiedRecipient(TimeStampedModel):
    """An address outside the project that agreed, by a confirmation link, to get its automation emails."""

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="email_recipients")
    email = models.EmailField(max_length=254)  # lower-cased
    # SHA-256 of the pending confirmation token: a new request supersedes the last link, and a link works once
    token_hash = models.CharField(max_length=64, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "email"], name="recipient_once_per_project")]

    def __str__(self) -> str:
        return f"{self.email} ({'verified' if self.verified_at else 'pending'})"


class EmailSendDay(models.Model):
    """How many emails a project's automations sent on a (UTC) day: its daily budget, counted in the database."""

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="email_send_days")
    day = models.DateField()
    sent = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "day"], name="email_send_day_once")]

    def __str__(self) -> str:
        return f"{self.project_id} {self.day}: {self.sent}"
