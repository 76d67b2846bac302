from typing import Any

from rest_framework import serializers

from leadpulse.models import FailedJob
from scoring import engine as scoring_engine

from .models import AutomationExecution, AutomationRule, WebhookDelivery, WebhookSubscription


def _conditions(value: Any, field: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) > 20:
        raise serializers.ValidationError({field: ["Must be a list of at most 20 conditions."]})
    for index, raw in enumerate(value):
        try:
            scoring_engine.compile_condition(raw)
        except scoring_engine.ConditionError as exc:
            raise serializers.ValidationError({f"{field}[{index}].{exc.field}": [exc.message]}) from exc
    return value


TRIGGER_CONFIG: dict[str, tuple[str, Any, str]] = {
    "stage_entered": ("stage", lambda v: v in scoring_engine.STAGES, "one of cold, warm, hot, qualified"),
    "score_crossed_up": ("threshold", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a score"),
    "score_crossed_down": ("threshold", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a score"),
    "velocity_at_least": (
        "velocity",
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "an integer >= 1",
    ),
}
ACTION_CONFIG: dict[str, tuple[str, Any, str]] = {
    "webhook": ("url", lambda v: isinstance(v, str) and v, "a URL"),
    "slack": ("url", lambda v: isinstance(v, str) and v, "a Slack incoming-webhook URL"),
    "email": (
        "to",
        lambda v: isinstance(v, list) and v and all(isinstance(a, str) and "@" in a for a in v),
        "a list of email addresses",
    ),
    "add_tag": ("tag", lambda v: isinstance(v, str) and 0 < len(v) <= 64, "a tag of at most 64 characters"),
    "set_owner": ("owner", lambda v: isinstance(v, str) and 0 < len(v) <= 254, "an owner"),
}


class AutomationRuleSerializer(serializers.ModelSerializer):
    isActive = serializers.BooleanField(source="is_active", required=False)
    triggerConfig = serializers.JSONField(source="trigger_config", required=False)
    leadConditions = serializers.JSONField(source="lead_conditions", required=False)
    actionConfig = serializers.JSONField(source="action_config", required=False)
    cooldownSeconds = serializers.IntegerField(
        source="cooldown_seconds", min_value=60, max_value=365 * 86400, required=False
    )
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)

    class Meta:
        model = AutomationRule
        fields = [
            "id",
            "name",
            "isActive",
            "trigger",
            "triggerConfig",
            "leadConditions",
            "action",
            "actionConfig",
            "cooldownSeconds",
            "createdAt",
        ]
        read_only_fields = ["id"]

    def to_representation(self, instance: AutomationRule) -> dict[str, Any]:
        data = super().to_representation(instance)
        # the signing secret is shown once, in the create response only
        if not self.context.get("show_secret"):
            data["actionConfig"] = {k: v for k, v in data["actionConfig"].items() if k != "secret"}
        return data

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        trigger = attrs.get("trigger", getattr(self.instance, "trigger", None))
        config = attrs.get("trigger_config", getattr(self.instance, "trigger_config", {}))
        if not isinstance(config, dict):
            raise serializers.ValidationError({"triggerConfig": ["Must be an object."]})
        if trigger in TRIGGER_CONFIG:
            key, check, what = TRIGGER_CONFIG[trigger]
            if not check(config.get(key)):
                raise serializers.ValidationError({f"triggerConfig.{key}": [f"Must be {what}."]})
        if trigger == "event_received":
            event_type = config.get("eventType", "*")
            if not isinstance(event_type, str) or not event_type:
                raise serializers.ValidationError({"triggerConfig.eventType": ["An event name, or *."]})
            _conditions(config.get("conditions", []), "triggerConfig.conditions")
        action = attrs.get("action", getattr(self.instance, "action", None))
        action_config = attrs.get("action_config", getattr(self.instance, "action_config", {}))
        if not isinstance(action_config, dict):
            raise serializers.ValidationError({"actionConfig": ["Must be an object."]})
        key, check, what = ACTION_CONFIG[str(action)]
        if not check(action_config.get(key)):
            raise serializers.ValidationError({f"actionConfig.{key}": [f"Must be {what}."]})
        conditions = attrs.get("lead_conditions", getattr(self.instance, "lead_conditions", {}))
        if not isinstance(conditions, dict):
            raise serializers.ValidationError({"leadConditions": ["Must be an object."]})
        unknown = set(conditions) - {"stages", "minScore", "maxScore", "grades", "traits"}
        if unknown:
            raise serializers.ValidationError({f"leadConditions.{sorted(unknown)[0]}": ["Unknown condition."]})
        if not set(conditions.get("stages", [])) <= set(scoring_engine.STAGES):
            raise serializers.ValidationError({"leadConditions.stages": ["Stages are cold, warm, hot, qualified."]})
        if not set(conditions.get("grades", [])) <= {"A", "B", "C", "D"}:
            raise serializers.ValidationError({"leadConditions.grades": ["Grades are A, B, C, D."]})
        for bound in ("minScore", "maxScore"):
            value = conditions.get(bound)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise serializers.ValidationError({f"leadConditions.{bound}": ["Must be an integer."]})
        _conditions(conditions.get("traits", []), "leadConditions.traits")
        return attrs


class AutomationExecutionSerializer(serializers.ModelSerializer):
    leadId = serializers.IntegerField(source="lead_id")
    responseCode = serializers.IntegerField(source="response_code")
    createdAt = serializers.DateTimeField(source="created_at")
    finishedAt = serializers.DateTimeField(source="finished_at")

    class Meta:
        model = AutomationExecution
        fields = ["id", "leadId", "trigger", "status", "attempts", "responseCode", "error", "createdAt", "finishedAt"]


class WebhookSubscribeSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2000)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookSubscription.Event.values), min_length=1, max_length=10
    )


class WebhookSubscriptionSerializer(serializers.ModelSerializer):
    isActive = serializers.BooleanField(source="is_active")
    consecutiveFailures = serializers.IntegerField(source="consecutive_failures")
    disabledAt = serializers.DateTimeField(source="disabled_at")
    disabledReason = serializers.CharField(source="disabled_reason")
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = WebhookSubscription
        fields = ["id", "url", "events", "isActive", "consecutiveFailures", "disabledAt", "disabledReason", "createdAt"]


class WebhookDeliverySerializer(serializers.ModelSerializer):
    deliveryId = serializers.UUIDField(source="delivery_id")
    responseCode = serializers.IntegerField(source="response_code")
    createdAt = serializers.DateTimeField(source="created_at")
    deliveredAt = serializers.DateTimeField(source="delivered_at")

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "deliveryId",
            "url",
            "event",
            "status",
            "attempts",
            "responseCode",
            "error",
            "createdAt",
            "deliveredAt",
        ]


class FailedJobSerializer(serializers.ModelSerializer):
    createdAt = serializers.DateTimeField(source="created_at")
    replayedAt = serializers.DateTimeField(source="replayed_at")

    class Meta:
        model = FailedJob
        fields = ["id", "kind", "reference", "error", "attempts", "createdAt", "replayedAt"]
