"""Rules, scoring settings, re-score jobs and the what-if preview on the wire."""

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema_field, extend_schema_serializer, inline_serializer
from rest_framework import serializers

from core.fields import (
    NO_NUL,
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    StrictModelSerializer,
    StrictSerializer,
    unknown_fields,
)
from ingest.contracts import event_name_valid
from ingest.models import Lead

from .. import engine
from ..contracts import conditions_clean
from ..models import RescoreJob, ScoringModel, ScoringRule
from .common import CONDITION_SCHEMA, EVENT_TYPE_PATTERN, MAX_CONDITIONS, enum_field, openapi_patch


@extend_schema_field({"type": "array", "maxItems": MAX_CONDITIONS, "items": CONDITION_SCHEMA})
class ConditionsField(serializers.JSONField):
    pass


WINDOW_SCHEMA = {
    "type": "object",
    "nullable": True,
    "description": "Engagement rules only: award on the event that makes `count` matching events (type and "
    "conditions) within the trailing `days` days, this one included; then not again for `days` days, and the "
    "events of one award never count towards the next. Caps apply to the awards. Null: every matching event.",
    "properties": {
        "count": {"type": "integer", "minimum": engine.WINDOW_COUNT_RANGE[0], "maximum": engine.WINDOW_COUNT_RANGE[1]},
        "days": {"type": "integer", "minimum": engine.WINDOW_DAYS_RANGE[0], "maximum": engine.WINDOW_DAYS_RANGE[1]},
    },
    "required": ["count", "days"],
    "additionalProperties": False,
}


@extend_schema_serializer(component_name="ScoringRuleWindow")
class WindowSerializer(serializers.Serializer):
    """A rule's window in responses that show it beside other things (the score breakdown)."""

    count = serializers.IntegerField()
    days = serializers.IntegerField()


@extend_schema_field(WINDOW_SCHEMA)
class WindowField(serializers.Field):
    """`{"count": 3, "days": 7}` or null on the wire; the rule's `window_count` and `window_days`."""

    PARTS = {"count": ("window_count", engine.WINDOW_COUNT_RANGE), "days": ("window_days", engine.WINDOW_DAYS_RANGE)}

    def __init__(self, **kwargs: Any):
        super().__init__(source="*", allow_null=True, required=False, **kwargs)

    def to_representation(self, value: Any) -> dict[str, int] | None:
        # a rule row, or a rule of a version document (a dict with the same names)
        read = value.get if isinstance(value, Mapping) else lambda name: getattr(value, name, None)
        count, days = read("window_count"), read("window_days")
        return None if count is None or days is None else {"count": count, "days": days}

    def to_internal_value(self, data: Any) -> dict[str, int | None]:
        if data is None:
            return {"window_count": None, "window_days": None}
        if not isinstance(data, dict):
            raise serializers.ValidationError('Must be an object such as {"count": 3, "days": 7}, or null.')
        errors = unknown_fields(data, self.PARTS)
        cleaned: dict[str, int | None] = {}
        for name, (attribute, (low, high)) in self.PARTS.items():
            value = data.get(name)
            if name not in data:
                errors[name] = ["This field is required."]
            elif isinstance(value, bool) or not (
                isinstance(value, int) or (isinstance(value, float) and value.is_integer())
            ):
                errors[name] = ["Must be a whole number."]
            elif not low <= value <= high:
                errors[name] = [f"Must be from {low} to {high}."]
            else:
                cleaned[attribute] = int(value)
        if errors:
            raise serializers.ValidationError(errors)
        return cleaned


