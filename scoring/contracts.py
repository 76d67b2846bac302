"""What other apps may rely on from scoring, besides its services and selectors.

The vocabulary of rules and conditions (automations match lead changes and events with the
same conditions rules use), re-exported from the pure engine so that no other app depends on
the engine's internals; and the policy, stage and fit functions companies roll member scores up with.
"""

from typing import Any

from core.fields import NO_NUL, contains_nul, unknown_fields

from .engine import (
    CONDITION_FIELDS,
    OPERATORS,
    PATH_PART_LIMIT,
    STAGES,
    Condition,
    ConditionError,
    EventFact,
    Policy,
    Rule,
    compile_condition,
    fit_score,
    stage_for,
)

# A list of `{path, op, value}` conditions on the wire (rules' conditions, companies' fit rules): its JSON
# Schema for OpenAPI documents, and its validation, one place for every API that takes conditions.
MAX_CONDITIONS = 20
NUMERIC_STRING = r"^\s*[+-]?(\d(_?\d)*(\.(\d(_?\d)*)?)?|\.\d(_?\d)*)([eE][+-]?\d(_?\d)*)?\s*$"
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
        "op": {"type": "string", "enum": list(OPERATORS)},
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


def conditions_clean(value: Any) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Conditions as sent, validated: the clean `{path, op, value}`s, and errors keyed `conditions[0].op` …"""
    if not isinstance(value, list) or len(value) > MAX_CONDITIONS:
        return [], {"conditions": [f"Must be a list of at most {MAX_CONDITIONS} conditions."]}
    errors: dict[str, list[str]] = {}
    cleaned = []
    for index, raw in enumerate(value):
        if contains_nul(raw):
            errors[f"conditions[{index}]"] = ["Must not contain NUL characters."]
            continue
        unknown = unknown_fields(raw, CONDITION_FIELDS, prefix=f"conditions[{index}].")
        if unknown:
            errors.update(unknown)
            continue
        try:
            condition = compile_condition(raw)
        except ConditionError as exc:
            errors[f"conditions[{index}]{'.' + exc.field if exc.field else ''}"] = [exc.message]
            continue
        cleaned.append({"path": condition.path, "op": condition.op, "value": condition.value})
    return cleaned, errors


__all__ = [
    "CONDITION_FIELDS",
    "CONDITION_SCHEMA",
    "CONDITION_VALUE",
    "MAX_CONDITIONS",
    "NUMERIC_STRING",
    "OPERATORS",
    "PATH_PART_LIMIT",
    "STAGES",
    "Condition",
    "ConditionError",
    "EventFact",
    "Policy",
    "Rule",
    "compile_condition",
    "conditions_clean",
    "fit_score",
    "stage_for",
]
