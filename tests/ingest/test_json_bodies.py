"""JSON that PostgreSQL's jsonb refuses (NaN, Infinity, 1e400) and hostile nesting: a 400 naming the
field, never a 500, and a batch keeps its valid items. Every ingest shape and our own API's bodies."""

import base64
import json

import pytest
from django.test import Client

from ingest.models import Event
from ingest.schema import MAX_CONTEXT_DEPTH
from tests.ingest.factories import LeadFactory

pytestmark = pytest.mark.django_db

NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"]
HOLE = "__hole__"


def raw_json(body, token: str) -> str:
    """`body` as JSON text with the literal `token` where the string HOLE was."""
    return json.dumps(body).replace(f'"{HOLE}"', token)


def nested(levels: int) -> dict:
    """An object nesting `levels` levels deep (a flat object is 1)."""
    value: dict = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def deep_text(levels: int) -> str:
    """A JSON object `levels` deep, built as text (json.dumps would recurse)."""
    return '{"a":' * (levels - 1) + '{"leaf":1}' + "}" * (levels - 1)


def basic(key):
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def send(path, text, *, key, shape):
    headers = basic(key) if shape == "segment" else {"HTTP_X_API_KEY": key}
    return Client().post(path, text, content_type="application/json", **headers)


# (path, shape, body with `properties` = the argument) for every single-event ingest shape
SINGLE = {
    "sdk": ("/api/ingest/event", "sdk", lambda key, p: {"apiKey": key, "event": "page_view", "anonymousId": "a1",
                                                         "properties": p}),
    "server": ("/api/events", "server", lambda key, p: {"eventType": "page_view", "leadId": "a1", "properties": p}),
    "segment": ("/v1/track", "segment", lambda key, p: {"event": "Viewed", "anonymousId": "a1", "properties": p}),
}  # fmt: skip


def body_with(shape: str, key: str, properties) -> tuple[str, str, dict]:
    path, kind, build = SINGLE[shape]
    return path, kind, build(key, properties)


@pytest.mark.parametrize("token", NON_FINITE)
@pytest.mark.parametrize("shape", SINGLE)
def test_a_non_finite_number_in_one_event_is_400_naming_the_field(tenant, shape, token):
    path, kind, body = body_with(shape, tenant.write_key, {"plan": "pro", "price": {"amount": HOLE}})

    response = send(path, raw_json(body, token), key=tenant.write_key, shape=kind)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["fields"] == {"properties.price.amount": [error["fields"]["properties.price.amount"][0]]}
    assert "finite" in error["message"]
    assert not Event.objects.exists()


@pytest.mark.parametrize("token", NON_FINITE)
def test_server_batch_refuses_the_item_with_a_non_finite_number_and_stores_the_others(tenant, token):
    events = [
        {"eventType": "page_view", "leadId": "a", "eventId": "ok-1"},
        {"eventType": "page_view", "leadId": "a", "eventId": "bad", "properties": {"n": [1, HOLE]}},
        {"eventType": "signup", "leadId": "b", "eventId": "ok-2", "properties": {"n": 1e300}},
    ]

    response = send("/api/events/batch", raw_json({"events": events}, token), key=tenant.write_key, shape="server")

    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (2, 0)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, "properties.n[1]")]
    assert set(Event.objects.values_list("event_id", flat=True)) == {"ok-1", "ok-2"}


@pytest.mark.parametrize("token", NON_FINITE)
@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"type": "track", "event": "Bought", "properties": {"revenue": HOLE}}, "properties.revenue"),
        ({"type": "identify", "traits": {"score": HOLE}}, "traits.score"),
        ({"type": "page", "name": "Home", "context": {"screen": {"density": HOLE}}}, "context.screen.density"),
        ({"type": "group", "groupId": "g1", "traits": {"employees": HOLE}}, "traits.employees"),
    ],
)
def test_segment_batch_refuses_the_message_with_a_non_finite_number_and_stores_the_others(
    tenant, token, message, field
):
    batch = [
        {"type": "track", "event": "Signed Up", "anonymousId": "a", "messageId": "ok-1"},
        {**message, "anonymousId": "a", "messageId": "bad"},
        {"type": "identify", "userId": "u1", "anonymousId": "b", "messageId": "ok-2", "traits": {"plan": "pro"}},
    ]

    response = send("/v1/batch", raw_json({"batch": batch}, token), key=tenant.write_key, shape="segment")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["accepted"] == 2
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, field)]
    assert set(Event.objects.values_list("event_id", flat=True)) == {"ok-1", "ok-2"}


