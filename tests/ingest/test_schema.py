from datetime import UTC, datetime

import pytest

from ingest import schema

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
LIMIT = 32 * 1024


def sdk(**fields):
    return {"apiKey": "k", "event": "page_view", "anonymousId": "anon-1", **fields}


def test_sdk_event_is_normalised_with_defaults():
    event = schema.event_from_sdk(sdk(properties={"url": "/"}), received_at=NOW, max_event_bytes=LIMIT)
    assert event.name == "page_view" and event.anonymous_id == "anon-1"
    assert event.timestamp == NOW
    assert len(event.event_id) == 36  # a server-assigned UUID
    assert event.properties == {"url": "/"}


def test_server_event_maps_lead_id_to_the_anonymous_id():
    event = schema.event_from_server(
        {"eventType": "signup", "leadId": "crm-42", "eventId": "x1", "timestamp": "2026-05-01T10:00:00+02:00"},
        received_at=NOW,
        max_event_bytes=LIMIT,
    )
    assert (event.name, event.anonymous_id, event.event_id) == ("signup", "crm-42", "x1")
    assert event.timestamp == datetime(2026, 5, 1, 8, tzinfo=UTC)


def test_identify_by_name_is_an_identify_call():
    assert schema.event_from_sdk(sdk(event="identify"), received_at=NOW, max_event_bytes=LIMIT).type == "identify"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"event": ""}, "event"),
        ({"event": "bad/name"}, "event"),
        ({"event": "x" * 129}, "event"),
        ({"event": 12}, "event"),
        ({"anonymousId": None}, "anonymousId"),
        ({"anonymousId": ["a"]}, "anonymousId"),
        ({"properties": [1, 2]}, "properties"),
        ({"properties": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}, "properties"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"timestamp": "2099-01-01T00:00:00Z"}, "timestamp"),
        ({"timestamp": "1990-01-01T00:00:00Z"}, "timestamp"),
        ({"eventId": "x" * 129}, "eventId"),
        ({"sessionId": {"a": 1}}, "sessionId"),
    ],
)
def test_bad_sdk_fields_are_named(fields, field):
    with pytest.raises(schema.SchemaError) as excinfo:
        schema.event_from_sdk(sdk(**fields), received_at=NOW, max_event_bytes=LIMIT)
    assert excinfo.value.field == field
    assert excinfo.value.status_code == 400


def test_properties_five_levels_deep_are_accepted():
    five = {"a": {"b": {"c": {"d": {"e": 1}}}}}
    assert schema.event_from_sdk(sdk(properties=five), received_at=NOW, max_event_bytes=LIMIT).properties == five


def test_oversized_event_is_413():
    with pytest.raises(schema.SchemaError) as excinfo:
        schema.event_from_sdk(sdk(properties={"blob": "x" * LIMIT}), received_at=NOW, max_event_bytes=LIMIT)
    assert excinfo.value.status_code == 413


@pytest.mark.parametrize(
    "value",
    [1_780_000_000, 1_780_000_000_000],
)
def test_epoch_seconds_and_milliseconds_are_accepted(value):
    parsed = schema.parse_timestamp(value, "timestamp", received_at=NOW)
    assert parsed == datetime.fromtimestamp(1_780_000_000, tz=UTC)


def test_parse_json_rejects_garbage_and_empty_bodies():
    for raw in (b"", b"{nope", b"\xff\xfe"):
        with pytest.raises(schema.SchemaError) as excinfo:
            schema.parse_json(raw, max_bytes=100)
        assert excinfo.value.field == "body"
    with pytest.raises(schema.SchemaError) as excinfo:
        schema.parse_json(b"[" + b"1," * 100 + b"1]", max_bytes=100)
    assert excinfo.value.status_code == 413


def test_batch_items_accepts_an_envelope_or_a_bare_list():
    assert schema.batch_items({"events": [1]}, max_events=2) == [1]
    assert schema.batch_items([1, 2], max_events=2) == [1, 2]
    for body in ({"events": []}, {"events": "x"}, {}, "x"):
        with pytest.raises(schema.SchemaError):
            schema.batch_items(body, max_events=2)
    with pytest.raises(schema.SchemaError) as excinfo:
        schema.batch_items([1, 2, 3], max_events=2)
    assert excinfo.value.status_code == 413


@pytest.mark.parametrize(
    "raw",
    [
        b'{"leadId": ' + b"1" * 5000 + b"}",  # past Python's integer-to-text limit
        b"[" * 100_000 + b"]" * 100_000,  # past the decoder's recursion limit
        b'{"leadId": "a\\ud800"}',  # an unpaired surrogate: decodes, but is not UTF-8
        b'{"properties": {"k\\udc00": 1}}',
    ],
)
def test_parse_json_refuses_what_json_loads_cannot_or_postgres_would_not_take(raw):
    with pytest.raises(schema.SchemaError) as excinfo:
        schema.parse_json(raw, max_bytes=len(raw))
    assert (excinfo.value.field, excinfo.value.status_code) == ("body", 400)


def test_parse_json_keeps_escaped_surrogate_pairs():
    assert schema.parse_json(b'{"a": "\\ud83d\\ude00"}', max_bytes=100) == {"a": "\N{GRINNING FACE}"}


def test_event_names_may_not_end_in_a_newline():
    with pytest.raises(schema.SchemaError) as excinfo:
        schema.event_from_sdk(sdk(event="page_view\n"), received_at=NOW, max_event_bytes=LIMIT)
    assert excinfo.value.field == "event"
