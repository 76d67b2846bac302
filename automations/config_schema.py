"""The declared settings of a trigger or an action: typed fields that validate, document and describe themselves.

One declaration serves the API's validation (errors keyed by the field's path, e.g. `triggerConfig.threshold`),
the OpenAPI document (JSON Schema) and the pages (labels, help, choices, bounds).
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email

from core.fields import NO_NUL, unknown_fields
from scoring import contracts as scoring_engine

Errors = dict[str, list[str]]

TEXT: dict[str, Any] = {"type": "string", "pattern": NO_NUL}
URL_SCHEMA: dict[str, Any] = {
    "type": "string",
    "format": "uri",
    "pattern": r"^[hH][tT][tT][pP][sS]?://[^\x00]+$",
    "description": "http(s); refused (400 `unsafe_url`) unless its host resolves to public addresses.",
}
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
CONDITIONS_LIMIT = 20
CONDITIONS_SCHEMA: dict[str, Any] = {"type": "array", "maxItems": CONDITIONS_LIMIT, "items": CONDITION_SCHEMA}


def conditions_errors(value: Any, path: str) -> Errors:
    """What is wrong with a list of `{path, op, value}` conditions (as scoring rules take them), by path."""
    if not isinstance(value, list) or len(value) > CONDITIONS_LIMIT:
        return {path: [f"Must be a list of at most {CONDITIONS_LIMIT} conditions."]}
    for index, raw in enumerate(value):
        unknown = unknown_fields(raw, scoring_engine.CONDITION_FIELDS, prefix=f"{path}[{index}].")
        if unknown:
            return unknown
        try:
            scoring_engine.compile_condition(raw)
        except scoring_engine.ConditionError as exc:
            return {f"{path}[{index}].{exc.field}": [exc.message]}
    return {}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, kw_only=True)
class ConfigField:
    """One setting. A required one must be present and valid; an optional one, when present, valid.

    `expected` completes "Must be …" in the error (derived from the type when left out); `invalid`
    replaces the whole message. `secret` ones are write-only: never shown after the response that set them.
    """

    kind: ClassVar[str]  # what a generated form renders: "choice", "integer", "text", "url", "emails", "conditions"

    name: str
    label: str
    help_text: str = ""
    required: bool = True
    default: Any = None  # what an optional field means when left out
    expected: str = ""
    invalid: str = ""
    secret: bool = False

    def valid(self, value: Any) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        """What a valid value is, in a few words ("an integer >= 1")."""
        raise NotImplementedError

    def value_schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def what(self) -> str:
        """What a valid value is, as its error message says it."""
        return self.expected or self.describe()

    def errors(self, value: Any, path: str) -> Errors:
        if self.valid(value):
            return {}
        return {path: [self.invalid or f"Must be {self.what()}."]}

    def json_schema(self) -> dict[str, Any]:
        schema = self.value_schema()
        if self.help_text:
            described = schema.get("description")
            schema["description"] = f"{self.help_text} {described}" if described else self.help_text
        if not self.required and self.default is not None:
            schema["default"] = self.default
        return schema


@dataclass(frozen=True, kw_only=True)
class Choice(ConfigField):
    kind = "choice"
    choices: tuple[str, ...]

    def valid(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.choices

    def describe(self) -> str:
        return f"one of {', '.join(self.choices)}"

    def value_schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.choices)}


@dataclass(frozen=True, kw_only=True)
class Integer(ConfigField):
    kind = "integer"
    minimum: int | None = None
    maximum: int | None = None

    def valid(self, value: Any) -> bool:
        return (
            _is_int(value)
            and (self.minimum is None or value >= self.minimum)
            and (self.maximum is None or value <= self.maximum)
        )

    def describe(self) -> str:
        if self.minimum is not None and self.maximum is not None:
            return f"an integer from {self.minimum} to {self.maximum}"
        if self.minimum is not None:
            return f"an integer >= {self.minimum}"
        if self.maximum is not None:
            return f"an integer <= {self.maximum}"
        return "an integer"

    def value_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer"}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        return schema


@dataclass(frozen=True, kw_only=True)
class Text(ConfigField):
    """A string (no NUL: checked for the whole config); `min_length` 0 allows the empty string."""

    kind = "text"
    min_length: int = 1
    max_length: int | None = None

    def valid(self, value: Any) -> bool:
        return (
            isinstance(value, str)
            and len(value) >= self.min_length
            and (self.max_length is None or len(value) <= self.max_length)
        )

    def describe(self) -> str:
        if self.max_length is not None:
            return f"a text of {self.min_length} to {self.max_length} characters"
        return "a non-empty text" if self.min_length else "a string"

    def value_schema(self) -> dict[str, Any]:
        schema = dict(TEXT)
        if self.min_length:
            schema["minLength"] = self.min_length
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        return schema


@dataclass(frozen=True, kw_only=True)
class Url(ConfigField):
    """An http(s) URL; the service refuses one whose host is not public when the config is saved."""

    kind = "url"

    def valid(self, value: Any) -> bool:
        return isinstance(value, str) and bool(value)

    def describe(self) -> str:
        return "a URL"

    def value_schema(self) -> dict[str, Any]:
        return dict(URL_SCHEMA)


EMAIL_MAX_LENGTH = 254


def email_address_valid(value: Any) -> bool:
    """One plain address (no display name, list or line break: nothing a mail header could be split at)."""
    if not isinstance(value, str) or len(value) > EMAIL_MAX_LENGTH:
        return False
    try:
        validate_email(value)
    except DjangoValidationError:
        return False
    return True


@dataclass(frozen=True, kw_only=True)
class Emails(ConfigField):
    """A list of plain addresses; the service checks, when the config is saved, that each may be mailed."""

    kind = "emails"
    max_items: int

    def valid(self, value: Any) -> bool:
        return (
            isinstance(value, list)
            and 0 < len(value) <= self.max_items
            and all(email_address_valid(address) for address in value)
        )

    def describe(self) -> str:
        return f"a list of 1 to {self.max_items} email addresses"

    def value_schema(self) -> dict[str, Any]:
        return {
            "type": "array",
            "minItems": 1,
            "maxItems": self.max_items,
            "items": {"type": "string", "format": "email", "maxLength": EMAIL_MAX_LENGTH},
        }


@dataclass(frozen=True, kw_only=True)
class Conditions(ConfigField):
    """`{path, op, value}` conditions, as scoring rules take them; errors name the item (`…conditions[0].op`)."""

    kind = "conditions"
    required: bool = False
    default: Any = field(default_factory=list)

    def valid(self, value: Any) -> bool:
        return not conditions_errors(value, "")

    def errors(self, value: Any, path: str) -> Errors:
        return conditions_errors(value, path)

    def describe(self) -> str:
        return f"a list of at most {CONDITIONS_LIMIT} conditions"

    def value_schema(self) -> dict[str, Any]:
        return dict(CONDITIONS_SCHEMA)

    def json_schema(self) -> dict[str, Any]:
        schema = self.value_schema()  # an empty list is the default: nothing to document
        if self.help_text:
            schema["description"] = self.help_text
        return schema


@dataclass(frozen=True)
class ConfigSchema:
    """The fields of one trigger's or action's config, in the order they are checked and shown."""

    fields: tuple[ConfigField, ...] = ()

    def __iter__(self) -> Iterator[ConfigField]:
        return iter(self.fields)

    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def secret_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.secret)

    def unknown(self, config: dict[str, Any], *, prefix: str) -> Errors:
        """Every key the schema does not declare, each with its error."""
        return unknown_fields(config, self.names(), prefix=prefix)

    def errors(self, config: dict[str, Any], *, prefix: str) -> Errors:
        """The first invalid field's errors (`{prefix}{name}`); a required field left out is invalid."""
        for config_field in self.fields:
            if config_field.name not in config and not config_field.required:
                continue
            found = config_field.errors(config.get(config_field.name), f"{prefix}{config_field.name}")
            if found:
                return found
        return {}

    def json_schema(self) -> dict[str, Any]:
        """The config as a JSON Schema object that refuses undeclared keys."""
        schema: dict[str, Any] = {"type": "object"}
        if self.fields:
            schema["properties"] = {f.name: f.json_schema() for f in self.fields}
        required = [f.name for f in self.fields if f.required]
        if required:
            schema["required"] = required
        schema["additionalProperties"] = False
        return schema

    def summary(self) -> str:
        """`{stage}`, `{eventType, conditions}` or `nothing`: which keys the config takes."""
        return f"`{{{', '.join(self.names())}}}`" if self.fields else "nothing"
