"""Validate and normalise every accepted ingest shape into one canonical event.

Pure functions: no ORM, no settings beyond the limits passed in.
"""

import json
import re
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils.dateparse import parse_datetime

from core.errors import ApplicationError
from core.jsonbody import BodyTooDeep, json_loads, json_value_problem, path_name

EVENT_NAME_RE = re.compile(r"^[A-Za-z0-9_ .:\-]{1,128}$")
ESCAPED_SURROGATE_RE = re.compile(rb"\\u[dD][89a-fA-F]")
MAX_PROPERTY_DEPTH = 5  # properties and traits
MAX_CONTEXT_DEPTH = 16  # Segment's `context` (its own fields nest 2-3 levels)
MAX_IDENTIFIER_LENGTH = 255
MAX_EVENT_ID_LENGTH = 128
EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
MAX_CLOCK_AHEAD = timedelta(days=1)


class SchemaError(ApplicationError):
    """A rejected field, named as the client sent it (413 when it is about size)."""

    def __init__(self, field: str, message: str, *, too_large: bool = False):
        super().__init__(
            message,
            field=field,
            code="payload_too_large" if too_large else "invalid",
            status_code=413 if too_large else 400,
        )


@dataclass(frozen=True)
class CanonicalEvent:
    event_id: str
    name: str
    anonymous_id: str
    timestamp: datetime
    type: str = "track"
    user_id: str = ""
    session_id: str = ""
    properties: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)


