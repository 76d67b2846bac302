import base64
import gzip
import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from ingest.models import Event, Lead

pytestmark = pytest.mark.django_db


@pytest.fixture
def http():
    return Client()


def basic(key):
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def post(http, path, body, *, headers=None, encoding=None, content_type="application/json"):
    raw = json.dumps(body).encode()
    extra = dict(headers or {})
    if encoding == "gzip":
        raw = gzip.compress(raw)
        extra["HTTP_CONTENT_ENCODING"] = "gzip"
    return http.post(path, raw, content_type=content_type, **extra)


@pytest.mark.parametrize("prefix", ["/v1", "/api/v1"])
def test_track_with_basic_auth_answers_success_and_stores_the_event(tenant, http, prefix):
    body = {
        "userId": "u1",
        "anonymousId": "a1",
        "event": "signup",
        "messageId": "m-1",
        "properties": {"plan": "pro"},
        "context": {"ip": "1.2.3.4"},
        "integrations": {"All": True},
    }

    response = post(http, f"{prefix}/track", body, headers=basic(tenant.write_key))

    assert response.status_code == 200 and response.json()["success"] is True
    event = Event.objects.get(project=tenant.project, event_id="m-1")
    assert (event.type, event.name, event.user_id, event.anonymous_id) == ("track", "signup", "u1", "a1")
    assert event.properties == {"plan": "pro"} and event.context == {"ip": "1.2.3.4"}


def test_write_key_in_the_body_gzip_and_text_plain_are_accepted(tenant, http):
    body = {"writeKey": tenant.write_key, "anonymousId": "a1", "event": "download"}
    response = post(http, "/v1/track", body, encoding="gzip", content_type="text/plain")
    assert response.status_code == 200
    assert Event.objects.filter(name="download").count() == 1


def test_message_id_dedupes(tenant, http):
    body = {"anonymousId": "a1", "event": "download", "messageId": "same"}
    post(http, "/v1/track", body, headers=basic(tenant.write_key))
    again = post(http, "/v1/track", body, headers=basic(tenant.write_key))
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert Event.objects.filter(event_id="same").count() == 1


def test_clock_skew_is_corrected_with_sent_at(tenant, http):
    # the client's clock is an hour fast: it stamped the event 10 s before it sent it
    fast = timezone.now() + timedelta(hours=1)
    body = {
        "anonymousId": "a1",
        "event": "download",
        "messageId": "skew",
        "timestamp": (fast - timedelta(seconds=10)).isoformat(),
        "sentAt": fast.isoformat(),
    }

    post(http, "/v1/track", body, headers=basic(tenant.write_key))

    event = Event.objects.get(event_id="skew")
    assert abs((event.received_at - event.timestamp).total_seconds() - 10) < 0.01


def test_page_screen_identify_group_alias_mapping(tenant, http):
    key = basic(tenant.write_key)
    post(
        http,
        "/v1/page",
        {"anonymousId": "a1", "name": "Pricing", "messageId": "p", "properties": {"url": "https://x.test/pricing"}},
        headers=key,
    )
    post(http, "/v1/screen", {"anonymousId": "a1", "name": "Home", "messageId": "s"}, headers=key)
    post(
        http,
        "/v1/identify",
        {"anonymousId": "a1", "userId": "u1", "messageId": "i", "traits": {"email": "Ada@Example.com", "plan": "pro"}},
        headers=key,
    )
    post(
        http,
        "/v1/group",
        {"anonymousId": "a1", "groupId": "g1", "messageId": "g", "traits": {"name": "Acme", "employees": 300}},
        headers=key,
    )
    post(http, "/v1/alias", {"previousId": "a1", "userId": "u1", "messageId": "al"}, headers=key)

    events = {e.event_id: e for e in Event.objects.all()}
    assert (events["p"].name, events["p"].properties) == (
        "page_view",
        {"url": "https://x.test/pricing", "name": "Pricing"},
    )
    assert events["s"].name == "screen_view"
    assert (events["i"].type, events["i"].properties["email"]) == ("identify", "Ada@Example.com")
    assert events["g"].properties == {"name": "Acme", "employees": 300, "groupId": "g1"}
    assert (events["al"].type, events["al"].anonymous_id, events["al"].user_id) == ("alias", "a1", "u1")
    assert Lead.objects.filter(project=tenant.project).count() == 1


