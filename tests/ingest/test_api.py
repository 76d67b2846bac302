import contextlib
import json
import socket
import threading
import time
from datetime import datetime, timedelta

import pytest
import redis
from django.test import Client
from django.utils import timezone

from accounts.models import Project
from ingest.models import Event, Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest

pytestmark = pytest.mark.django_db


@pytest.fixture
def http():
    return Client()


def post(http, path, body, *, key=None, content_type="application/json"):
    headers = {"HTTP_X_API_KEY": key} if key else {}
    raw = body if isinstance(body, bytes | str) else json.dumps(body)
    return http.post(path, raw, content_type=content_type, **headers)


def test_sdk_shape_is_queued_then_reported_duplicate(tenant, http):
    body = {
        "apiKey": tenant.write_key,
        "event": "page_view",
        "anonymousId": "anon-1",
        "eventId": "e-1",
        "properties": {"url": "/pricing"},
        "sessionId": "s-1",
        "timestamp": "2026-11-01T10:00:00Z",
    }

    first = post(http, "/api/ingest/event", body)
    again = post(http, "/api/ingest/event", body)

    assert first.status_code == 202 and first.json() == {"status": "queued", "eventId": "e-1"}
    assert again.status_code == 200 and again.json() == {"status": "duplicate", "eventId": "e-1"}
    event = Event.objects.get(project=tenant.project, event_id="e-1")
    assert (event.name, event.session_id, event.properties) == ("page_view", "s-1", {"url": "/pricing"})
    assert event.timestamp.isoformat() == "2026-11-01T10:00:00+00:00"
    assert event.received_at > event.timestamp  # receipt time is kept apart
    assert event.lead.anonymous_id == "anon-1" and event.processed_at is None


def test_server_shape_assigns_a_uuid_and_defaults_the_timestamp(tenant, http):
    response = post(http, "/api/events", {"eventType": "signup", "leadId": "crm-7"}, key=tenant.write_key)

    assert response.status_code == 202
    event_id = response.json()["eventId"]
    assert response.json()["message"]
    event = Event.objects.get(event_id=event_id)
    assert len(event_id) == 36 and event.lead.anonymous_id == "crm-7"
    assert abs((event.timestamp - event.received_at).total_seconds()) < 1


def test_text_plain_bodies_parse_like_json(tenant, http):
    body = {"apiKey": tenant.write_key, "event": "page_view", "anonymousId": "beacon"}
    response = post(http, "/api/ingest/event", json.dumps(body), content_type="text/plain;charset=UTF-8")
    assert response.status_code == 202
    assert Event.objects.filter(anonymous_id="beacon").count() == 1


def test_batch_stores_valid_items_and_reports_the_rest(tenant, http):
    events = [
        {"eventType": "page_view", "leadId": "a", "eventId": "b-1"},
        {"eventType": "bad/name", "leadId": "a"},
        {"eventType": "signup", "leadId": "b", "eventId": "b-2"},
        {"eventType": "signup", "leadId": "b", "eventId": "b-2"},
        {"eventType": "page_view"},
        "not an object",
    ]

    response = post(http, "/api/events/batch", {"events": events}, key=tenant.write_key)

    assert response.status_code == 202
    assert response.json() == {
        "count": 6,
        "accepted": 2,
        "duplicates": 1,
        "errors": [
            {"index": 1, "field": "eventType", "message": response.json()["errors"][0]["message"]},
            {"index": 4, "field": "leadId", "message": "This field is required."},
            {"index": 5, "field": "body", "message": "Each event must be a JSON object."},
        ],
    }
    assert set(Event.objects.values_list("event_id", flat=True)) == {"b-1", "b-2"}
    assert Lead.objects.filter(project=tenant.project).count() == 2


def test_batch_accepts_a_bare_array_and_counts_duplicates_of_earlier_requests(tenant, http):
    post(http, "/api/events/batch", [{"eventType": "x", "leadId": "a", "eventId": "1"}], key=tenant.write_key)
    response = post(
        http,
        "/api/events/batch",
        [{"eventType": "x", "leadId": "a", "eventId": "1"}, {"eventType": "x", "leadId": "a", "eventId": "2"}],
        key=tenant.write_key,
    )
    assert response.json()["accepted"] == 1 and response.json()["duplicates"] == 1


