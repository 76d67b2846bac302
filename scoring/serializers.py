"""Request and response shapes of the scoring API (camelCase on the wire)."""

import json
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer, inline_serializer
from rest_framework import serializers

from core.fields import (
    NO_NUL,
    NOT_BLANK_NO_NUL,
    StrictBooleanField,
    StrictCharField,
    StrictEmailField,
    StrictFloatField,
    StrictIntegerField,
    StrictModelSerializer,
    StrictSerializer,
    contains_nul,
    json_value_schema,
    unknown_fields,
)
from ingest.contracts import event_name_valid
from ingest.models import Event, Lead

from . import engine
from .models import RescoreJob, ScoreHistory, ScoringRule

MAX_CONDITIONS = 20

# What validation enforces beyond the fields' own constraints, for the OpenAPI document.
# an event name ingest accepts, or "*", once trimmed
EVENT_TYPE_PATTERN = r"^\s*(\*|[A-Za-z0-9_.:\-]([A-Za-z0-9_ .:\-]{0,126}[A-Za-z0-9_.:\-])?)\s*$"
NUMERIC_STRING = r"^\s*[+-]?(\d(_?\d)*(\.(\d(_?\d)*)?)?|\.\d(_?\d)*)([eE][+-]?\d(_?\d)*)?\s*$"


def openapi_patch(
    *,
    request: dict[str, dict[str, Any]] | None = None,
    create: tuple[str, list[dict[str, Any]]] | None = None,
) -> Any:
    """Add schema keywords to a serializer's request properties;
    `create` names the POST body apart and adds the `oneOf` variants it must match (constraints between fields)."""

    def decorate(serializer: Any) -> Any:
        serializer._openapi_patch = {"request": request or {}, "create": create}
        return serializer

    return decorate


class PatchedSerializerExtension(OpenApiSerializerExtension):
    target_class = "rest_framework.serializers.Serializer"
    match_subclasses = True

    @classmethod
    def _matches(cls, target: Any) -> bool:
        return hasattr(target, "_openapi_patch") and super()._matches(target)

    def creates(self, auto_schema: Any, direction: Any) -> bool:
        return bool(direction == "request" and auto_schema.method == "POST" and self.target._openapi_patch["create"])

    def get_name(self, auto_schema: Any, direction: Any) -> str | None:
        return self.target._openapi_patch["create"][0] if self.creates(auto_schema, direction) else None

    def map_serializer(self, auto_schema: Any, direction: Any) -> Any:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        patch = self.target._openapi_patch
        if direction == "request":
            for name, keywords in patch["request"].items():
                schema["properties"][name] = {**schema["properties"].get(name, {}), **keywords}
        if self.creates(auto_schema, direction):
            schema["oneOf"] = patch["create"][1]
        return schema


def enum_field(name: str, values: Any, field: type[serializers.Field] = serializers.CharField, **kwargs: Any) -> Any:
    """A string field documented as the enum component `name` (one name per choice set)."""
    return type(f"{name}Field", (field,), {"_openapi_enum": (name, list(values))})(**kwargs)


class EnumFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "rest_framework.fields.Field"
    match_subclasses = True

    @classmethod
    def _matches(cls, target: Any) -> bool:
        return hasattr(target, "_openapi_enum") and super()._matches(target)

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> Any:
        name, values = self.target._openapi_enum
        component = ResolvedComponent(
            name=name, type=ResolvedComponent.SCHEMA, object=name, schema={"type": "string", "enum": values}
        )
        auto_schema.registry.register_on_missing(component)
        return component.ref


