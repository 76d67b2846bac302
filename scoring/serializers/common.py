"""What the scoring API's shapes share: OpenAPI patches, enum fields, the condition schema."""

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework import serializers

from core.fields import (
    NO_NUL,
)

from .. import engine

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
