"""Request fields shared by the API: JSON types as the OpenAPI document states them.

DRF's fields coerce (0 for "0", "60" for 60, "yes" for true); the document promises JSON types,
and schemathesis holds the API to its document, so request serializers use these.
"""

import json
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from rest_framework import serializers

# What DRF's CharField refuses, as JSON Schema patterns: NUL characters, and all-blank (it trims).
NO_NUL = r"^[^\x00]*$"
NON_EMPTY_NO_NUL = r"^[^\x00]+$"
# Python's str.strip() whitespace, which DRF trims; ECMA's \s differs (it lacks \x1c-\x1f and \x85, adds \ufeff).
PY_WHITESPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK_NO_NUL = rf"^[^\x00]*[^\x00{PY_WHITESPACE}][^\x00]*$"  # trimmed, it is not blank


def contains_nul(value: Any) -> bool:
    """Whether a NUL occurs in any string or key of a JSON value (PostgreSQL's jsonb refuses them)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def json_value_schema(depth: int) -> dict[str, Any]:
    """JSON Schema of any JSON value without NUL characters in its strings, nesting at most `depth` levels."""
    kinds: list[dict[str, Any]] = [
        {"type": "string", "pattern": NO_NUL},
        {"type": "number"},
        {"type": "boolean"},
    ]
    if depth:
        inner = json_value_schema(depth - 1)
        kinds += [{"type": "object", "additionalProperties": inner}, {"type": "array", "items": inner}]
    return {"anyOf": kinds, "nullable": True}


# Traits (a lead's, a company's): free-form JSON objects, bounded so that one cannot weigh on every read.
TRAITS_MAX_BYTES = 32 * 1024
TRAITS_MAX_DEPTH = 5


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


def traits_clean(value: Any) -> dict[str, Any]:
    """Traits as given, or a validation error saying what is wrong: an object, nesting at most TRAITS_MAX_DEPTH
    levels, no NUL character (PostgreSQL's jsonb refuses them), at most TRAITS_MAX_BYTES as JSON."""
    if not isinstance(value, dict):
        raise serializers.ValidationError("Must be a JSON object.")
    depth, nul = json_shape(value)
    if depth > TRAITS_MAX_DEPTH:
        raise serializers.ValidationError(f"Must nest at most {TRAITS_MAX_DEPTH} levels deep.")
    if nul:
        raise serializers.ValidationError("Must not contain NUL characters.")
    try:
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    except UnicodeEncodeError:
        raise serializers.ValidationError("Must be valid Unicode.") from None
    if size > TRAITS_MAX_BYTES:
        raise serializers.ValidationError(f"Must be at most {TRAITS_MAX_BYTES} bytes as JSON.")
    return value


def traits_schema(description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": json_value_schema(TRAITS_MAX_DEPTH - 1),
        "description": f"{description}: a JSON object nesting at most {TRAITS_MAX_DEPTH} levels, at most "
        f"{TRAITS_MAX_BYTES} bytes as JSON, no NUL characters (keys included). Replaces the stored traits.",
    }


class StrictCharField(serializers.CharField):
    """A JSON string; `max_length` holds for the string as sent (DRF checks it after trimming)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid")
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class StrictEmailField(serializers.EmailField):
    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON number with no fraction (1.0 is an integer in JSON Schema); never a string or a boolean."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharFieldSchema(OpenApiSerializerFieldExtension):
    """A strict string's pattern: no NUL characters, and not all-blank unless blank is allowed."""

    target_class = StrictCharField

    def map_serializer_field(self, auto_schema: Any, direction: str) -> Any:
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        if direction == "request":
            # drf-spectacular adds the blank string as a `oneOf` branch of its own, so the pattern excludes it
            schema["pattern"] = NON_EMPTY_NO_NUL if self.target.allow_blank else NOT_BLANK_NO_NUL
        return schema


UNKNOWN_FIELD = "Unknown field."
READ_ONLY_FIELD = "This field cannot be changed."


def unknown_fields(data: Any, known: Any, *, prefix: str = "") -> dict[str, list[str]]:
    """The keys of a JSON object that are not among `known`, each with its error (`prefix` names nested ones)."""
    if not isinstance(data, dict):
        return {}
    return {f"{prefix}{key}": [UNKNOWN_FIELD] for key in data if key not in known}


class StrictSerializerMixin:
    """Refuse keys of the body that are not writable fields (400 naming each), as Stripe does.

    DRF silently drops unknown keys, so a client's typo or a field the API does not have
    (`within` on a rule) would be stored as something other than what the client meant.
    Read-only fields (`id`, `createdAt`, scores) are refused too, though a client may echo them
    back from a GET: changing them is not possible, and saying so beats pretending.
    Nested serializers and `many=True` children refuse theirs: DRF validates them through here too.
    """

    fields: Any

    def to_internal_value(self, data: Any) -> Any:
        errors: dict[str, list[str]] = {}
        if isinstance(data, dict):
            for key in data:
                field = self.fields.get(key)
                if field is None or isinstance(field, serializers.HiddenField):
                    errors[key] = [UNKNOWN_FIELD]
                elif field.read_only:
                    errors[key] = [READ_ONLY_FIELD]
        try:
            value = super().to_internal_value(data)  # type: ignore[misc]
        except serializers.ValidationError as exc:
            if errors and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**errors, **exc.detail}) from exc
            raise
        if errors:
            raise serializers.ValidationError(errors)
        return value


class StrictSerializer(StrictSerializerMixin, serializers.Serializer):
    """A request body: unknown keys are refused (see `StrictSerializerMixin`)."""


class StrictModelSerializer(StrictSerializerMixin, serializers.ModelSerializer):
    """A model's request body: unknown and read-only keys are refused (see `StrictSerializerMixin`)."""


class EmptySerializer(StrictSerializer):
    """The body of a write that takes no fields: nothing, or `{}`; any key is unknown."""