def test_batch_of_500_is_accepted(tenant, http):
    events = [{"eventType": "page_view", "leadId": f"l{i % 50}", "eventId": f"id-{i}"} for i in range(500)]
    response = post(http, "/api/events/batch", {"events": events}, key=tenant.write_key)
    assert response.status_code == 202 and response.json()["accepted"] == 500
    assert Lead.objects.filter(project=tenant.project).count() == 50


def test_same_anonymous_id_in_two_projects_makes_two_leads(tenant, other_tenant, http):
    for t in (tenant, other_tenant):
        post(http, "/api/events", {"eventType": "page_view", "leadId": "same", "eventId": "same"}, key=t.write_key)
    assert Lead.objects.filter(anonymous_id="same").count() == 2
    assert Event.objects.filter(event_id="same").count() == 2  # dedupe is per project


def test_inactive_project_is_403(tenant, http):
    Project.objects.filter(pk=tenant.project.pk).update(is_active=False)
    response = post(http, "/api/events", {"eventType": "x", "leadId": "a"}, key=tenant.write_key)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "project_inactive"


def deep(levels):
    value = 1
    for _ in range(levels):
        value = {"k": value}
    return value


BAD_REQUESTS = [
    # (path, body, key?, status, field)
    ("/api/events", {"eventType": "x", "leadId": "a"}, None, 401, "apiKey"),
    ("/api/events", {"eventType": "x", "leadId": "a"}, "lp_pub_wrong", 401, "apiKey"),
    ("/api/ingest/event", {"event": "x", "anonymousId": "a"}, None, 401, "apiKey"),
    ("/api/ingest/event", {"apiKey": "nope", "event": "x", "anonymousId": "a"}, None, 401, "apiKey"),
    ("/api/events/batch", [{"eventType": "x", "leadId": "a"}], "lp_pub_wrong", 401, "apiKey"),
    ("/api/events", b"{not json", "KEY", 400, "body"),
    ("/api/ingest/event", b"[1, 2", None, 400, "body"),
    ("/api/events", b"", "KEY", 400, "body"),
    ("/api/events", {"eventType": 5, "leadId": "a"}, "KEY", 400, "eventType"),
    ("/api/events", {"eventType": "x" * 129, "leadId": "a"}, "KEY", 400, "eventType"),
    ("/api/events", {"eventType": "drop table;", "leadId": "a"}, "KEY", 400, "eventType"),
    ("/api/events", {"eventType": "x", "leadId": {"a": 1}}, "KEY", 400, "leadId"),
    ("/api/events", {"eventType": "x", "leadId": "a", "properties": "str"}, "KEY", 400, "properties"),
    ("/api/events", {"eventType": "x", "leadId": "a", "properties": deep(6)}, "KEY", 400, "properties"),
    ("/api/events", {"eventType": "x", "leadId": "a", "timestamp": "nope"}, "KEY", 400, "timestamp"),
    ("/api/events", {"eventType": "x", "leadId": "a", "properties": {"b": "x" * 33_000}}, "KEY", 413, "body"),
    ("/api/events/batch", {"events": [{"eventType": "x", "leadId": "a"}] * 501}, "KEY", 413, "events"),
    ("/api/events/batch", {"events": []}, "KEY", 400, "events"),
    (
        "/api/events/batch",
        {"events": [{"eventType": "x", "leadId": "a", "properties": {"b": "x" * 20_000}}] * 30},
        "KEY",
        413,
        "body",
    ),
    ("/api/events/batch", {"events": [{"eventType": "bad/"}]}, "KEY", 400, "events[0].eventType"),
    # these were 500s: a too-long integer, a too-deep nesting, an unpaired surrogate
    ("/api/events", b'{"eventType": "x", "leadId": ' + b"1" * 5000 + b"}", "KEY", 400, "body"),
    ("/api/events", b"[" * 100_000 + b"]" * 100_000, "KEY", 400, "body"),
    ("/api/events", b'{"eventType": "x", "leadId": "a\\ud800"}', "KEY", 400, "body"),
    ("/api/ingest/event", b'{"apiKey": "\\ud800", "event": "x", "anonymousId": "a"}', None, 400, "body"),
    ("/api/events", {"eventType": "x\n", "leadId": "a"}, "KEY", 400, "eventType"),
]