@extend_schema_serializer(component_name="ScoringRule")
@openapi_patch(
    request={"name": {"pattern": NO_NUL}, "eventType": {"pattern": NO_NUL}},
    create=(
        "ScoringNewRule",
        [
            {
                "title": "engagement",
                # a pattern, not an enum: drf-spectacular hoists enums into one component per property name,
                # which merged both branches' kinds into `engagement` and made every fit rule invalid
                "properties": {"kind": {"pattern": "^engagement$"}, "eventType": {"pattern": EVENT_TYPE_PATTERN}},
                "required": ["eventType"],
            },
            {
                "title": "fit",
                "properties": {"kind": {"pattern": "^fit$"}, "conditions": {"minItems": 1}},
                "required": ["kind", "conditions"],
            },
        ],
    ),
)
class RuleSerializer(StrictModelSerializer):
    kind = enum_field(
        "ScoringRuleKind",
        ScoringRule.Kind.values,
        serializers.ChoiceField,
        choices=ScoringRule.Kind.choices,
        required=False,
    )
    name = StrictCharField(max_length=200, required=False, allow_blank=True)
    eventType = StrictCharField(
        source="event_type",
        max_length=128,
        required=False,
        allow_blank=True,
        help_text="Engagement rules: the event name they score (1-128 letters, digits, spaces, `_ . : -`), "
        "or `*` for every event. Ignored (stored empty) for fit rules.",
    )
    maxPerDay = StrictIntegerField(
        source="max_per_day", min_value=1, max_value=1_000_000, required=False, allow_null=True
    )
    maxPerLead = StrictIntegerField(
        source="max_per_lead", min_value=1, max_value=1_000_000, required=False, allow_null=True
    )
    maxPoints = StrictIntegerField(
        source="max_points", min_value=1, max_value=1_000_000, required=False, allow_null=True
    )
    isActive = StrictBooleanField(source="is_active", required=False)
    points = StrictIntegerField(min_value=-10000, max_value=10000)
    window = WindowField()
    conditions = ConditionsField(required=False, help_text="A fit rule needs at least one.")
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)

    model: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="key", read_only=True, help_text="The key of the scoring model the rule belongs to."
    )

    class Meta:
        model = ScoringRule
        fields = [
            "id",
            "model",
            "name",
            "kind",
            "eventType",
            "conditions",
            "points",
            "maxPerDay",
            "maxPerLead",
            "maxPoints",
            "window",
            "isActive",
            "createdAt",
            "updatedAt",
        ]
        read_only_fields = ["id"]

    def validate_conditions(self, value: Any) -> list[dict[str, Any]]:
        cleaned, errors = conditions_clean(value)
        if errors:
            raise serializers.ValidationError(errors.get("conditions", errors))
        return cleaned

    def to_internal_value(self, data: Any) -> Any:
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            # lift "conditions[0].op" out of the nested dict so the error names the exact field
            detail = exc.detail
            if isinstance(detail, dict) and isinstance(detail.get("conditions"), dict):
                nested: dict = detail.pop("conditions")  # type: ignore[assignment]
                detail.update(nested)
            raise serializers.ValidationError(detail) from exc

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        kind = attrs.get("kind", getattr(self.instance, "kind", ScoringRule.Kind.ENGAGEMENT))
        event_type = attrs.get("event_type", getattr(self.instance, "event_type", ""))
        if kind == ScoringRule.Kind.ENGAGEMENT:
            if event_type != "*" and not event_name_valid(event_type or ""):
                raise serializers.ValidationError({"eventType": ["An event name, or * for every event."]})
        elif "event_type" in attrs:
            attrs["event_type"] = ""
        if kind == ScoringRule.Kind.FIT and not attrs.get("conditions", getattr(self.instance, "conditions", [])):
            raise serializers.ValidationError({"conditions": ["A fit rule needs at least one condition."]})
        if kind == ScoringRule.Kind.FIT and attrs.get("window_count", getattr(self.instance, "window_count", None)):
            raise serializers.ValidationError({"window": ["Only engagement rules take a window."]})
        return attrs


