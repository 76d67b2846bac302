from django.db import models
from django.db.models import Q

from core.models import TimeStampedModel


class Lead(TimeStampedModel):
    """A person (or device, until identified) in a project.

    Identity columns are written by ingest; the score columns are a cache of the
    scoring fold over the lead's events, written only by `scoring.services.lead_score`.
    """

    class Stage(models.TextChoices):
        COLD = "cold"
        WARM = "warm"
        HOT = "hot"
        QUALIFIED = "qualified"

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="leads")
    anonymous_id = models.CharField(max_length=255)
    user_id = models.CharField(max_length=255, blank=True)
    email = models.EmailField(max_length=254, blank=True)
    name = models.CharField(max_length=255, blank=True)
    company = models.CharField(max_length=255, blank=True)
    traits = models.JSONField(default=dict, blank=True)

    current_score = models.IntegerField(default=0)  # engagement + fit, clamped to the project's range
    engagement_score = models.IntegerField(default=0)  # behaviour: the event fold, decayed to now
    fit_score = models.IntegerField(default=0)  # who they are: fit rules on traits
    fit_grade = models.CharField(max_length=1, default="C")
    lead_stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.COLD)
    # The fit x engagement cell, A1 ... D3: fit grade, then engagement tier by the primary model's thresholds
    # (`scoring.engine.matrix_cell`). A cold new lead (grade C, no engagement) is C3.
    matrix_cell = models.CharField(max_length=2, default="C3", db_default="C3")
    velocity_score = models.PositiveSmallIntegerField(default=0)
    events_last_24h = models.PositiveIntegerField(default=0)
    first_seen_at = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    last_scored_at = models.DateTimeField(null=True, blank=True)
    # The fold's resumable state (score, position of the newest scored event, ...).
    fold_state = models.JSONField(default=dict, blank=True)
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged_leads"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "anonymous_id"], name="lead_unique_project_anonymous_id"),
            models.CheckConstraint(condition=Q(current_score__gte=0), name="lead_score_non_negative"),
        ]
        indexes = [
            # the top leads and the leaderboard: LIMIT n reads n index entries, however many leads tie on score
            models.Index(fields=["project", "-current_score", "-id"], name="lead_project_score_id_idx"),
            models.Index(fields=["project", "lead_stage"], name="lead_project_stage_idx"),
            # a matrix cell's leads by score (the heat map's links), and the leads list sorted by cell
            models.Index(fields=["project", "matrix_cell", "-current_score", "-id"], name="lead_project_cell_idx"),
            models.Index(fields=["project", "email"], name="lead_project_email_idx"),
            models.Index(fields=["project", "user_id"], name="lead_project_user_id_idx"),
        ]

    def __str__(self) -> str:
        return self.email or self.name or self.anonymous_id


class Event(models.Model):
    """One accepted event: the append-only log every score is folded from."""

    class Type(models.TextChoices):
        TRACK = "track"
        PAGE = "page"
        SCREEN = "screen"
        IDENTIFY = "identify"
        GROUP = "group"
        ALIAS = "alias"
        # a manual change of a lead's score, written by scoring (never ingested): in the log so folds replay it
        ADJUSTMENT = "adjustment"

    # No index of their own: the composite indexes below lead with them. Every index costs each insert and
    # each scoring's `processed_at` update (not a HOT update: the column is in a partial index's condition).
    # No database constraint for the project either: the lead's implies it (a lead is its project's, and a
    # project's deletion deletes its leads), and each insert's check would share-lock the one project row
    # that every concurrent insert of the project locks too.
    project = models.ForeignKey(
        "accounts.Project", on_delete=models.CASCADE, related_name="events", db_index=False, db_constraint=False
    )
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="events", db_index=False)
    event_id = models.CharField(max_length=128)
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.TRACK)
    name = models.CharField(max_length=128)
    anonymous_id = models.CharField(max_length=255)
    user_id = models.CharField(max_length=255, blank=True)
    session_id = models.CharField(max_length=255, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True)
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField()
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "event_id"], name="event_unique_project_event_id"),
        ]
        indexes = [
            models.Index(fields=["lead", "timestamp", "event_id"], name="event_lead_order_idx"),
            models.Index(fields=["project", "-timestamp"], name="event_project_time_idx"),
            # the events not scored yet, in fold order: a batch reads each lead's pending events, not its history
            # (nor the whole backlog); the backlog's count and age read it whole (it holds the backlog only)
            models.Index(
                fields=["lead", "timestamp", "event_id"],
                condition=Q(processed_at__isnull=True),
                name="event_pending_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.event_id})"


class EventRollup(models.Model):
    """How many of a project's scored events fall on one UTC day under one name: the overview's charts.

    Maintained in the transaction that marks events processed (`ingest.rollups`), so at every
    commit it equals a count over the processed events; readers add the (few) unprocessed ones.
    """

    # the unique constraint's index leads with the project: no index of its own
    project = models.ForeignKey(
        "accounts.Project", on_delete=models.CASCADE, related_name="event_rollups", db_index=False
    )
    day = models.DateField()  # the UTC date of the events' timestamp
    name = models.CharField(max_length=128)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "day", "name"], name="event_rollup_unique_project_day_name"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.name}: {self.count}"


class EventName(models.Model):
    """A name the project's scored events carry (the API's `eventType`), with how many carry it.

    The events page's type filter and the overview's events by type read it instead of the log.
    """

    project = models.ForeignKey(
        "accounts.Project", on_delete=models.CASCADE, related_name="event_names", db_index=False
    )
    name = models.CharField(max_length=128)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="event_name_unique_project_name")]

    def __str__(self) -> str:
        return f"{self.name}: {self.count}"


class LeadTally(models.Model):
    """Live leads per stage and matrix cell and the sum of their scores, for one project, in one of a few slots.

    Summed over the project's slots, at every commit: `<stage>` is how many of the project's live
    (not merged-away) leads sit in that stage, `<cell>` in that matrix cell (`matrix_cell`, lower-case)
    and `score_total` the sum of their `current_score`.
    The transactions that change those leads add their deltas (`ingest.lead_tallies`), each to
    the slot of its database session, so concurrent writers rarely share a row. The overview's
    lead numbers read these few rows instead of the leads.
    """

    # the unique constraint's index leads with the project: no index of its own
    project = models.ForeignKey(
        "accounts.Project", on_delete=models.CASCADE, related_name="lead_tallies", db_index=False
    )
    slot = models.PositiveSmallIntegerField()
    # one column per Lead.Stage value (a test pins that they match); a slot's counts may be negative
    cold = models.BigIntegerField(default=0)
    warm = models.BigIntegerField(default=0)
    hot = models.BigIntegerField(default=0)
    qualified = models.BigIntegerField(default=0)
    # one column per matrix cell (`scoring.engine.MATRIX_CELLS`, lower-case; a test pins that they match)
    a1 = models.BigIntegerField(default=0)
    a2 = models.BigIntegerField(default=0)
    a3 = models.BigIntegerField(default=0)
    b1 = models.BigIntegerField(default=0)
    b2 = models.BigIntegerField(default=0)
    b3 = models.BigIntegerField(default=0)
    c1 = models.BigIntegerField(default=0)
    c2 = models.BigIntegerField(default=0)
    c3 = models.BigIntegerField(default=0)
    d1 = models.BigIntegerField(default=0)
    d2 = models.BigIntegerField(default=0)
    d3 = models.BigIntegerField(default=0)
    score_total = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "slot"], name="lead_tally_unique_project_slot")]

    def __str__(self) -> str:
        return f"project {self.project_id} slot {self.slot}"