def test_batch_like_analytics_clients_send_it(tenant, http):
    sent_at = timezone.now()
    batch = {
        "batch": [
            {
                "type": "track",
                "event": "signup",
                "anonymousId": "a1",
                "messageId": "b1",
                "timestamp": sent_at.isoformat(),
            },
            {"type": "page", "anonymousId": "a1", "messageId": "b2"},
            {"type": "bogus", "anonymousId": "a1"},
            {"type": "track", "anonymousId": "a1"},
        ],
        "sentAt": sent_at.isoformat(),
    }
    response = post(http, "/v1/batch", batch, headers=basic(tenant.write_key), encoding="gzip")

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["accepted"] == 2
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(2, "type"), (3, "event")]


@pytest.mark.parametrize(
    ("path", "body", "auth", "status", "field"),
    [
        ("/v1/track", {"anonymousId": "a", "event": "x"}, None, 401, "writeKey"),
        ("/v1/track", {"anonymousId": "a", "event": "x", "writeKey": "lp_pub_nope"}, None, 401, "writeKey"),
        ("/v1/track", {"event": "x"}, "key", 400, "anonymousId"),
        ("/v1/track", {"anonymousId": "a"}, "key", 400, "event"),
        ("/v1/alias", {"userId": "u"}, "key", 400, "previousId"),
        ("/v1/group", {"anonymousId": "a"}, "key", 400, "groupId"),
        ("/v1/identify", {"anonymousId": "a", "traits": "x"}, "key", 400, "traits"),
        (
            "/v1/track",
            {"anonymousId": "a", "event": "x", "sentAt": "nope", "timestamp": "2026-01-01T00:00:00Z"},
            "key",
            400,
            "sentAt",
        ),
        ("/v1/track", {"anonymousId": "a", "event": "x", "properties": {"b": "x" * 33_000}}, "key", 413, "body"),
        ("/v1/batch", {"batch": []}, "key", 400, "batch"),
        ("/v1/batch", {"batch": "not a list"}, "key", 400, "batch"),
        ("/v1/track", {"anonymousId": "a", "event": "x", "sentAt": "nope"}, "key", 400, "sentAt"),
        ("/v1/batch", {"batch": [{"type": "track", "anonymousId": "a"}]}, "key", 400, "batch[0].event"),
        (
            "/v1/batch",
            {"batch": [{"type": "track", "anonymousId": "a", "event": "x", "properties": {"b": "x" * 30_000}}] * 18},
            "key",
            413,
            "body",
        ),
    ],
)
def test_bad_segment_input_is_a_4xx_naming_the_field_and_writes_nothing(tenant, http, path, body, auth, status, field):
    response = post(http, path, body, headers=basic(tenant.write_key) if auth else None)
    assert response.status_code == status, response.content
    assert field in response.json()["error"]["fields"]
    assert Event.objects.count() == 0 and Lead.objects.count() == 0


def test_a_gzip_bomb_is_refused_without_inflating_it(tenant, http):
    bomb = gzip.compress(b'{"batch": [' + b" " * 5_000_000 + b"]}")
    response = http.post(
        "/v1/batch", bomb, content_type="application/json", HTTP_CONTENT_ENCODING="gzip", **basic(tenant.write_key)
    )
    assert response.status_code == 413


