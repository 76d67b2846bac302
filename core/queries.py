"""Query-string parameters of the API, parsed strictly: a malformed value is a 400 naming the parameter.

An empty value, like every empty query parameter, is the same as leaving it out.
"""

from datetime import UTC, datetime

from django.utils.dateparse import parse_datetime
from rest_framework.request import Request

from core.errors import ApplicationError


def query_int(request: Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    """An integer query parameter within [minimum, maximum]; 400 naming it otherwise."""
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApplicationError("Must be an integer.", field=name) from None
    if not minimum <= value <= maximum:
        raise ApplicationError(f"Must be between {minimum} and {maximum}.", field=name)
    return value


def query_id(request: Request, name: str) -> int | None:
    """A row id query parameter (ASCII digits that fit a bigint), or None when absent; 400 naming it otherwise."""
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdecimal() and len(raw) < 19):
        raise ApplicationError("Must be an integer.", field=name)
    return int(raw)


def query_datetime(request: Request, name: str) -> datetime | None:
    """An ISO-8601 query parameter (UTC when it names no offset); 400 naming it otherwise."""
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return None
    try:
        value = parse_datetime(raw)
    except ValueError:
        value = None
    if value is None:
        raise ApplicationError("Must be an ISO-8601 date-time, e.g. 2026-01-31T12:00:00Z.", field=name)
    try:
        # in UTC: PostgreSQL refuses offsets past ±15:59, which ISO-8601 (and Python) allow
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError:
        raise ApplicationError("Out of range.", field=name) from None