@pytest.mark.parametrize(("path", "body", "key", "status", "field"), BAD_REQUESTS)
def test_bad_input_gets_a_4xx_naming_the_field_and_writes_nothing(tenant, http, path, body, key, status, field):
    if key == "KEY":
        key = tenant.write_key
    if isinstance(body, dict) and "apiKey" not in body and path == "/api/ingest/event" and status != 401:
        body = {**body, "apiKey": tenant.write_key}
    counts = (Event.objects.count(), Lead.objects.count())

    response = post(http, path, body, key=key)

    assert response.status_code == status
    error = response.json()["error"]
    assert field in error["fields"], error
    assert error["code"] and error["message"]
    assert (Event.objects.count(), Lead.objects.count()) == counts


def test_request_path_runs_a_constant_number_of_queries(tenant, http, django_assert_num_queries):
    post(http, "/api/events", {"eventType": "x", "leadId": "warm"}, key=tenant.write_key)  # caches the key

    def batch(n, prefix):
        return {"events": [{"eventType": "page_view", "leadId": f"{prefix}{i}"} for i in range(n)]}

    # new leads: lookup, insert leads, count them in the project's lead tallies, re-lookup, insert events
    # (+ savepoint pair)
    with django_assert_num_queries(7):
        post(http, "/api/events", {"eventType": "x", "leadId": "new-1"}, key=tenant.write_key)
    with django_assert_num_queries(7):
        post(http, "/api/events/batch", batch(200, "n"), key=tenant.write_key)
    # known leads: lookup and insert only
    with django_assert_num_queries(4):
        post(http, "/api/events/batch", batch(200, "n"), key=tenant.write_key)


def test_scoring_is_enqueued_after_commit_once_per_lead(tenant, http, django_capture_on_commit_callbacks):
    from core.pipeline import lead_score_pending_pop

    with django_capture_on_commit_callbacks() as callbacks:
        post(
            http,
            "/api/events/batch",
            {"events": [{"eventType": "x", "leadId": "a"}] * 3 + [{"eventType": "x", "leadId": "b"}]},
            key=tenant.write_key,
        )
    # nothing enqueued before commit
    lead_ids = sorted(Lead.objects.values_list("id", flat=True))
    assert lead_score_pending_pop(count=10) == []
    assert len(callbacks) == 2  # enqueue + broadcast

    for callback in callbacks:
        callback()
    assert lead_score_pending_pop(count=10) == lead_ids  # each lead once


def test_scoring_request_is_one_round_trip_and_sends_one_wake_up_while_one_is_queued(settings, redis_round_trips):
    from core.pipeline import PENDING_KEY, WAKE_KEY, lead_score_request, lead_score_wake_claim

    broker = redis.Redis.from_url(settings.REDIS_URL)
    broker.delete(PENDING_KEY, WAKE_KEY, "celery")
    assert lead_score_request(lead_ids=[1]) == 1
    assert broker.llen("celery") == 1  # a wake-up is queued
    redis_round_trips[0] = 0

    assert lead_score_request(lead_ids=[3, 2, 2]) == 2

    assert redis_round_trips[0] == 1  # the ids and the wake-up marker in one pipeline; no second task
    assert broker.llen("celery") == 1
    assert sorted(int(lead_id) for lead_id in broker.smembers(PENDING_KEY)) == [1, 2, 3]
    # once a worker has claimed the wake-up, the next request sends another
    lead_score_wake_claim()
    lead_score_request(lead_ids=[4])
    assert broker.llen("celery") == 2
    broker.delete(PENDING_KEY, WAKE_KEY, "celery")


