"""What the scoring API's shapes share: OpenAPI patches, enum fields, the condition schema."""

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework import serializers

# the condition schema is scoring's contract (companies' fit rules take conditions too): re-exported here
from ..contracts import CONDITION_SCHEMA as CONDITION_SCHEMA
from ..contracts import CONDITION_VALUE as CONDITION_VALUE
from ..contracts import MAX_CONDITIONS as MAX_CONDITIONS
from ..contracts import NUMERIC_STRING as NUMERIC_STRING

# What validation enforces beyond the fields' own constraints, for the OpenAPI document.
# an event name ingest accepts, or "*", once trimmed
EVENT_TYPE_PATTERN = r"^\s*(\*|[A-Za-z0-9_.:\-]([A-Za-z0-9_ .:\-]{0,126}[A-Za-z0-9_.:\-])?)\s*$"


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
