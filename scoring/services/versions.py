"""Rule-set versions: every published state of a model's rules and settings, immutable."""

from typing import Any

from django.db.models import F

from accounts.models import User

from ..models import RuleSetVersion, ScoringModel, ScoringRule

# What a version keeps of each rule (with its id, so a rollback restores the rule its history cites)
# and of the model's settings.
VERSION_RULE_FIELDS = ("id", "name", "kind", "event_type", "conditions", "points", "max_per_day", "max_per_lead",
                       "max_points", "window_count", "window_days", "is_active")  # fmt: skip
VERSION_SETTINGS_FIELDS = ("warm_threshold", "hot_threshold", "qualified_threshold", "max_score", "decay_enabled",
                           "decay_rate_percent", "decay_grace_days")  # fmt: skip

# What a rule of a document is when a draft leaves a field out (or a version was published before the field).
RULE_DEFAULTS: dict[str, Any] = {"name": "", "kind": "engagement", "event_type": "", "conditions": [],
                                 "max_per_day": None, "max_per_lead": None, "max_points": None,
                                 "window_count": None, "window_days": None, "is_active": True}  # fmt: skip


def model_document(*, model: ScoringModel) -> dict[str, Any]:
    """The model's live rules and settings as a version document."""
    rules = ScoringRule.objects.filter(model=model).order_by("id").values(*VERSION_RULE_FIELDS)
    return {
        "settings": {field: getattr(model, field) for field in VERSION_SETTINGS_FIELDS},
        "rules": [dict(rule) for rule in rules],
    }


def version_publish(*, model: ScoringModel, author: User | None = None, note: str = "") -> RuleSetVersion:
    """Record the model's live rules and settings as its next version (inside the change's transaction)."""
    # the row lock orders concurrent publications of one model
    number = ScoringModel.objects.select_for_update().filter(id=model.id).values_list("version", flat=True).get() + 1
    version = RuleSetVersion.objects.create(
        project_id=model.project_id, model=model, number=number, author=author, note=note[:500],
        document=model_document(model=model),
    )  # fmt: skip
    ScoringModel.objects.filter(id=model.id).update(version=F("version") + 1)
    model.version = number
    return version