def test_ingest_answers_cors_preflights_from_any_origin(http):
    for path in ("/v1/batch", "/api/ingest/event", "/api/events"):
        response = http.options(
            path,
            HTTP_ORIGIN="https://customer.example",
            HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
            HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
        )
        assert response.status_code == 200, path
        assert response["Access-Control-Allow-Origin"] == "*"
    # the JWT API is not opened to other origins
    response = http.options(
        "/api/leads", HTTP_ORIGIN="https://customer.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET"
    )
    assert "Access-Control-Allow-Origin" not in response


def test_sdk_script_is_served_as_javascript(http):
    response = http.get("/sdk/ls.js", HTTP_ORIGIN="https://customer.example")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/javascript")
    assert response["Access-Control-Allow-Origin"] == "*"


def test_events_with_only_a_user_id_land_on_that_users_lead(tenant, http):
    key = basic(tenant.write_key)
    post(http, "/v1/track", {"userId": "u9", "event": "signup", "messageId": "1"}, headers=key)
    post(http, "/v1/track", {"userId": "u9", "event": "download", "messageId": "2"}, headers=key)
    lead = Lead.objects.get(project=tenant.project)
    assert (lead.anonymous_id, lead.user_id) == ("user:u9", "u9")
    assert lead.events.count() == 2


@pytest.mark.parametrize(("path", "kind"), [("/v1/t", "track"), ("/v1/p", "page"), ("/v1/i", "identify")])
def test_analytics_js_one_letter_paths(tenant, http, path, kind):
    body = {"writeKey": tenant.write_key, "anonymousId": "a1", "event": "signup", "messageId": f"m-{kind}"}
    assert post(http, path, body, content_type="text/plain").status_code == 200
    assert Event.objects.get(event_id=f"m-{kind}").type == kind


def test_analytics_js_batching_path(tenant, http):
    body = {"writeKey": tenant.write_key, "batch": [{"type": "track", "event": "x", "anonymousId": "a"}]}
    assert post(http, "/v1/b", body, content_type="text/plain").json()["accepted"] == 1


def test_segment_event_names_are_free_text_like_segments(tenant, http):
    for name in ("Signed Up!", "Viewed /pricing", "Inscription réussie"):
        response = post(http, "/v1/track", {"anonymousId": "a", "event": name}, headers=basic(tenant.write_key))
        assert response.status_code == 200, name
    bad = post(http, "/v1/track", {"anonymousId": "a", "event": "tab\there"}, headers=basic(tenant.write_key))
    assert bad.status_code == 400


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"properties": {"q": "a\u0000b"}}, "properties.q"),
        ({"properties": {"k\u0000": 1}}, "properties"),
        ({"context": {"sessionId": "s\u0000"}}, "context.sessionId"),
        ({"timestamp": "2026-11-25T20:00:00Z", "sentAt": "2000-01-02T00:00:00Z"}, "sentAt"),
    ],
)
def test_nul_characters_and_absurd_skew_are_400_and_the_rest_of_the_batch_is_kept(tenant, http, message, field):
    good = {"type": "track", "event": "download", "anonymousId": "a", "messageId": "good"}
    bad = {"type": "track", "event": "download", "anonymousId": "a", **message}
    response = post(http, "/v1/batch", {"batch": [good, bad]}, headers=basic(tenant.write_key))
    assert response.status_code == 200 and response.json()["accepted"] == 1
    assert response.json()["errors"][0]["field"] == field
    single = post(http, "/v1/track", bad, headers=basic(tenant.write_key))
    assert single.status_code == 400 and field in single.json()["error"]["fields"]


def test_alias_for_a_known_user_records_the_previous_anonymous_id(tenant, http):
    post(http, "/v1/track", {"userId": "u1", "event": "signup", "messageId": "k"}, headers=basic(tenant.write_key))
    post(http, "/v1/alias", {"previousId": "anon-9", "userId": "u1", "messageId": "al"},
         headers=basic(tenant.write_key))  # fmt: skip
    alias = Event.objects.get(event_id="al")
    assert alias.lead.anonymous_id == "anon-9"  # its own lead, for the worker to merge into u1's