CONDITION_VALUE = {
    "description": "Depends on `op`: ignored for exists/not_exists; a non-empty list (at most 500 items) for in; "
    "a number (or numeric string) for gt/gte/lt/lte; an RE2 regular expression (1-500 characters) for regex; "
    "a non-empty string or a number otherwise."
}
CONDITION_SCHEMA = {
    "type": "object",
    "description": "All conditions of a rule must hold. Values are compared case-insensitively as text, "
    "or as numbers when both sides are numeric.",
    "properties": {
        "path": {
            "type": "string",
            "pattern": r"^[^.\x00]{1,64}(\.[^.\x00]{1,64}){0,7}$",
            "description": "A dotted path of 1-8 parts (each 1-64 characters), e.g. `properties.url` or `traits.plan`.",
        },
        "op": {"type": "string", "enum": list(engine.OPERATORS)},
        "value": CONDITION_VALUE,
    },
    "required": ["path", "op"],
    "additionalProperties": False,
    "oneOf": [
        {"properties": {"op": {"enum": ["exists", "not_exists"]}}},
        {
            "properties": {
                "op": {"enum": ["in"]},
                "value": {"type": "array", "minItems": 1, "maxItems": 500, "items": {}},
            },
            "required": ["value"],
        },
        {
            "properties": {
                "op": {"enum": ["gt", "gte", "lt", "lte"]},
                "value": {"oneOf": [{"type": "number"}, {"type": "string", "pattern": NUMERIC_STRING}]},
            },
            "required": ["value"],
        },
        {
            "properties": {
                "op": {"enum": ["regex"]},
                "value": {"type": "string", "minLength": 1, "maxLength": 500, "pattern": NO_NUL},
            },
            "required": ["value"],
        },
        {
            "properties": {
                "op": {
                    "enum": ["eq", "neq", "contains", "not_contains", "starts_with", "ends_with"],
                },
                "value": {"oneOf": [{"type": "number"}, {"type": "string", "minLength": 1, "pattern": NO_NUL}]},
            },
            "required": ["value"],
        },
    ],
}


