"""Leads on the wire: the lead, its edits, breakdown, intelligence, timeline, history and export."""

from typing import Any

from drf_spectacular.utils import extend_schema_field, extend_schema_serializer, inline_serializer
from rest_framework import serializers

from core.fields import (
    NO_NUL,
    NOT_BLANK_NO_NUL,
    StrictCharField,
    StrictEmailField,
    StrictSerializer,
    traits_clean,
    traits_schema,
)
from core.leadfacets import LeadFacet, lead_facets
from ingest.models import Event, Lead

from ..engine import MATRIX_CELLS
from ..models import ScoreHistory
from ..selectors import leads_model_scores
from .adjustments import AdjustmentSerializer, AdjustmentSummarySerializer
from .common import enum_field, openapi_patch
from .rules import WindowSerializer

MODEL_SCORES_SCHEMA = {
    "type": "object",
    "additionalProperties": {
        "type": "object",
        "properties": {
            "score": {"type": "integer", "minimum": 0},
            "stage": {"type": "string", "enum": list(Lead.Stage.values)},
            "engagement": {"type": "integer"},
            "fit": {"type": "integer"},
            "grade": {"type": "string", "enum": ["A", "B", "C", "D"]},
            "cell": {
                "type": "string",
                "enum": list(MATRIX_CELLS),
                "description": "The fit x engagement cell under this model: grade, then engagement tier.",
            },
        },
        "required": ["score", "stage", "engagement", "fit", "grade", "cell"],
    },
}


@extend_schema_field({"type": "string", "enum": list(MATRIX_CELLS)})
class MatrixCellField(serializers.CharField):
    """A fit x engagement cell, `A1` … `D3`."""


class LeadFacetField(serializers.Field):
    """A lead facet's value (`core.leadfacets`), read for the whole page at once (`context["facets"]`)."""

    def __init__(self, facet: LeadFacet) -> None:
        super().__init__(source="*", read_only=True, help_text=facet.description or None)
        self.facet = facet
        # the facet's own schema in the OpenAPI document (what `extend_schema_field` sets on a class)
        self._spectacular_annotation = {"field": facet.schema}

    def to_representation(self, lead: Lead) -> Any:
        facets = self.context.get("facets")
        if facets is None:  # one lead outside a page
            facets = lead_facets.values_for(project_id=lead.project_id, lead_ids=[lead.id])
            self.context["facets"] = facets  # type: ignore[index]  # DRF's context is a dict
        return facets.get(self.facet.key, {}).get(lead.id)


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
    matrixCell = serializers.SerializerMethodField(
        help_text="The primary model's fit x engagement cell, A1 … D3: the fit grade, then the engagement tier "
        "(1: engagement score ≥ the model's hot threshold, 2: ≥ its warm threshold, 3: below)."
    )
    scores = serializers.SerializerMethodField(
        help_text="Every scoring model's result by model key; the primary model's equals the fields above."
    )

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
            "matrixCell",
            "scores",
        ]

    def _scores(self, lead: Lead) -> tuple[str, dict[str, dict[str, Any]]]:
        """The primary model's key and every model's result for the lead (read once for both fields)."""
        if getattr(self, "_scored", (None,))[0] != lead.id:
            scores = self.context.get("scores")
            if scores is None:  # one lead outside a page: its own two queries
                scores = leads_model_scores(project=lead.project, lead_ids=[lead.id])
            self._scored = (lead.id, scores.primary_key, scores.for_lead(lead))
        return self._scored[1], self._scored[2]

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        for facet in lead_facets:  # what apps above scoring add (a company, a conversion probability …)
            fields.setdefault(facet.key, LeadFacetField(facet))
        return fields

    @extend_schema_field({"type": "string", "enum": list(MATRIX_CELLS)})
    def get_matrixCell(self, lead: Lead) -> str:
        primary, scores = self._scores(lead)
        return str(scores[primary]["cell"])

    @extend_schema_field(MODEL_SCORES_SCHEMA)
    def get_scores(self, lead: Lead) -> dict[str, dict[str, Any]]:
        return self._scores(lead)[1]


