"""Request and response shapes of the scoring API (camelCase on the wire)."""

from typing import Any

from rest_framework import serializers

from ingest.models import Lead
from ingest.schema import EVENT_NAME_RE

from . import engine
from .models import RescoreJob, ScoringRule

MAX_CONDITIONS = 20


class LeadSerializer(serializers.ModelSerializer):
    anonymousId = serializers.CharField(source="anonymous_id")
    userId = serializers.CharField(source="user_id")
    currentScore = serializers.IntegerField(source="current_score")
    engagementScore = serializers.IntegerField(source="engagement_score")
    fitScore = serializers.IntegerField(source="fit_score")
    fitGrade = serializers.CharField(source="fit_grade")
    leadStage = serializers.CharField(source="lead_stage")
    velocityScore = serializers.IntegerField(source="velocity_score")
    eventsLast24h = serializers.IntegerField(source="events_last_24h")
    lastEventAt = serializers.DateTimeField(source="last_event_at")
    firstSeenAt = serializers.DateTimeField(source="first_seen_at")
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


class RuleSerializer(serializers.ModelSerializer):
    eventType = serializers.CharField(source="event_type", max_length=128, required=False, allow_blank=True)
    maxPerDay = serializers.IntegerField(
        source="max_per_day", min_value=1, max_value=1_000_000, required=False, allow_null=True
    )
    maxPerLead = serializers.IntegerField(
        source="max_per_lead", min_value=1, max_value=1_000_000, required=False, allow_null=True
    )
    maxPoints = serializers.IntegerField(
        source="max_points", min_value=1, max_value=1_000_000, required=False, allow_null=True
    )
    isActive = serializers.BooleanField(source="is_active", required=False)
    points = serializers.IntegerField(min_value=-10000, max_value=10000)
    conditions = serializers.JSONField(required=False)
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
            if event_type != "*" and not EVENT_NAME_RE.match(event_type or ""):
                raise serializers.ValidationError({"eventType": ["An event name, or * for every event."]})
        elif "event_type" in attrs:
            attrs["event_type"] = ""
        if kind == ScoringRule.Kind.FIT and not attrs.get("conditions", getattr(self.instance, "conditions", [])):
            raise serializers.ValidationError({"conditions": ["A fit rule needs at least one condition."]})
        return attrs


class ScoringSettingsSerializer(serializers.Serializer):
    warmThreshold = serializers.IntegerField(source="warm_threshold", min_value=1)
    hotThreshold = serializers.IntegerField(source="hot_threshold", min_value=2)
    qualifiedThreshold = serializers.IntegerField(source="qualified_threshold", min_value=3)
    maxScore = serializers.IntegerField(source="max_score", min_value=3, max_value=1_000_000)
    decayEnabled = serializers.BooleanField(source="decay_enabled")
    decayRatePercent = serializers.FloatField(source="decay_rate_percent", min_value=0, max_value=100)
    decayGraceDays = serializers.IntegerField(source="decay_grace_days", min_value=0, max_value=365)

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


class RescoreJobSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    startedAt = serializers.DateTimeField(source="started_at")
    finishedAt = serializers.DateTimeField(source="finished_at")
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = RescoreJob
        fields = ["id", "status", "reason", "total", "done", "changed", "progress", "createdAt", "startedAt",
                  "finishedAt"]  # fmt: skip

    def get_progress(self, job: RescoreJob) -> float:
        if job.status == RescoreJob.Status.SUCCEEDED:
            return 1.0
        return round(job.done / job.total, 4) if job.total else 0.0


class PreviewSerializer(serializers.Serializer):
    rules = RuleSerializer(many=True)
    settings = serializers.DictField(required=False)

    def validate_settings(self, value: dict[str, Any]) -> dict[str, Any]:
        """Proposed settings, any subset, checked against the project's others."""
        project = self.context["project"]
        settings = ScoringSettingsSerializer(project, data=value, partial=True, context=self.context)
        settings.is_valid(raise_exception=True)
        return dict(settings.validated_data)
