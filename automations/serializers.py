import re
from collections.abc import Iterable
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from core.fields import (
    NOT_BLANK_NO_NUL,
    StrictBooleanField,
    StrictCharField,
    StrictEmailField,
    StrictIntegerField,
    StrictModelSerializer,
    StrictSerializer,
    contains_nul,
)
from core.models import FailedJob
from scoring import contracts as scoring_engine

from . import actions, config_schema, triggers
from .config_schema import CONDITIONS_SCHEMA, URL_SCHEMA
from .models import AutomationExecution, AutomationRule, VerifiedRecipient, WebhookDelivery, WebhookSubscription


def _all_in(value: Any, allowed: tuple[str, ...]) -> bool:
    """A list whose items are all among `allowed` (not a string, number or object that merely iterates)."""
    return isinstance(value, list) and all(isinstance(item, str) and item in allowed for item in value)


# --- The OpenAPI document: what `validate` enforces, as JSON Schema (configs: from the registries) ----------


def _one_of(value: str) -> dict[str, Any]:
    # a pattern, not an enum: drf-spectacular would hoist an enum into a shared component
    return {"type": "string", "pattern": f"^({re.escape(value)})$"}


def _partial(variants: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """For PATCH: a config must fit the trigger or action sent with it; alone, it meets the stored one."""
    loosened = [{**variant, "required": [key]} for variant in variants]
    return {"anyOf": [{"not": {"required": [key]}}, *loosened]}


def _variants(registry: Iterable[triggers.Trigger | actions.Action], key: str, config: str) -> list[dict[str, Any]]:
    """One `oneOf` branch per registered trigger (or action): its key, and its config's schema."""
    variants = []
    for entry in registry:
        schema = entry.config.json_schema()
        variant: dict[str, Any] = {"properties": {key: _one_of(entry.key), config: schema}}
        if "required" in schema:
            variant["required"] = [config]
        variants.append(variant)
    return variants


def _trigger_variants() -> list[dict[str, Any]]:
    """As `_variants`; a trigger of another subject than leads (companies) also names its possible actions, and
    takes no lead conditions."""
    variants = _variants(triggers.registry, "trigger", "triggerConfig")
    for variant, trigger in zip(variants, triggers.registry, strict=True):
        if trigger.subject != "lead":
            usable = "|".join(re.escape(a.key) for a in actions.registry if trigger.subject in a.subjects)
            variant["properties"]["action"] = {"type": "string", "pattern": f"^({usable})$"}
            variant["properties"]["leadConditions"] = {"type": "object", "maxProperties": 0}
    return variants


def _action_variants() -> list[dict[str, Any]]:
    return _variants(actions.registry, "action", "actionConfig")


def _depends_on(registry: Iterable[triggers.Trigger | actions.Action], key: str) -> str:
    """`{stage}` for stage_entered, … : which config goes with which key, grouping keys that take the same."""
    takes: dict[str, list[str]] = {}
    for entry in registry:
        takes.setdefault(entry.config.summary(), []).append(entry.key)
    listed = ", ".join(f"{summary} for {' and '.join(keys)}" for summary, keys in takes.items())
    return f"Depends on `{key}`: {listed}. No string may contain NUL."


class AutomationRuleSchema(OpenApiSerializerExtension):
    """A rule's request: which `triggerConfig` and `actionConfig` keys are required follows `trigger` and `action`.

    A partial update (PATCH) is checked against the stored rule: there a config is tied only to a trigger or
    action sent with it.
    """

    target_class = "automations.serializers.AutomationRuleSerializer"

    def map_serializer(self, auto_schema: Any, direction: str) -> Any:
        # A fresh instance: one a schema helper holds (`results_of`) keeps the fields, so the trigger and action
        # choices, of the first document built; a trigger registered since (in tests) would be missing.
        serializer = type(self.target)()
        serializer.partial = self.target.partial
        schema = auto_schema._map_serializer(serializer, direction, bypass_extensions=True)
        properties = schema["properties"]
        if direction != "request":
            for name in ("triggerConfig", "leadConditions", "actionConfig"):
                properties[name] = {"type": "object", "additionalProperties": {}}
            return {**schema, "required": sorted(properties)}  # every field is in every response
        properties["name"]["pattern"] = NOT_BLANK_NO_NUL
        properties["triggerConfig"] = {"type": "object", "description": _depends_on(triggers.registry, "trigger")}
        properties["actionConfig"] = {"type": "object", "description": _depends_on(actions.registry, "action")}
        properties["leadConditions"] = {
            "type": "object",
            "description": "Further conditions on the lead; all must hold.",
            "properties": {
                "stages": {"type": "array", "items": {"type": "string", "enum": list(scoring_engine.STAGES)}},
                "grades": {"type": "array", "items": {"type": "string", "enum": ["A", "B", "C", "D"]}},
                "minScore": {"type": "integer", "nullable": True},
                "maxScore": {"type": "integer", "nullable": True},
                "traits": CONDITIONS_SCHEMA,
            },
            "additionalProperties": False,
        }
        if "required" not in schema:  # PATCH
            return {
                **schema,
                "allOf": [_partial(_trigger_variants(), "trigger"), _partial(_action_variants(), "action")],
            }
        return {**schema, "allOf": [{"oneOf": _trigger_variants()}, {"oneOf": _action_variants()}]}


@extend_schema_serializer(component_name="AutomationRule")
class AutomationRuleSerializer(StrictModelSerializer):
    name = StrictCharField(max_length=200)
    isActive = StrictBooleanField(source="is_active", required=False)
    triggerConfig = serializers.JSONField(source="trigger_config", required=False)
    leadConditions = serializers.JSONField(source="lead_conditions", required=False)
    actionConfig = serializers.JSONField(source="action_config", required=False)
    cooldownSeconds = StrictIntegerField(source="cooldown_seconds", min_value=60, max_value=365 * 86400, required=False)
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
            secret = actions.secret_config_keys()
            data["actionConfig"] = {k: v for k, v in data["actionConfig"].items() if k not in secret}
        return data

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for source, name in (("trigger_config", "triggerConfig"), ("lead_conditions", "leadConditions"),
                             ("action_config", "actionConfig")):  # fmt: skip
            if contains_nul(attrs.get(source)):
                raise serializers.ValidationError({name: ["Text may not contain NUL characters."]})
        trigger = attrs.get("trigger", getattr(self.instance, "trigger", None))
        self._config_validate(attrs, triggers.registry.get(trigger), "trigger", "trigger_config", "triggerConfig")
        action = attrs.get("action", getattr(self.instance, "action", None))
        self._config_validate(attrs, actions.registry.get(action), "action", "action_config", "actionConfig")
        conditions = attrs.get("lead_conditions", getattr(self.instance, "lead_conditions", {}))
        if not isinstance(conditions, dict):
            raise serializers.ValidationError({"leadConditions": ["Must be an object."]})
        self._subject_validate(trigger, action, conditions)
        unknown = set(conditions) - {"stages", "minScore", "maxScore", "grades", "traits"}
        if unknown:
            raise serializers.ValidationError({f"leadConditions.{sorted(unknown)[0]}": ["Unknown condition."]})
        if not _all_in(conditions.get("stages", []), scoring_engine.STAGES):
            raise serializers.ValidationError({"leadConditions.stages": ["Stages are cold, warm, hot, qualified."]})
        if not _all_in(conditions.get("grades", []), ("A", "B", "C", "D")):
            raise serializers.ValidationError({"leadConditions.grades": ["Grades are A, B, C, D."]})
        for bound in ("minScore", "maxScore"):
            value = conditions.get(bound)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise serializers.ValidationError({f"leadConditions.{bound}": ["Must be an integer."]})
        traits = config_schema.conditions_errors(conditions.get("traits", []), "leadConditions.traits")
        if traits:
            raise serializers.ValidationError(traits)
        return attrs

    def _subject_validate(self, trigger: Any, action: Any, conditions: dict[str, Any]) -> None:
        """A company trigger's rule takes an action that can act on a company, and no conditions on a lead."""
        found = triggers.registry.get(trigger)
        subject = found.subject if found is not None else "lead"
        entry = actions.registry.get(action)
        if entry is not None and subject not in entry.subjects:
            usable = ", ".join(a.key for a in actions.registry if subject in a.subjects)
            raise serializers.ValidationError({"action": [f"A {subject} trigger's action is one of: {usable}."]})
        if subject != "lead" and conditions:
            raise serializers.ValidationError({"leadConditions": [f"A {subject} trigger takes no lead conditions."]})

    def _config_validate(
        self, attrs: dict[str, Any], entry: triggers.Trigger | actions.Action | None, kind: str, source: str, name: str
    ) -> None:
        """The config against the trigger's (or action's) declared schema; each error names its field."""
        if entry is None:  # a stored rule whose trigger or action is no longer registered
            raise serializers.ValidationError({kind: [f"Unknown {kind}: choose another one."]})
        config = attrs.get(source, getattr(self.instance, source, {}))
        if not isinstance(config, dict):
            raise serializers.ValidationError({name: ["Must be an object."]})
        if source in attrs:  # only what is sent: a stored config may predate these checks
            extra = entry.config.unknown(config, prefix=f"{name}.")
            if extra:
                raise serializers.ValidationError(extra)
        errors = entry.config.errors(config, prefix=f"{name}.")
        if errors:
            raise serializers.ValidationError(errors)


@extend_schema_field({"type": "object", "additionalProperties": {}})
class ObjectField(serializers.JSONField):
    """A JSON object (documented as one; `JSONField` alone is documented as any value)."""


@extend_schema_serializer(component_name="AutomationExecution")
class AutomationExecutionSerializer(serializers.ModelSerializer):
    leadId = serializers.IntegerField(source="lead_id", allow_null=True, help_text="The lead (a lead trigger's rule).")
    companyId = serializers.IntegerField(
        source="company_id", allow_null=True, help_text="The company (a company trigger's rule)."
    )
    trigger = ObjectField(help_text="What fired the rule, e.g. the stage entered or the event received.")
    responseCode = serializers.IntegerField(source="response_code", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)

    class Meta:
        model = AutomationExecution
        fields = [
            "id", "leadId", "companyId", "trigger", "status", "attempts", "responseCode", "error", "createdAt",
            "finishedAt",
        ]  # fmt: skip
        read_only_fields = fields  # output only


@extend_schema_serializer(component_name="WebhookSubscribe")
class WebhookSubscribeSerializer(StrictSerializer):
    url = serializers.URLField(max_length=2000)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookSubscription.Event.values), min_length=1, max_length=10
    )