@extend_schema_serializer(component_name="LeadCreate")
@openapi_patch(request={"anonymousId": {"pattern": NOT_BLANK_NO_NUL}, "name": {"pattern": NO_NUL},
                        "company": {"pattern": NO_NUL}})  # fmt: skip
class LeadCreateSerializer(StrictSerializer):
    anonymousId = StrictCharField(max_length=255)
    email = StrictEmailField(max_length=254, required=False, allow_blank=True, default="")
    name = StrictCharField(max_length=255, required=False, allow_blank=True, default="")
    company = StrictCharField(max_length=255, required=False, allow_blank=True, default="")


TRAITS_SCHEMA = traits_schema("Free-form traits")


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
        return traits_clean(value)


# Response shapes of the reads built by selectors (plain dicts, documented here).


class RuleRefSerializer(serializers.Serializer):
    ruleId = serializers.IntegerField()
    name = serializers.CharField(help_text="`(deleted rule)` when the rule no longer exists.")
    eventType = serializers.CharField()


@extend_schema_serializer(component_name="LeadScoreBreakdownRule")
class ScoreBreakdownRuleSerializer(RuleRefSerializer):
    timesApplied = serializers.IntegerField(help_text="Times the rule gave points (a window rule: its awards).")
    points = serializers.IntegerField()
    window = WindowSerializer(allow_null=True, help_text="The rule's window, if any: it awards on the `count`th "
                              "matching event within `days` days.")  # fmt: skip


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
    adjustments = AdjustmentSerializer(many=True, help_text="The manual adjustments of this model, oldest first.")
    adjustmentPoints = serializers.IntegerField(help_text="Points the manual adjustments moved the fold by.")
    clampAdjustment = serializers.IntegerField(help_text="Points lost to the 0..maxScore clamp while folding.")
    decayBetweenEvents = serializers.IntegerField()
    foldScore = serializers.IntegerField(
        help_text="Σ rule points + adjustmentPoints + clampAdjustment + decayBetweenEvents."
    )
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
    adjustment = AdjustmentSummarySerializer(
        allow_null=True, help_text="A manual adjustment (`$adjustment`): what it did, who and why; null otherwise."
    )


@extend_schema_serializer(component_name="LeadTimeline")
class TimelineSerializer(serializers.Serializer):
    lead = LeadSerializer()
    events = TimelineEventSerializer(many=True, help_text="The newest `limit` events, oldest first.")


@extend_schema_serializer(component_name="LeadAdjusted")
class AdjustedSerializer(serializers.Serializer):
    adjustment = AdjustmentSerializer()
    score = serializers.IntegerField(help_text="The adjusted model's score of the lead now.")
    stage = enum_field("LeadStage", Lead.Stage.values, help_text="The adjusted model's stage of the lead now.")
    lead = LeadSerializer(help_text="The lead now (its primary model's score and every model's).")


@extend_schema_serializer(component_name="LeadAdjustmentList")
class AdjustmentListSerializer(serializers.Serializer):
    results = AdjustmentSerializer(many=True, help_text="The newest adjustments first (at most 200).")


@extend_schema_serializer(component_name="LeadScoreHistory")
class ScoreHistorySerializer(serializers.ModelSerializer):
    reason = enum_field("LeadScoreChangeReason", ScoreHistory.Reason.values)
    oldScore = serializers.IntegerField(source="old_score")
    newScore = serializers.IntegerField(source="new_score")
    occurredAt = serializers.DateTimeField(source="occurred_at")
    eventId = serializers.CharField(source="event_uid", allow_null=True, help_text="The event's client id, if any.")
    details = serializers.JSONField(
        help_text="Which rules produced the delta: `[{ruleId, points}]` for rules; a manual adjustment's row has "
        "`adjustment: {points or setTo, reason, author}`."
    )

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
    model = serializers.CharField(help_text="The key of the scoring model the row belongs to.")


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
    scores = serializers.JSONField(help_text="Every scoring model's result by model key (as the lead's `scores`).")
    mergedIdentities = ExportIdentitySerializer(many=True)
    events = ExportEventSerializer
    scoreHistory = ExportHistorySerializer(many=True, help_text="Oldest first, at most 10,000.")
    automationExecutions = ExportExecutionSerializer(many=True)
    truncated = serializers.BooleanField(help_text="Events or score history stopped at the limit.")
