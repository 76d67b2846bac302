from django.db import models

from core.models import TimeStampedModel


class Company(TimeStampedModel):
    """A company (account) of a project: the leads keyed to it by domain or group id roll up into it."""

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="companies")
    key = models.CharField(max_length=255)  # `companies.domains.company_key`: a domain, or `group:<id>`
    domain = models.CharField(max_length=253, blank=True)
    name = models.CharField(max_length=255, blank=True)
    traits = models.JSONField(default=dict, blank=True)  # from group calls: industry, employees, plan …
    # Merged into another company (`company_merge`): its key stays as an alias, so later leads with it land in
    # the survivor. Always one hop: a merge repoints the companies merged into the one merged away.
    merged_into = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="merged_companies"
    )

    class Meta:
        verbose_name_plural = "companies"
        constraints = [
            models.UniqueConstraint(fields=["project", "key"], name="company_unique_project_key"),
            models.CheckConstraint(
                condition=~models.Q(merged_into=models.F("id")), name="company_not_merged_into_self"
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.key


class CompanyMembership(models.Model):
    """A lead's company: at most one per lead (and so per project)."""

    # Written in every scoring batch's roll-up: no database constraints, whose triggers checked each row at commit
    # (a third of the roll-up's PostgreSQL time); Django cascades deletions, and companies are deleted only with
    # their project. The `company` index is the Meta one.
    project = models.ForeignKey(
        "accounts.Project", on_delete=models.CASCADE, related_name="company_memberships", db_constraint=False
    )
    company = models.ForeignKey(
        Company, on_delete=models.CASCADE, related_name="memberships", db_constraint=False, db_index=False
    )
    # as scoring's LeadScore: no database constraint, Django cascades a lead's deletion
    lead = models.ForeignKey(
        "ingest.Lead", on_delete=models.CASCADE, related_name="company_membership", db_constraint=False,
        db_index=False,
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["lead"], name="company_membership_unique_lead")]
        indexes = [models.Index(fields=["company"], name="company_membership_company_idx")]

    def __str__(self) -> str:
        return f"lead {self.lead_id} in company {self.company_id}"


class CompanyScore(models.Model):
    """A company's roll-up under one scoring model (`companies.rollup`), a cache of its members' results."""

    # as memberships: no database constraint; lookups by company use the (company, model) unique index
    company = models.ForeignKey(
        Company, on_delete=models.CASCADE, related_name="scores", db_constraint=False, db_index=False
    )
    model = models.ForeignKey(
        "scoring.ScoringModel", on_delete=models.CASCADE, related_name="company_scores", db_constraint=False,
        db_index=False,
    )  # fmt: skip
    score = models.IntegerField(default=0)
    stage = models.CharField(max_length=16, default="cold")
    breakdown = models.JSONField(default=dict, blank=True)  # `CompanyResult.to_json()`
    updated_at = models.DateTimeField()

    class Meta:
        # No index on the score: the lists sort companies without a row as 0 (a coalesce no index serves), and an
        # indexed score made every recompute's update of a row write a new index entry (never a HOT update).
        constraints = [models.UniqueConstraint(fields=["company", "model"], name="company_score_unique_model")]

    def __str__(self) -> str:
        return f"company {self.company_id}: {self.score} ({self.stage})"


class CompanyRollupSettings(models.Model):
    """How one scoring model rolls a project's companies up (`companies.rollup.RollupConfig`); no row: defaults."""

    project = models.ForeignKey("accounts.Project", on_delete=models.CASCADE, related_name="company_rollup_settings")
    model = models.OneToOneField(
        "scoring.ScoringModel", on_delete=models.CASCADE, related_name="company_rollup_settings", db_constraint=False
    )
    top_n = models.PositiveIntegerField(default=3)
    breadth_points = models.IntegerField(default=10)
    breadth_cap = models.PositiveIntegerField(default=5)
    window_days = models.PositiveIntegerField(default=30)
    fit_rules = models.JSONField(default=list, blank=True)  # [{"name", "points", "conditions": [{path, op, value}]}]
    # the companies' own stage thresholds, all three or none (none: the model's)
    warm_threshold = models.PositiveIntegerField(null=True, blank=True)
    hot_threshold = models.PositiveIntegerField(null=True, blank=True)
    qualified_threshold = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "company roll-up settings"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    warm_threshold__isnull=True, hot_threshold__isnull=True, qualified_threshold__isnull=True
                )
                | models.Q(
                    warm_threshold__gt=0,
                    hot_threshold__gt=models.F("warm_threshold"),
                    qualified_threshold__gt=models.F("hot_threshold"),
                ),
                name="company_rollup_thresholds_rise",
            )
        ]

    def __str__(self) -> str:
        return f"company roll-up of model {self.model_id}"

    @property
    def thresholds(self) -> dict[str, int] | None:
        if self.warm_threshold is None or self.hot_threshold is None or self.qualified_threshold is None:
            return None
        return {"warm": self.warm_threshold, "hot": self.hot_threshold, "qualified": self.qualified_threshold}


class CompanyScoreHistory(models.Model):
    """A change of a company's score or stage under one model, and the member that moved it (if one did)."""

    class Reason(models.TextChoices):
        MEMBER = "member"  # a member's score changed, or a lead joined or left
        FIT = "fit"  # the company's traits (its fit rules) changed
        MERGE = "merge"  # two companies merged
        SETTINGS = "settings"  # the roll-up's settings changed
        ERASE = "erase"  # a member was erased

    # as memberships: no database constraints; lookups by company use the (company, model, occurred_at) index
    project = models.ForeignKey(
        "accounts.Project", on_delete=models.CASCADE, related_name="company_score_history", db_constraint=False
    )
    company = models.ForeignKey(
        Company, on_delete=models.CASCADE, related_name="history", db_constraint=False, db_index=False
    )
    model = models.ForeignKey(
        "scoring.ScoringModel", on_delete=models.CASCADE, related_name="company_history", db_constraint=False,
        db_index=False,
    )  # fmt: skip
    old_score = models.IntegerField()
    new_score = models.IntegerField()
    delta = models.IntegerField()
    old_stage = models.CharField(max_length=16)
    new_stage = models.CharField(max_length=16)
    # the member whose contribution changed most; a lead erased since leaves the row, without its id
    moved_by = models.ForeignKey(
        "ingest.Lead", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )  # fmt: skip
    reason = models.CharField(max_length=16, choices=Reason.choices, default=Reason.MEMBER)
    occurred_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "company score history"
        indexes = [models.Index(fields=["company", "model", "-occurred_at"], name="company_history_time_idx")]

    def __str__(self) -> str:
        return f"company {self.company_id}: {self.old_score} → {self.new_score} ({self.reason})"
