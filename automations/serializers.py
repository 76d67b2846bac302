from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from core.fields import (
    NO_NUL,
    NOT_BLANK_NO_NUL,
    StrictBooleanField,
    StrictCharField,
    StrictEmailField,
    StrictIntegerField,
    StrictModelSerializer,
    StrictSerializer,
    contains_nul,
    unknown_fields,
)
from core.models import FailedJob
from scoring import contracts as scoring_engine

from .models import AutomationExecution, AutomationRule, VerifiedRecipient, WebhookDelivery, WebhookSubscription

EMAIL_RECIPIENTS_PER_RULE = 10


def _email_address(value: Any) -> bool:
    """One plain address (no display name, list or line break: nothing a mail header could be split at)."""
    if not isinstance(value, str) or len(value) > 254:
        return False
    try:
        validate_email(value)
    except DjangoValidationError:
        return False
    return True


def _email_addresses(value: Any) -> bool:
    return (
        isinstance(value, list)
        and 0 < len(value) <= EMAIL_RECIPIENTS_PER_RULE
        and all(_email_address(address) for address in value)
    )


def _conditions(value: Any, field: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) > 20:
        raise serializers.ValidationError({field: ["Must be a list of at most 20 conditions."]})
    for index, raw in enumerate(value):
        unknown = unknown_fields(raw, scoring_engine.CONDITION_FIELDS, prefix=f"{field}[{index}].")
        if unknown:
            raise serializers.ValidationError(unknown)
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
        _email_addresses,
        f"a list of 1 to {EMAIL_RECIPIENTS_PER_RULE} email addresses, each a project member's or a verified one",
    ),
    "add_tag": ("tag", lambda v: isinstance(v, str) and 0 < len(v) <= 64, "a tag of at most 64 characters"),
    "set_owner": ("owner", lambda v: isinstance(v, str) and 0 < len(v) <= 254, "an owner"),
}


# The keys each trigger's and action's config may hold; any other is refused when a config is sent.
TRIGGER_CONFIG_FIELDS: dict[str, tuple[str, ...]] = {
    **{trigger: (key,) for trigger, (key, _, _) in TRIGGER_CONFIG.items()},
    "event_received": ("eventType", "conditions"),
}
ACTION_CONFIG_FIELDS: dict[str, tuple[str, ...]] = {
    **{action: (key,) for action, (key, _, _) in ACTION_CONFIG.items()},
    "webhook": ("url", "secret"),
}


def _all_in(value: Any, allowed: tuple[str, ...]) -> bool:
    """A list whose items are all among `allowed` (not a string, number or object that merely iterates)."""
    return isinstance(value, list) and all(isinstance(item, str) and item in allowed for item in value)


# --- The OpenAPI document: what `validate` enforces, as JSON Schema ---------------------------