@pytest.mark.parametrize("token", NON_FINITE)
def test_segment_call_with_a_non_finite_number_in_its_context_is_400_naming_it(tenant, token):
    body = {"userId": "u1", "event": "Viewed", "context": {"location": {"latitude": HOLE}}}
    response = send("/v1/track", raw_json(body, token), key=tenant.write_key, shape="segment")
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["context.location.latitude"]


def test_a_non_finite_number_where_nothing_is_stored_is_harmless_or_a_400_naming_it(tenant):
    # a field we do not keep does not matter; one we read is refused by its own rule
    ignored = raw_json({"eventType": "page_view", "leadId": "a", "extra": HOLE}, "NaN")
    assert send("/api/events", ignored, key=tenant.write_key, shape="server").status_code == 202
    for field in ("timestamp", "eventId", "leadId"):
        text = raw_json({"eventType": "page_view", "leadId": "a", field: HOLE}, "Infinity")
        response = send("/api/events", text, key=tenant.write_key, shape="server")
        assert response.status_code == 400 and list(response.json()["error"]["fields"]) == [field]


# --- nesting ------------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [6, 800, 5000])
@pytest.mark.parametrize("shape", SINGLE)
def test_properties_nested_too_deeply_are_400_naming_properties(tenant, shape, levels):
    path, kind, body = body_with(shape, tenant.write_key, HOLE)

    response = send(path, raw_json(body, deep_text(levels)), key=tenant.write_key, shape=kind)

    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["fields"]) == ["properties"]
    assert "Nested deeper than" in response.json()["error"]["message"]
    assert not Event.objects.exists()


@pytest.mark.parametrize("shape", SINGLE)
def test_properties_five_levels_deep_are_stored(tenant, shape):
    path, kind, body = body_with(shape, tenant.write_key, nested(5))
    response = send(path, json.dumps(body), key=tenant.write_key, shape=kind)
    assert response.status_code in (200, 202), response.content
    assert Event.objects.get().properties == nested(5)


@pytest.mark.parametrize(
    ("levels", "stored"), [(MAX_CONTEXT_DEPTH, True), (MAX_CONTEXT_DEPTH + 1, False), (800, False)]
)
def test_segment_context_nests_at_most_its_stated_limit(tenant, levels, stored):
    body = raw_json({"userId": "u1", "event": "Viewed", "context": HOLE}, deep_text(levels))

    response = send("/v1/track", body, key=tenant.write_key, shape="segment")

    if stored:
        assert response.status_code == 200
        assert Event.objects.get().context == json.loads(deep_text(levels))
    else:
        assert response.status_code == 400
        assert list(response.json()["error"]["fields"]) == ["context"]
        assert not Event.objects.exists()


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"type": "identify", "userId": "u1", "traits": HOLE}, "traits"),
        ({"type": "identify", "userId": "u1", "context": {"traits": HOLE}}, "context.traits"),
        ({"type": "group", "userId": "u1", "groupId": "g", "traits": HOLE}, "traits"),
        ({"type": "page", "userId": "u1", "context": {"page": {"url": HOLE}}}, "context.page"),
    ],
)
@pytest.mark.parametrize("levels", [6, 800])
def test_traits_nested_too_deeply_are_400_naming_them(tenant, message, field, levels):
    response = send("/v1/batch", raw_json({"batch": [message]}, deep_text(levels)), key=tenant.write_key,
                    shape="segment")  # fmt: skip
    assert response.status_code == 400, response.content
    # past the body's own limit the whole body is refused, naming the item's field
    expected = f"batch[0].{field.split('.')[0]}" if levels == 800 else f"batch[0].{field}"
    assert list(response.json()["error"]["fields"]) == [expected]
    assert not Event.objects.exists()