def test_ingest_keeps_accepting_events_when_redis_is_down(tenant, http, settings, django_capture_on_commit_callbacks):
    # the write key is looked up once while Redis is up...
    assert post(http, "/api/events", {"eventType": "x", "leadId": "a"}, key=tenant.write_key).status_code == 202
    # ...then the cache (Redis) goes away
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = post(http, "/api/events", {"eventType": "signup", "leadId": "b", "eventId": "during-outage"},
                        key=tenant.write_key)  # fmt: skip

    assert response.status_code == 202
    stored = Event.objects.get(event_id="during-outage")
    assert stored.processed_at is None  # stored durably; the reconciler will enqueue it


@pytest.fixture
def hung_redis():
    """A TCP server that accepts connections and never answers: a Redis behind a network partition."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join(timeout=5)
    for connection in accepted:
        connection.close()
    server.close()


def test_ingest_answers_in_bounded_time_when_redis_hangs(tenant, http, settings, django_capture_on_commit_callbacks,
                                                          hung_redis):  # fmt: skip
    assert post(http, "/api/events", {"eventType": "x", "leadId": "a"}, key=tenant.write_key).status_code == 202
    # the production cache settings (their timeouts), pointed at a Redis that never answers
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": hung_redis}}
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        response = post(http, "/api/events", {"eventType": "signup", "leadId": "b", "eventId": "during-hang"},
                        key=tenant.write_key)  # fmt: skip

    assert response.status_code == 202
    assert time.monotonic() - started < 15
    assert Event.objects.get(event_id="during-hang").processed_at is None  # stored; the reconciler enqueues it


@pytest.mark.parametrize("page_size", ["abc", "0", "-1", "1.5", "00"])
def test_event_list_refuses_a_page_size_that_is_not_a_positive_integer(tenant, page_size):
    response = tenant.client.get("/api/events", {"pageSize": page_size})

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"pageSize": ["Must be a positive integer."]}


@pytest.mark.parametrize(("page_size", "expected"), [("", 50), ("007", 7), ("9" * 5000, 200)])
def test_event_list_page_size_defaults_and_caps(tenant, page_size, expected):
    now = timezone.now()
    events = [CanonicalEvent(event_id=f"e-{i}", name="x", anonymous_id="a", timestamp=now) for i in range(210)]
    events_ingest(project_id=tenant.project.id, events=events)

    response = tenant.client.get("/api/events", {"pageSize": page_size})

    assert response.status_code == 200 and len(response.json()["results"]) == expected


def test_offsets_postgresql_cannot_store_are_taken_in_utc(tenant, http):
    # ISO-8601 allows +20:00; PostgreSQL refuses offsets past ±15:59 (this was a 500)
    now = timezone.now().replace(microsecond=0)
    far_east = now.astimezone(timezone.get_fixed_timezone(20 * 60)).isoformat()
    response = post(http, "/api/events", {"eventType": "x", "leadId": "a", "eventId": "tz", "timestamp": far_east},
                    key=tenant.write_key)  # fmt: skip

    assert response.status_code == 202, response.content
    assert Event.objects.get(event_id="tz").timestamp == now
    since = (now - timezone.timedelta(minutes=1)).astimezone(timezone.get_fixed_timezone(20 * 60 + 33)).isoformat()
    listed = tenant.client.get("/api/events", {"since": since, "until": "9999-12-31T23:59:59-05:00"})
    assert listed.status_code == 400 and listed.json()["error"]["fields"] == {"until": ["Out of range."]}
    listed = tenant.client.get("/api/events", {"since": since})
    assert listed.status_code == 200 and [e["eventId"] for e in listed.json()["results"]] == ["tz"]


def test_a_burst_of_ingests_is_broadcast_as_its_first_message_then_one_merged_message(monkeypatch):
    import ingest.services
    from ingest.services import IngestedBroadcasts

    sent = []
    monkeypatch.setattr(
        ingest.services, "project_broadcast", lambda **kwargs: sent.append((kwargs["project_id"], kwargs["payload"]))
    )
    monkeypatch.setattr(IngestedBroadcasts, "WINDOW_SECONDS", 0.3)
    monkeypatch.setattr(IngestedBroadcasts, "MAX_EVENTS", 3)
    broadcasts = IngestedBroadcasts()

    def events(*ids):
        return [{"eventId": i} for i in ids]

    # a burst: the first request of each project is sent at once, the rest wait for the window's end
    broadcasts.send(project_id=1, events=events("a"), count=1)
    broadcasts.send(project_id=2, events=events("x"), count=1)
    broadcasts.send(project_id=1, events=events("b", "c"), count=2)
    broadcasts.send(project_id=1, events=events("d"), count=60)
    assert sent == [(1, {"count": 1, "events": events("a")}), (2, {"count": 1, "events": events("x")})]

    time.sleep(0.45)
    # one message for the rest of the burst: counts added, the newest events in arrival order
    assert sent[2:] == [(1, {"count": 62, "events": events("b", "c", "d")})]

    time.sleep(0.45)  # a quiet window closes it: the next request is sent at once again
    broadcasts.send(project_id=1, events=events("e"), count=1)
    assert sent[3:] == [(1, {"count": 1, "events": events("e")})]


def test_ingest_answers_carry_no_content_security_policy(tenant, http):
    # JSON for scripts and SDKs, never a page: the policy (built per response) protects nothing there
    response = post(http, "/api/events", {"eventType": "x", "leadId": "a"}, key=tenant.write_key)

    assert response.status_code == 202
    assert "Content-Security-Policy" not in response
    assert "Content-Security-Policy" in http.get("/login/")


def test_ingest_broadcasts_through_the_merging_window(tenant, http, monkeypatch, django_capture_on_commit_callbacks):
    import ingest.services

    sent = []
    monkeypatch.setattr(ingest.services, "project_broadcast", lambda **kwargs: sent.append(kwargs["payload"]))
    monkeypatch.setattr(ingest.services, "ingested_broadcasts", ingest.services.IngestedBroadcasts())

    with django_capture_on_commit_callbacks(execute=True):
        for n in range(3):
            post(http, "/api/events", {"eventType": "x", "leadId": "a", "eventId": f"burst-{n}"}, key=tenant.write_key)

    assert [payload["count"] for payload in sent] == [1]  # the first at once; the other two wait for the window
    time.sleep(ingest.services.IngestedBroadcasts.WINDOW_SECONDS + 0.3)
    assert [payload["count"] for payload in sent] == [1, 2]
    assert [e["eventId"] for e in sent[1]["events"]] == ["burst-1", "burst-2"]


def test_leads_requested_without_a_wake_up_still_get_one_a_moment_later(settings):
    from core.pipeline import PENDING_KEY, WAKE_KEY, WAKE_LATER_KEY, WAKE_LATER_SECONDS, lead_score_request

    broker = redis.Redis.from_url(settings.REDIS_URL)
    broker.delete(PENDING_KEY, WAKE_KEY, WAKE_LATER_KEY, "celery")
    before = timezone.now()

    # put back in the set by a drain that found them locked: no task at once...
    lead_score_request(lead_ids=[7], wake=False)
    lead_score_request(lead_ids=[8], wake=False)

    # ...but one (only one) is due a moment later, in case no drain is running to take them
    assert broker.llen("celery") == 1
    message = json.loads(broker.lindex("celery", 0))
    assert message["headers"]["task"] == "scoring.leads_score_task"
    eta = datetime.fromisoformat(message["headers"]["eta"])
    assert before + timedelta(seconds=WAKE_LATER_SECONDS * 0.5) < eta < timezone.now() + timedelta(seconds=2)
    assert sorted(int(i) for i in broker.smembers(PENDING_KEY)) == [7, 8]
    broker.delete(PENDING_KEY, WAKE_KEY, WAKE_LATER_KEY, "celery")