TEXT = {"type": "string", "pattern": NO_NUL}
CONDITION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One condition `{path, op, value}`, as in scoring rules.",
    "properties": {
        "path": {
            "type": "string",
            "pattern": rf"^[^.\x00]{{1,64}}(\.[^.\x00]{{1,64}}){{0,{scoring_engine.PATH_PART_LIMIT - 1}}}$",
            "description": "A dotted path of 1-8 parts (each 1-64 characters), e.g. `properties.url`.",
        },
        "op": {"type": "string", "enum": list(scoring_engine.OPERATORS)},
        "value": {"description": "Depends on `op`; ignored for exists/not_exists."},
    },
    "required": ["path", "op"],
    "additionalProperties": False,
    "oneOf": [
        {"properties": {"op": {"enum": ["exists", "not_exists"]}}},
        {
            "properties": {"op": {"enum": ["in"]}, "value": {"type": "array", "minItems": 1, "maxItems": 500}},
            "required": ["value"],
        },
        {
            "properties": {
                "op": {"enum": ["gt", "gte", "lt", "lte"]},
                "value": {"oneOf": [{"type": "number"}, TEXT], "description": "A number or a numeric string."},
            },
            "required": ["value"],
        },
        {
            "properties": {
                "op": {"enum": ["regex"]},
                "value": {**TEXT, "minLength": 1, "maxLength": 500, "description": "An RE2 regular expression."},
            },
            "required": ["value"],
        },
        {
            "properties": {
                "op": {"enum": ["eq", "neq", "contains", "not_contains", "starts_with", "ends_with"]},
                "value": {"oneOf": [{"type": "number"}, {**TEXT, "minLength": 1}]},
            },
            "required": ["value"],
        },
    ],
}
CONDITIONS_SCHEMA = {"type": "array", "maxItems": 20, "items": CONDITION_SCHEMA}
URL_SCHEMA = {
    "type": "string",
    "format": "uri",
    "pattern": r"^[hH][tT][tT][pP][sS]?://[^\x00]+$",
    "description": "http(s); refused (400 `unsafe_url`) unless its host resolves to public addresses.",
}
TRIGGER_CONFIG_SCHEMAS: dict[str, dict[str, Any]] = {
    "stage_entered": {"stage": {"type": "string", "enum": list(scoring_engine.STAGES)}},
    "score_crossed_up": {"threshold": {"type": "integer", "minimum": 0}},
    "score_crossed_down": {"threshold": {"type": "integer", "minimum": 0}},
    "velocity_at_least": {"velocity": {"type": "integer", "minimum": 1}},
}
ACTION_CONFIG_SCHEMAS: dict[str, dict[str, Any]] = {
    "webhook": {"url": URL_SCHEMA},
    "slack": {"url": {**URL_SCHEMA, "description": "A Slack incoming-webhook URL. " + URL_SCHEMA["description"]}},
    "email": {
        "to": {
            "type": "array",
            "minItems": 1,
            "maxItems": EMAIL_RECIPIENTS_PER_RULE,
            "items": {"type": "string", "format": "email", "maxLength": 254},
            "description": "Members of the project, or addresses verified through `POST /api/email-recipients` "
            "(400 `recipient_not_allowed` otherwise); checked again at each send.",
        }
    },
    "add_tag": {"tag": {**TEXT, "minLength": 1, "maxLength": 64}},
    "set_owner": {"owner": {**TEXT, "minLength": 1, "maxLength": 254}},
}


def _one_of(*values: str) -> dict[str, Any]:
    # a pattern, not an enum: drf-spectacular would hoist an enum into a shared component
    return {"type": "string", "pattern": f"^({'|'.join(values)})$"}