def test_a_batch_item_nested_too_deeply_is_refused_and_the_others_stored(tenant):
    events = [
        {"eventType": "page_view", "leadId": "a", "eventId": "ok-1"},
        {"eventType": "page_view", "leadId": "a", "eventId": "deep", "properties": HOLE},
        {"eventType": "page_view", "leadId": "b", "eventId": "ok-2", "properties": nested(5)},
    ]

    response = send("/api/events/batch", raw_json({"events": events}, deep_text(20)), key=tenant.write_key,
                    shape="server")  # fmt: skip

    assert response.status_code == 202
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [(1, "properties")]
    assert set(Event.objects.values_list("event_id", flat=True)) == {"ok-1", "ok-2"}


@pytest.mark.parametrize("shape", ["server", "segment"])
def test_a_batch_nested_past_the_body_limit_is_400_naming_the_item_and_field(tenant, shape):
    if shape == "server":
        path, items, field = "/api/events/batch", "events", "properties"
        body = {"events": [{"eventType": "page_view", "leadId": "a"}, {"eventType": "x", "leadId": "a", field: HOLE}]}
    else:
        path, items, field = "/v1/batch", "batch", "context"
        body = {"batch": [{"type": "track", "event": "x", "userId": "u"}, {"type": "track", "event": "x",
                                                                           "userId": "u", field: HOLE}]}  # fmt: skip

    response = send(path, raw_json(body, deep_text(800)), key=tenant.write_key, shape=shape)

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [f"{items}[1].{field}"]
    assert not Event.objects.exists()


def test_brackets_inside_strings_do_not_count_as_nesting(tenant):
    body = {"eventType": "page_view", "leadId": "a", "properties": {"q": "[[[[{{{{" * 200 + '\\"]]'}}
    response = send("/api/events", json.dumps(body), key=tenant.write_key, shape="server")
    assert response.status_code == 202
    assert Event.objects.get().properties == body["properties"]


# --- our own API's JSON bodies (DRF) -------------------------------------------------------


@pytest.mark.parametrize("token", NON_FINITE)
def test_api_bodies_refuse_non_finite_numbers_naming_the_field(tenant, token):
    rule = {"name": "Big", "eventType": "purchase", "points": 5,
            "conditions": [{"path": "properties.amount", "op": "gt", "value": HOLE}]}  # fmt: skip
    created = tenant.client.post("/api/rules", raw_json(rule, token), content_type="application/json")
    assert created.status_code == 400, created.content
    assert list(created.json()["error"]["fields"]) == ["conditions[0].value"]

    lead = LeadFactory(project=tenant.project, anonymous_id="l1")
    patched = tenant.client.patch(f"/api/leads/{lead.id}", raw_json({"traits": {"arr": HOLE}}, token),
                                  content_type="application/json")  # fmt: skip
    assert patched.status_code == 400, patched.content
    assert list(patched.json()["error"]["fields"]) == ["traits.arr"]
    lead.refresh_from_db()
    assert lead.traits == {}

    points = tenant.client.post("/api/rules", raw_json({**rule, "conditions": [], "points": HOLE}, token),
                                content_type="application/json")  # fmt: skip
    assert points.status_code == 400 and list(points.json()["error"]["fields"]) == ["points"]


@pytest.mark.parametrize("levels", [800, 50_000])
def test_api_bodies_nested_too_deeply_are_400_naming_the_field(tenant, levels):
    lead = LeadFactory(project=tenant.project, anonymous_id="l1")

    patched = tenant.client.patch(f"/api/leads/{lead.id}", raw_json({"traits": HOLE}, deep_text(levels)),
                                  content_type="application/json")  # fmt: skip
    rule = {"name": "Deep", "eventType": "x", "points": 1, "conditions": [{"path": "properties.a", "op": "eq",
                                                                           "value": HOLE}]}  # fmt: skip
    created = tenant.client.post("/api/rules", raw_json(rule, deep_text(levels)), content_type="application/json")

    assert patched.status_code == 400 and list(patched.json()["error"]["fields"]) == ["traits"]
    assert created.status_code == 400 and list(created.json()["error"]["fields"]) == ["conditions[0].value"]