@extend_schema_serializer(component_name="ScoringSettings")
class ScoringSettingsSerializer(StrictSerializer):
    warmThreshold = StrictIntegerField(source="warm_threshold", min_value=1)
    hotThreshold = StrictIntegerField(source="hot_threshold", min_value=2)
    qualifiedThreshold = StrictIntegerField(source="qualified_threshold", min_value=3)
    maxScore = StrictIntegerField(source="max_score", min_value=3, max_value=1_000_000)
    decayEnabled = StrictBooleanField(source="decay_enabled")
    decayRatePercent = StrictFloatField(source="decay_rate_percent", min_value=0, max_value=100)
    decayGraceDays = StrictIntegerField(source="decay_grace_days", min_value=0, max_value=365)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        base = self.instance if self.instance is not None else ScoringModel()  # a new one: the defaults
        merged = {name: attrs.get(name, getattr(base, name)) for name in (
            "warm_threshold", "hot_threshold", "qualified_threshold", "max_score")}  # fmt: skip
        if (
            not merged["warm_threshold"]
            < merged["hot_threshold"]
            < merged["qualified_threshold"]
            <= merged["max_score"]
        ):
            raise serializers.ValidationError(
                {"hotThreshold": ["Thresholds must rise: warm < hot < qualified <= maxScore."]}
            )
        return attrs


@extend_schema_serializer(component_name="ScoringRescoreJob")
class RescoreJobSerializer(serializers.ModelSerializer):
    status = enum_field("ScoringRescoreJobStatus", RescoreJob.Status.values)
    progress = serializers.SerializerMethodField(help_text="0..1; 1 once succeeded.")
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = RescoreJob
        fields = ["id", "status", "reason", "total", "done", "changed", "progress", "createdAt", "startedAt",
                  "finishedAt"]  # fmt: skip

    def get_progress(self, job: RescoreJob) -> float:
        if job.status == RescoreJob.Status.SUCCEEDED:
            return 1.0
        return round(job.done / job.total, 4) if job.total else 0.0


@extend_schema_serializer(component_name="ScoringSettingsProposal")
class ScoringSettingsProposalSerializer(ScoringSettingsSerializer):
    """Any subset of the settings (documentation only: `PreviewSerializer` checks them against the project's)."""

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        for field in fields.values():
            field.required = False
        return fields


@extend_schema_field(ScoringSettingsProposalSerializer)
class ProposedSettingsField(serializers.DictField):
    pass


@extend_schema_serializer(component_name="ScoringRuleProposal")
class PreviewSerializer(StrictSerializer):
    rules = RuleSerializer(many=True, help_text="The whole proposed rule set (replacing the project's).")
    settings = ProposedSettingsField(
        required=False, help_text="Proposed settings, any subset; the others are the project's."
    )

    def validate_settings(self, value: dict[str, Any]) -> dict[str, Any]:
        """Proposed settings, any subset, checked against the project's others."""
        settings = ScoringSettingsSerializer(self.context["model"], data=value, partial=True, context=self.context)
        settings.is_valid(raise_exception=True)
        return dict(settings.validated_data)


@extend_schema_serializer(component_name="ScoringRulePreview")
class RulePreviewSerializer(serializers.Serializer):
    leadsEvaluated = serializers.IntegerField()
    scoreChanged = serializers.IntegerField()
    stageChanged = serializers.IntegerField()
    stageTransitions = serializers.DictField(
        child=serializers.IntegerField(), help_text='How many leads would move, by "from->to" stage, e.g. "cold->warm".'
    )
    topMovers = inline_serializer(
        "ScoringRulePreviewMover",
        fields={
            "leadId": serializers.IntegerField(),
            "anonymousId": serializers.CharField(),
            "email": serializers.CharField(),
            "from": serializers.IntegerField(),
            "to": serializers.IntegerField(),
            "delta": serializers.IntegerField(),
            "fromStage": enum_field("LeadStage", Lead.Stage.values),
            "toStage": enum_field("LeadStage", Lead.Stage.values),
        },
        many=True,
        help_text="The 20 largest score changes.",
    )