@extend_schema_serializer(component_name="Lead")
class LeadSerializer(serializers.ModelSerializer):
    anonymousId = serializers.CharField(source="anonymous_id")
    userId = serializers.CharField(source="user_id", help_text="Empty until the lead is identified.")
    email = serializers.CharField(help_text="Lower-case; empty when unknown.")
    currentScore = serializers.IntegerField(source="current_score", help_text="Engagement + fit, 0..maxScore.")
    engagementScore = serializers.IntegerField(source="engagement_score")
    fitScore = serializers.IntegerField(source="fit_score")
    fitGrade = enum_field("LeadFitGrade", ["A", "B", "C", "D"], source="fit_grade")
    leadStage = enum_field("LeadStage", Lead.Stage.values, source="lead_stage")
    velocityScore = serializers.IntegerField(source="velocity_score", min_value=0, max_value=10)
    eventsLast24h = serializers.IntegerField(source="events_last_24h")
    lastEventAt = serializers.DateTimeField(source="last_event_at", allow_null=True)
    firstSeenAt = serializers.DateTimeField(source="first_seen_at", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Lead
        fields = [
            "id",
            "anonymousId",
            "userId",
            "email",
            "name",
            "company",
            "currentScore",
            "engagementScore",
            "fitScore",
            "fitGrade",
            "leadStage",
            "velocityScore",
            "eventsLast24h",
            "lastEventAt",
            "firstSeenAt",
            "createdAt",
        ]


@extend_schema_serializer(component_name="LeadCreate")
@openapi_patch(request={"anonymousId": {"pattern": NOT_BLANK_NO_NUL}, "name": {"pattern": NO_NUL},
                        "company": {"pattern": NO_NUL}})  # fmt: skip
class LeadCreateSerializer(StrictSerializer):
    anonymousId = StrictCharField(max_length=255)
    email = StrictEmailField(max_length=254, required=False, allow_blank=True, default="")
    name = StrictCharField(max_length=255, required=False, allow_blank=True, default="")
    company = StrictCharField(max_length=255, required=False, allow_blank=True, default="")


TRAITS_MAX_BYTES = 32 * 1024
TRAITS_MAX_DEPTH = 5


TRAITS_SCHEMA = {
    "type": "object",
    "additionalProperties": json_value_schema(TRAITS_MAX_DEPTH - 1),
    "description": f"Free-form traits: a JSON object nesting at most {TRAITS_MAX_DEPTH} levels, "
    f"at most {TRAITS_MAX_BYTES} bytes as JSON, no NUL characters (keys included). Replaces the stored traits.",
}


def json_shape(value: Any) -> tuple[int, bool]:
    """How deeply objects and arrays nest in a JSON value (a flat object is 1), and whether a NUL occurs.

    Iterative, so a hostile nesting cannot exhaust the stack.
    """
    depth, nul = 0, False
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            depth = max(depth, level + 1)
            nul = nul or any("\x00" in key for key in item)
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            depth = max(depth, level + 1)
            stack.extend((child, level + 1) for child in item)
        elif isinstance(item, str):
            nul = nul or "\x00" in item
    return depth, nul


@extend_schema_serializer(component_name="LeadUpdate")
@openapi_patch(request={"name": {"pattern": NO_NUL}, "company": {"pattern": NO_NUL}, "traits": TRAITS_SCHEMA})
class LeadUpdateSerializer(StrictSerializer):
    """The fields a person may change on a lead; anything else (scores, ids, project) is refused."""

    email = StrictEmailField(max_length=254, allow_blank=True)
    name = StrictCharField(max_length=255, allow_blank=True, trim_whitespace=True)
    company = StrictCharField(max_length=255, allow_blank=True, trim_whitespace=True)
    traits = serializers.JSONField()

    def validate_email(self, value: str) -> str:
        return value.lower()

    def validate_traits(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        depth, nul = json_shape(value)
        if depth > TRAITS_MAX_DEPTH:
            raise serializers.ValidationError(f"Must nest at most {TRAITS_MAX_DEPTH} levels deep.")
        if nul:
            raise serializers.ValidationError("Must not contain NUL characters.")  # PostgreSQL's jsonb refuses them
        try:
            size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
        except UnicodeEncodeError:
            raise serializers.ValidationError("Must be valid Unicode.") from None
        if size > TRAITS_MAX_BYTES:
            raise serializers.ValidationError(f"Must be at most {TRAITS_MAX_BYTES} bytes as JSON.")
        return value


@extend_schema_field({"type": "array", "maxItems": MAX_CONDITIONS, "items": CONDITION_SCHEMA})
class ConditionsField(serializers.JSONField):
    pass


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
    conditions = ConditionsField(required=False, help_text="A fit rule needs at least one.")
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)

    class Meta:
        model = ScoringRule
        fields = [
            "id",
            "name",
            "kind",
            "eventType",
            "conditions",
            "points",
            "maxPerDay",
            "maxPerLead",
            "maxPoints",
            "isActive",
            "createdAt",
            "updatedAt",
        ]
        read_only_fields = ["id"]

    def validate_conditions(self, value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list) or len(value) > MAX_CONDITIONS:
            raise serializers.ValidationError(f"Must be a list of at most {MAX_CONDITIONS} conditions.")
        errors, cleaned = {}, []
        for index, raw in enumerate(value):
            if contains_nul(raw):
                errors[f"conditions[{index}]"] = ["Must not contain NUL characters."]
                continue
            unknown = unknown_fields(raw, engine.CONDITION_FIELDS, prefix=f"conditions[{index}].")
            if unknown:
                errors.update(unknown)
                continue
            try:
                condition = engine.compile_condition(raw)
            except engine.ConditionError as exc:
                errors[f"conditions[{index}]{'.' + exc.field if exc.field else ''}"] = [exc.message]
                continue
            cleaned.append({"path": condition.path, "op": condition.op, "value": condition.value})
        if errors:
            raise serializers.ValidationError(errors)
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
        base = self.instance or self.context["project"]
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
        project = self.context["project"]
        settings = ScoringSettingsSerializer(project, data=value, partial=True, context=self.context)
        settings.is_valid(raise_exception=True)
        return dict(settings.validated_data)


# Response shapes of the reads built by selectors (plain dicts, documented here).


class RuleRefSerializer(serializers.Serializer):
    ruleId = serializers.IntegerField()
    name = serializers.CharField(help_text="`(deleted rule)` when the rule no longer exists.")
    eventType = serializers.CharField()


@extend_schema_serializer(component_name="LeadScoreBreakdownRule")
class ScoreBreakdownRuleSerializer(RuleRefSerializer):
    timesApplied = serializers.IntegerField()
    points = serializers.IntegerField()


@extend_schema_serializer(component_name="LeadScoreBreakdownFit")
class ScoreBreakdownFitSerializer(RuleRefSerializer):
    points = serializers.IntegerField()


@extend_schema_serializer(component_name="LeadScoreBreakdown")
class ScoreBreakdownSerializer(serializers.Serializer):
    currentScore = serializers.IntegerField()
    engagementScore = serializers.IntegerField()
    fitScore = serializers.IntegerField()
    fitGrade = enum_field("LeadFitGrade", ["A", "B", "C", "D"])
    rules = ScoreBreakdownRuleSerializer(many=True, help_text="Engagement rules applied, largest effect first.")
    clampAdjustment = serializers.IntegerField(help_text="Points lost to the 0..maxScore clamp while folding.")
    decayBetweenEvents = serializers.IntegerField()
    foldScore = serializers.IntegerField(help_text="Σ rule points + clampAdjustment + decayBetweenEvents.")
    decaySinceLastEvent = serializers.IntegerField(help_text="foldScore + this = engagementScore.")
    fit = ScoreBreakdownFitSerializer(many=True)
    finalClampAdjustment = serializers.IntegerField(help_text="engagementScore + fitScore + this = currentScore.")
    stale = serializers.BooleanField(help_text="Fit rules or traits changed since the last fold.")


@extend_schema_serializer(component_name="LeadIntelligence")
class IntelligenceSerializer(serializers.Serializer):
    velocity = serializers.IntegerField(help_text="Events in the last 24 hours.")
    velocityScore = serializers.IntegerField(min_value=0, max_value=10)
    trend = enum_field("LeadTrend", ["increasing", "decreasing", "steady"], help_text="Against the previous 24 hours.")
    eventsPrevious24h = serializers.IntegerField()
    risk = enum_field("LeadRisk", ["low", "medium", "high"])
    nextAction = enum_field(
        "LeadNextAction",
        ["immediate_sales_contact", "schedule_demo", "nurture_campaign", "re_engagement_required", "monitor"],
    )
    daysSinceLastEvent = serializers.IntegerField(allow_null=True, help_text="Null when the lead has no events.")
    leadStage = enum_field("LeadStage", Lead.Stage.values)
    currentScore = serializers.IntegerField()


@extend_schema_serializer(component_name="LeadTimelineEvent")
class TimelineEventSerializer(serializers.Serializer):
    eventId = serializers.CharField()
    eventType = serializers.CharField(help_text="The event name.")
    timestamp = serializers.DateTimeField()
    properties = serializers.DictField(child=serializers.JSONField())
    scoreDelta = serializers.IntegerField(allow_null=True, help_text="Null until the event is scored.")
    newScore = serializers.IntegerField(allow_null=True)


@extend_schema_serializer(component_name="LeadTimeline")
class TimelineSerializer(serializers.Serializer):
    lead = LeadSerializer()
    events = TimelineEventSerializer(many=True, help_text="The newest `limit` events, oldest first.")


@extend_schema_serializer(component_name="LeadScoreHistory")
class ScoreHistorySerializer(serializers.ModelSerializer):
    reason = enum_field("LeadScoreChangeReason", ScoreHistory.Reason.values)
    oldScore = serializers.IntegerField(source="old_score")
    newScore = serializers.IntegerField(source="new_score")
    occurredAt = serializers.DateTimeField(source="occurred_at")
    eventId = serializers.CharField(source="event_uid", allow_null=True, help_text="The event's client id, if any.")
    details = serializers.JSONField(help_text="Which rules produced the delta: `[{ruleId, points}]` for rules.")

    class Meta:
        model = ScoreHistory
        fields = ["id", "reason", "oldScore", "newScore", "delta", "occurredAt", "eventId", "details"]


class JsonObjectField(serializers.DictField):
    child = serializers.JSONField()


@extend_schema_serializer(component_name="LeadExportLead")
class ExportLeadSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    createdAt = serializers.DateTimeField()
    updatedAt = serializers.DateTimeField()
    projectId = serializers.IntegerField()
    anonymousId = serializers.CharField()
    userId = serializers.CharField()
    email = serializers.CharField()
    name = serializers.CharField()
    company = serializers.CharField()
    traits = JsonObjectField()
    currentScore = serializers.IntegerField()
    engagementScore = serializers.IntegerField()
    fitScore = serializers.IntegerField()
    fitGrade = enum_field("LeadFitGrade", ["A", "B", "C", "D"])
    leadStage = enum_field("LeadStage", Lead.Stage.values)
    velocityScore = serializers.IntegerField()
    eventsLast24h = serializers.IntegerField()
    firstSeenAt = serializers.DateTimeField(allow_null=True)
    lastEventAt = serializers.DateTimeField(allow_null=True)
    lastScoredAt = serializers.DateTimeField(allow_null=True)
    foldState = JsonObjectField(help_text="The scoring fold's resumable state.")
    mergedIntoId = serializers.IntegerField(allow_null=True)


@extend_schema_serializer(component_name="LeadExportIdentity")
class ExportIdentitySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    anonymousId = serializers.CharField()
    userId = serializers.CharField()
    email = serializers.CharField()
    name = serializers.CharField()
    company = serializers.CharField()
    traits = JsonObjectField()
    createdAt = serializers.DateTimeField()
    mergedAt = serializers.DateTimeField()


# a serializer cannot declare a field named "context" (the serializer's own attribute): built inline
ExportEventSerializer = inline_serializer(
    "LeadExportEvent",
    fields={
        "eventId": serializers.CharField(),
        "type": enum_field("LeadExportEventType", Event.Type.values),
        "name": serializers.CharField(),
        "timestamp": serializers.DateTimeField(),
        "receivedAt": serializers.DateTimeField(),
        "properties": JsonObjectField(),
        "context": JsonObjectField(),
        "sessionId": serializers.CharField(),
        "anonymousId": serializers.CharField(),
        "userId": serializers.CharField(),
    },
    many=True,
    help_text="Oldest first, at most 10,000.",
)


@extend_schema_serializer(component_name="LeadExportScoreHistory")
class ExportHistorySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reason = enum_field("LeadScoreChangeReason", ScoreHistory.Reason.values)
    oldScore = serializers.IntegerField()
    newScore = serializers.IntegerField()
    delta = serializers.IntegerField()
    details = serializers.JSONField()
    occurredAt = serializers.DateTimeField()
    eventId = serializers.CharField(allow_null=True)


@extend_schema_serializer(component_name="LeadExportExecution")
class ExportExecutionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    ruleId = serializers.IntegerField()
    ruleName = serializers.CharField()
    leadId = serializers.IntegerField()
    trigger = JsonObjectField()
    status = enum_field("LeadExportExecutionStatus", ["pending", "succeeded", "failed", "skipped"])
    attempts = serializers.IntegerField()
    responseCode = serializers.IntegerField(allow_null=True)
    error = serializers.CharField()
    createdAt = serializers.DateTimeField()
    finishedAt = serializers.DateTimeField(allow_null=True)


@extend_schema_serializer(component_name="LeadExport")
class LeadExportSerializer(serializers.Serializer):
    lead = ExportLeadSerializer()
    mergedIdentities = ExportIdentitySerializer(many=True)
    events = ExportEventSerializer
    scoreHistory = ExportHistorySerializer(many=True, help_text="Oldest first, at most 10,000.")
    automationExecutions = ExportExecutionSerializer(many=True)
    truncated = serializers.BooleanField(help_text="Events or score history stopped at the limit.")


@extend_schema_serializer(component_name="ReportStageCounts")
class StageCountsSerializer(serializers.Serializer):
    cold = serializers.IntegerField()
    warm = serializers.IntegerField()
    hot = serializers.IntegerField()
    qualified = serializers.IntegerField()


@extend_schema_serializer(component_name="ReportDashboard")
class DashboardSerializer(serializers.Serializer):
    totalLeads = serializers.IntegerField()
    qualifiedLeads = serializers.IntegerField()
    averageScore = serializers.FloatField()
    eventsToday = serializers.IntegerField()
    lastEventAt = serializers.DateTimeField(allow_null=True, help_text="Null when the project has no events.")
    stageDistribution = StageCountsSerializer()
    eventsByType = serializers.DictField(
        child=serializers.IntegerField(), help_text="Event name → count, the 12 most frequent."
    )
    eventsPerDay = inline_serializer(
        "ReportDashboardDay", fields={"date": serializers.DateField(), "count": serializers.IntegerField()}, many=True
    )
    topLeads = LeadSerializer(many=True, help_text="The 10 highest scores.")


@extend_schema_serializer(component_name="ReportLeaderboard")
class LeaderboardSerializer(serializers.Serializer):
    results = LeadSerializer(many=True)
    count = serializers.IntegerField(help_text="All live leads, not only this page.")


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