def _partial(variants: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """For PATCH: a config must fit the trigger or action sent with it; alone, it meets the stored one."""
    loosened = [{**variant, "required": [key]} for variant in variants]
    return {"anyOf": [{"not": {"required": [key]}}, *loosened]}


def _trigger_variants() -> list[dict[str, Any]]:
    variants: list[dict[str, Any]] = []
    for trigger, properties in TRIGGER_CONFIG_SCHEMAS.items():
        config: dict[str, Any] = {"type": "object", "properties": properties, "required": list(properties)}
        config["additionalProperties"] = False
        variants.append(
            {"properties": {"trigger": _one_of(trigger), "triggerConfig": config}, "required": ["triggerConfig"]}
        )
    event_config = {
        "type": "object",
        "properties": {
            "eventType": {**TEXT, "minLength": 1, "default": "*", "description": "An event name, or `*`."},
            "conditions": CONDITIONS_SCHEMA,
        },
        "additionalProperties": False,
    }
    variants.append({"properties": {"trigger": _one_of("event_received"), "triggerConfig": event_config}})
    nothing = {"type": "object", "additionalProperties": False}
    variants.append({"properties": {"trigger": _one_of("lead_merged", "lead_identified"), "triggerConfig": nothing}})
    return variants


def _action_variants() -> list[dict[str, Any]]:
    variants = []
    for action, properties in ACTION_CONFIG_SCHEMAS.items():
        config: dict[str, Any] = {
            "type": "object",
            "properties": dict(properties),
            "required": list(properties),
            "additionalProperties": False,
        }
        if action == "webhook":
            config["properties"]["secret"] = {
                **TEXT,
                "description": "The signing secret (default: a new `whsec_…`); shown in the create response only.",
            }
        variants.append(
            {"properties": {"action": _one_of(action), "actionConfig": config}, "required": ["actionConfig"]}
        )
    return variants


class AutomationRuleSchema(OpenApiSerializerExtension):
    """A rule's request: which `triggerConfig` and `actionConfig` keys are required follows `trigger` and `action`.

    A partial update (PATCH) is checked against the stored rule: there a config is tied only to a trigger or
    action sent with it.
    """

    target_class = "automations.serializers.AutomationRuleSerializer"

    def map_serializer(self, auto_schema: Any, direction: str) -> Any:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        properties = schema["properties"]
        if direction != "request":
            for name in ("triggerConfig", "leadConditions", "actionConfig"):
                properties[name] = {"type": "object", "additionalProperties": {}}
            return {**schema, "required": sorted(properties)}  # every field is in every response
        properties["name"]["pattern"] = NOT_BLANK_NO_NUL
        properties["triggerConfig"] = {
            "type": "object",
            "description": "Depends on `trigger`: `{stage}` for stage_entered, `{threshold}` for score_crossed_up/"
            "down, `{velocity}` for velocity_at_least, `{eventType, conditions}` for event_received; nothing "
            "for lead_merged and lead_identified. No string may contain NUL.",
        }
        properties["actionConfig"] = {
            "type": "object",
            "description": "Depends on `action`: `{url, secret}` for webhook, `{url}` for slack, `{to}` for email, "
            "`{tag}` for add_tag, `{owner}` for set_owner. No string may contain NUL.",
        }
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
            data["actionConfig"] = {k: v for k, v in data["actionConfig"].items() if k != "secret"}
        return data

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for source, name in (("trigger_config", "triggerConfig"), ("lead_conditions", "leadConditions"),
                             ("action_config", "actionConfig")):  # fmt: skip
            if contains_nul(attrs.get(source)):
                raise serializers.ValidationError({name: ["Text may not contain NUL characters."]})
        trigger = attrs.get("trigger", getattr(self.instance, "trigger", None))
        config = attrs.get("trigger_config", getattr(self.instance, "trigger_config", {}))
        if not isinstance(config, dict):
            raise serializers.ValidationError({"triggerConfig": ["Must be an object."]})
        if "trigger_config" in attrs:  # only what is sent: a stored config may predate these checks
            extra = unknown_fields(config, TRIGGER_CONFIG_FIELDS.get(str(trigger), ()), prefix="triggerConfig.")
            if extra:
                raise serializers.ValidationError(extra)
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
        if "action_config" in attrs:
            extra = unknown_fields(action_config, ACTION_CONFIG_FIELDS.get(str(action), ()), prefix="actionConfig.")
            if extra:
                raise serializers.ValidationError(extra)
        key, check, what = ACTION_CONFIG[str(action)]
        if not check(action_config.get(key)):
            raise serializers.ValidationError({f"actionConfig.{key}": [f"Must be {what}."]})
        if not isinstance(action_config.get("secret", ""), str):
            raise serializers.ValidationError({"actionConfig.secret": ["Must be a string."]})
        conditions = attrs.get("lead_conditions", getattr(self.instance, "lead_conditions", {}))
        if not isinstance(conditions, dict):
            raise serializers.ValidationError({"leadConditions": ["Must be an object."]})
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
        _conditions(conditions.get("traits", []), "leadConditions.traits")
        return attrs


@extend_schema_field({"type": "object", "additionalProperties": {}})
class ObjectField(serializers.JSONField):
    """A JSON object (documented as one; `JSONField` alone is documented as any value)."""


@extend_schema_serializer(component_name="AutomationExecution")
class AutomationExecutionSerializer(serializers.ModelSerializer):
    leadId = serializers.IntegerField(source="lead_id")
    trigger = ObjectField(help_text="What fired the rule, e.g. the stage entered or the event received.")
    responseCode = serializers.IntegerField(source="response_code", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)

    class Meta:
        model = AutomationExecution
        fields = ["id", "leadId", "trigger", "status", "attempts", "responseCode", "error", "createdAt", "finishedAt"]
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