def gunzip(raw: bytes, *, max_bytes: int) -> bytes:
    """Inflate a gzip body, refusing to inflate past `max_bytes` (no decompression bombs)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        body = inflater.decompress(raw, max_bytes + 1)
    except zlib.error:
        raise SchemaError("body", "Content-Encoding is gzip but the body is not valid gzip.") from None
    if len(body) > max_bytes or inflater.unconsumed_tail:
        raise SchemaError("body", f"The request body is larger than {max_bytes // 1024} KB.", too_large=True)
    return body


def parse_json(raw: bytes, *, max_bytes: int) -> Any:
    """Decode a request body as JSON whatever its content type (sendBeacon posts text/plain)."""
    if len(raw) > max_bytes:
        raise SchemaError("body", f"The request body is larger than {max_bytes // 1024} KB.", too_large=True)
    if not raw.strip():
        raise SchemaError("body", "The request body is empty.")
    try:
        value = json_loads(raw)
    except BodyTooDeep as exc:
        raise SchemaError(exc.path, str(exc)) from None
    except ValueError as exc:  # also UnicodeDecodeError, and integers too long to convert
        raise SchemaError("body", f"Malformed JSON: {exc}.") from None
    if ESCAPED_SURROGATE_RE.search(raw):
        try:
            encoded_size(value)
        except UnicodeEncodeError:
            # an unpaired `\ud800` escape decodes, but cannot be stored (or hashed) as UTF-8
            raise SchemaError("body", "Malformed JSON: unpaired UTF-16 surrogate.") from None
    return value


def encoded_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _checked(value: Any, key: str, *, depth_limit: int) -> dict[str, Any]:
    """`value` if PostgreSQL can store it and it nests at most `depth_limit` levels; else 400 naming the spot."""
    problem = json_value_problem(value, max_depth=depth_limit)
    if problem:
        path, message = problem
        raise SchemaError(path_name(key, path), message)
    return value


def _object(item: dict[str, Any], key: str, *, depth_limit: int = MAX_PROPERTY_DEPTH) -> dict[str, Any]:
    value = item.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SchemaError(key, "Must be a JSON object.")
    return _checked(value, key, depth_limit=depth_limit)


def _string(item: dict[str, Any], key: str, *, required: bool, max_length: int = MAX_IDENTIFIER_LENGTH) -> str:
    value = item.get(key)
    if value is None or value == "":
        if required:
            raise SchemaError(key, "This field is required.")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise SchemaError(key, "Must be a string.")
    value = str(value)
    if len(value) > max_length:
        raise SchemaError(key, f"Must be at most {max_length} characters.")
    if any(ord(ch) < 32 for ch in value):
        raise SchemaError(key, "Must not contain control characters.")
    return value


def _event_name(item: dict[str, Any], key: str, *, free_text: bool = False) -> str:
    """Our own shapes keep names to a safe alphabet; Segment names are any short printable text."""
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise SchemaError(key, "This field is required and must be a string.")
    if free_text:
        if len(value) > 128 or not value.isprintable():
            raise SchemaError(key, "Must be 1-128 printable characters.")
    elif not EVENT_NAME_RE.fullmatch(value):  # `$` alone would let a trailing newline through
        raise SchemaError(key, "Must be 1-128 characters of letters, digits, space, '_', '.', ':' or '-'.")
    return value


def parse_timestamp(value: Any, key: str, *, received_at: datetime) -> datetime:
    """Parse an ISO-8601 string or epoch seconds/milliseconds; naive times are UTC."""
    if value is None or value == "":
        return received_at
    if isinstance(value, bool):
        raise SchemaError(key, "Must be an ISO-8601 date-time.")
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        try:
            parsed: datetime | None = datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise SchemaError(key, "Out of range.") from None
    elif isinstance(value, str):
        try:
            parsed = parse_datetime(value)
        except ValueError:
            parsed = None
        if parsed is None:
            raise SchemaError(key, "Must be an ISO-8601 date-time.")
        try:
            # in UTC: PostgreSQL refuses offsets past ±15:59, which ISO-8601 (and Python) allow
            parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except OverflowError:
            raise SchemaError(key, "Out of range.") from None
    else:
        raise SchemaError(key, "Must be an ISO-8601 date-time.")
    assert parsed is not None
    if parsed < EARLIEST_TIMESTAMP:
        raise SchemaError(key, "Must not be before 2000-01-01.")
    if parsed > received_at + MAX_CLOCK_AHEAD:
        raise SchemaError(key, "Must not be more than a day in the future.")
    return parsed


def _event_id(item: dict[str, Any], key: str) -> str:
    return _string(item, key, required=False, max_length=MAX_EVENT_ID_LENGTH) or str(uuid.uuid4())


def _check_item(item: Any, *, max_event_bytes: int) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise SchemaError("body", "Each event must be a JSON object.")
    if encoded_size(item) > max_event_bytes:
        raise SchemaError("body", f"An event must be at most {max_event_bytes // 1024} KB.", too_large=True)
    return item


def event_from_sdk(item: Any, *, received_at: datetime, max_event_bytes: int) -> CanonicalEvent:
    """Shape 1 (`POST /api/ingest/event`): `{apiKey, event, anonymousId, properties, ...}`."""
    item = _check_item(item, max_event_bytes=max_event_bytes)
    name = _event_name(item, "event")
    return CanonicalEvent(
        event_id=_event_id(item, "eventId"),
        name=name,
        type="identify" if name == "identify" else "track",
        anonymous_id=_string(item, "anonymousId", required=True),
        session_id=_string(item, "sessionId", required=False),
        properties=_object(item, "properties"),
        timestamp=parse_timestamp(item.get("timestamp"), "timestamp", received_at=received_at),
    )


def event_from_server(item: Any, *, received_at: datetime, max_event_bytes: int) -> CanonicalEvent:
    """Shape 2 (`POST /api/events` and its batch): `{eventType, leadId, properties, ...}`."""
    item = _check_item(item, max_event_bytes=max_event_bytes)
    return CanonicalEvent(
        event_id=_event_id(item, "eventId"),
        name=_event_name(item, "eventType"),
        anonymous_id=_string(item, "leadId", required=True),
        properties=_object(item, "properties"),
        timestamp=parse_timestamp(item.get("timestamp"), "timestamp", received_at=received_at),
    )


def batch_items(body: Any, *, max_events: int, field: str = "events") -> list[Any]:
    """The list of items of a batch body: `{<field>: [...]}` or a bare array; errors name `field`."""
    items = body.get(field) if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise SchemaError(field, "Must be a list of events.")
    if not items:
        raise SchemaError(field, "Must contain at least one event.")
    if len(items) > max_events:
        raise SchemaError(field, f"Must contain at most {max_events} events.", too_large=True)
    return items


SEGMENT_TYPES = ("track", "page", "screen", "identify", "group", "alias")


def _nested_object(container: dict[str, Any], key: str) -> dict[str, Any]:
    value = container.get(key)
    return value if isinstance(value, dict) else {}


def _segment_user_id(message: dict[str, Any]) -> str:
    return _string(message, "userId", required=False)


def event_from_segment(
    message: Any,
    *,
    call_type: str | None,
    received_at: datetime,
    batch_sent_at: Any = None,
    max_event_bytes: int,
) -> CanonicalEvent:
    """A Segment spec message (`/v1/<type>` or an item of `/v1/batch`) as a canonical event.

    `page`/`screen` become `page_view`/`screen_view`; `identify` and `group` carry their
    traits as properties; `alias` attaches to the `previousId` it merges away. When
    `sentAt` is present the client's clock skew is removed:
    `timestamp := receivedAt - (sentAt - timestamp)`.
    """
    message = _check_item(message, max_event_bytes=max_event_bytes)
    kind = call_type or message.get("type")
    if kind not in SEGMENT_TYPES:
        raise SchemaError("type", f"Must be one of {', '.join(SEGMENT_TYPES)}.")
    user_id = _segment_user_id(message)
    context = _object(message, "context", depth_limit=MAX_CONTEXT_DEPTH)
    if encoded_size(context) > max_event_bytes:
        raise SchemaError("context", "Too large.", too_large=True)

    if kind == "alias":
        anonymous_id = _string(message, "previousId", required=True)
        if not user_id:
            raise SchemaError("userId", "This field is required.")
    else:
        anonymous_id = _string(message, "anonymousId", required=False)
        if not anonymous_id and not user_id:
            raise SchemaError("anonymousId", "Either anonymousId or userId is required.")

    properties = _object(message, "properties")
    if kind == "track":
        name = _event_name(message, "event", free_text=True)
    elif kind in ("page", "screen"):
        name = f"{kind}_view"
        page_name = _string(message, "name", required=False)
        category = _string(message, "category", required=False)
        page_context = _nested_object(context, "page") if kind == "page" else {}
        properties = {
            **{k: v for k, v in page_context.items() if k in ("url", "path", "referrer", "title")},
            **properties,
        }
        if page_name:
            properties["name"] = page_name
        if category:
            properties["category"] = category
        _checked(properties, "context.page", depth_limit=MAX_PROPERTY_DEPTH)  # its fields became properties
    else:
        name = kind
        properties = _object(message, "traits") or _checked(
            _nested_object(context, "traits"), "context.traits", depth_limit=MAX_PROPERTY_DEPTH
        )
        if kind == "group":
            group_id = _string(message, "groupId", required=True)
            properties = {**properties, "groupId": group_id}

    timestamp = parse_timestamp(message.get("timestamp"), "timestamp", received_at=received_at)
    sent_at_raw = message.get("sentAt", batch_sent_at)
    # a bad sentAt is refused even when there is no timestamp for it to correct
    sent_at = parse_timestamp(sent_at_raw, "sentAt", received_at=received_at) if sent_at_raw not in (None, "") else None
    if sent_at is not None and message.get("timestamp") not in (None, ""):
        timestamp = received_at - (sent_at - timestamp)
        if not EARLIEST_TIMESTAMP <= timestamp <= received_at + MAX_CLOCK_AHEAD:
            raise SchemaError("sentAt", "timestamp and sentAt put the event outside 2000-01-01 .. tomorrow.")
    session_id = context.get("sessionId") or properties.get("sessionId") or ""
    if isinstance(session_id, str) and any(ord(ch) < 32 for ch in session_id):
        raise SchemaError("context.sessionId", "Must not contain control characters.")
    return CanonicalEvent(
        event_id=_event_id(message, "messageId"),
        name=name,
        type=kind,
        anonymous_id=anonymous_id,
        user_id=user_id,
        session_id=str(session_id)[:MAX_IDENTIFIER_LENGTH] if isinstance(session_id, str | int) else "",
        properties=properties,
        context=context,
        timestamp=timestamp,
    )