class WebhookSubscribeSchema(OpenApiSerializerExtension):
    target_class = "automations.serializers.WebhookSubscribeSerializer"

    def map_serializer(self, auto_schema: Any, direction: str) -> Any:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["properties"]["url"] = {**schema["properties"]["url"], **URL_SCHEMA}
        return schema


@extend_schema_serializer(component_name="WebhookSubscription")
class WebhookSubscriptionSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.ChoiceField(choices=WebhookSubscription.Event.values))
    isActive = serializers.BooleanField(source="is_active")
    consecutiveFailures = serializers.IntegerField(source="consecutive_failures")
    disabledAt = serializers.DateTimeField(source="disabled_at", allow_null=True)
    disabledReason = serializers.CharField(source="disabled_reason")
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = WebhookSubscription
        fields = ["id", "url", "events", "isActive", "consecutiveFailures", "disabledAt", "disabledReason", "createdAt"]


@extend_schema_serializer(component_name="WebhookSubscriptionCreated")
class WebhookSubscriptionCreatedSerializer(WebhookSubscriptionSerializer):
    secret = serializers.CharField(help_text="The signing secret, `whsec_…`; shown in this response only.")

    class Meta(WebhookSubscriptionSerializer.Meta):
        fields = [*WebhookSubscriptionSerializer.Meta.fields, "secret"]


