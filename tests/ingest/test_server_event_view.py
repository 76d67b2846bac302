"""`POST /api/events` is served by a plain Django view: its answers are those of the DRF view it stands in for
(`ServerEventIngestApi`, which the schema documents): statuses, bodies, error shapes, headers."""

import json

import pytest
from django.test import Client, RequestFactory
from django.urls import resolve

from accounts.services import project_update
from ingest.api import ServerEventIngestApi, server_event_view
from ingest.models import Event

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _frozen_windows(frozen_rate_windows):
    """Rate-limit windows do not end mid-test."""


def through_url(raw: bytes, headers: dict) -> tuple:
    return answer(Client().post("/api/events", raw, content_type="application/json", **headers))


def through_drf(raw: bytes, headers: dict) -> tuple:
    request = RequestFactory().post("/api/events", raw, content_type="application/json", **headers)
    request.resolver_match = resolve("/api/events")
    return answer(ServerEventIngestApi.as_view()(request).render())


def answer(response) -> tuple:
    body = json.loads(response.content)
    if "eventId" in body:
        body["eventId"] = "<id>"  # each view stored its own event
    return response.status_code, body, response.get("Retry-After"), response.get("Allow"), response["Content-Type"]


def both(tenant, body, *, key="KEY", suffix=True) -> tuple[tuple, tuple]:
    """The same request to the URL (the plain view) and to the DRF view; event ids apart unless `suffix` is off."""
    headers = {"HTTP_X_API_KEY": tenant.write_key if key == "KEY" else key} if key else {}

    def raw(tag: str) -> bytes:
        if isinstance(body, bytes):
            return body
        tagged = {**body, "eventId": f"{body['eventId']}-{tag}"} if suffix and "eventId" in body else body
        return json.dumps(tagged).encode()

    return through_url(raw("plain"), headers), through_drf(raw("drf"), headers)


def test_the_url_is_served_by_the_plain_view():
    assert resolve("/api/events").func is server_event_view
    assert server_event_view.cls is ServerEventIngestApi  # what the OpenAPI document is generated from


REQUESTS = [
    ({"eventType": "signup", "leadId": "a", "eventId": "e1"}, "KEY"),  # 202
    ({"eventType": "signup", "leadId": "a"}, None),  # 401 no key
    ({"eventType": "signup", "leadId": "a"}, "lp_pub_wrong"),  # 401
    (b"{not json", "KEY"),  # 400 body
    (b"", "KEY"),  # 400 empty
    ({"eventType": "drop table;", "leadId": "a"}, "KEY"),  # 400 field
    ({"eventType": "x", "leadId": {"a": 1}}, "KEY"),
    ({"eventType": "x", "leadId": "a", "timestamp": "nope"}, "KEY"),
    ({"eventType": "x", "leadId": "a", "properties": {"b": "x" * 33_000}}, "KEY"),  # 413
    (b'{"eventType": "x", "leadId": "a\\ud800"}', "KEY"),
    (b"[1, 2]", "KEY"),
]


@pytest.mark.parametrize(("body", "key"), REQUESTS)
def test_the_plain_view_answers_as_the_drf_view(tenant, body, key):
    plain, drf = both(tenant, body, key=key)
    assert plain == drf
    assert plain[0] in (202, 400, 401, 413)


def test_a_duplicate_is_answered_alike(tenant):
    body = {"eventType": "signup", "leadId": "a", "eventId": "dup"}
    both(tenant, body, suffix=False)  # the plain view stores it, the DRF view finds it stored
    plain, drf = both(tenant, body, suffix=False)
    assert plain == drf and plain[0] == 200 and plain[1]["status"] == "duplicate"
    assert Event.objects.filter(event_id="dup").count() == 1


def test_an_inactive_project_is_answered_alike(tenant):
    project_update(project=tenant.project, is_active=False)
    plain, drf = both(tenant, {"eventType": "x", "leadId": "a"})
    assert plain == drf and plain[0] == 403


@pytest.mark.parametrize("setting", ["LEADPULSE_RATE_INGEST_KEY", "LEADPULSE_RATE_INGEST_IP"])
def test_rate_limits_are_answered_alike(tenant, settings, setting):
    setattr(settings, setting, "4/m")
    for n in range(2):
        plain, drf = both(tenant, {"eventType": "x", "leadId": "a", "eventId": f"r{n}"})
        assert plain == drf and plain[0] == 202
    plain, drf = both(tenant, {"eventType": "x", "leadId": "a", "eventId": "over"})
    assert plain == drf
    assert plain[0] == 429 and int(plain[2]) >= 1 and plain[1]["error"]["code"] == "rate_limited"
