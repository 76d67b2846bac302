"""JSON documents in pages: event properties, traits and condition values shown as JSON, never as Python reprs."""

import json
from typing import Any

from django import template

register = template.Library()


def _dumps(value: Any, **options: Any) -> str:
    # default=str: a stored document is JSON already; anything else (a date in a trait) shows as its text
    return json.dumps(value, ensure_ascii=False, default=str, **options)


@register.filter
def json_pretty(value: Any) -> str:
    """The value as indented JSON (autoescaped by the template like any text)."""
    return _dumps(value, indent=2)


@register.filter
def json_compact(value: Any) -> str:
    """The value as one line of JSON: `{"url": "/pricing"}`, `["a", "b"]`, `"text"`."""
    return _dumps(value, separators=(", ", ": "))


@register.filter
def json_text(value: Any) -> str:
    """A string as itself, anything else as one line of JSON (a trait's value in a table cell)."""
    return value if isinstance(value, str) else json_compact(value)