@extend_schema_serializer(component_name="WebhookDelivery")
class WebhookDeliverySerializer(serializers.ModelSerializer):
    deliveryId = serializers.UUIDField(source="delivery_id")
    event = serializers.CharField(help_text="The event, e.g. `lead.updated`, `automation.fired` or `ping`.")
    responseCode = serializers.IntegerField(source="response_code", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    deliveredAt = serializers.DateTimeField(source="delivered_at", allow_null=True)

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
        read_only_fields = fields  # output only


@extend_schema_serializer(component_name="FailedJob")
class FailedJobSerializer(serializers.ModelSerializer):
    createdAt = serializers.DateTimeField(source="created_at")
    replayedAt = serializers.DateTimeField(source="replayed_at", allow_null=True)

    class Meta:
        model = FailedJob
        fields = ["id", "kind", "reference", "error", "attempts", "createdAt", "replayedAt"]
        read_only_fields = fields  # output only


@extend_schema_serializer(component_name="EmailRecipientRequest")
class EmailRecipientRequestSerializer(StrictSerializer):
    email = StrictEmailField(max_length=254)


@extend_schema_serializer(component_name="EmailRecipient")
class EmailRecipientSerializer(serializers.ModelSerializer):
    verifiedAt = serializers.DateTimeField(
        source="verified_at", allow_null=True, help_text="When its owner confirmed; null while pending."
    )
    createdAt = serializers.DateTimeField(source="created_at")

    class Meta:
        model = VerifiedRecipient
        fields = ["id", "email", "verifiedAt", "createdAt"]
        read_only_fields = fields  # output only
