"""A single event with a write key this process knows: one round trip to Redis before the answer (the IP
and key limits with the key's cache entry), one statement, one round trip after commit (the scoring
request). The process's copy of a key is used only while Redis holds the same entry, so revoking a key
or deactivating its project refuses it on the very next request (real commits: on_commit runs at once)."""

import json

import pytest
from django.db import connection
from django.test import Client

from accounts.models import ApiKey
from accounts.selectors import project_for_write_key
from accounts.services import project_update, write_key_rotate
from core.errors import NotAuthenticated
from core.pipeline import WAKE_KEY, _client
from ingest.models import Event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _wake_up_queued(frozen_rate_windows):
    """A scoring wake-up is pending, so no request sends a Celery task (a round trip of its own)."""
    _client().set(WAKE_KEY, 1, ex=60)
    yield
    _client().delete(WAKE_KEY)


def post(key, n, *, ip="127.0.0.1", path="/api/events"):
    if path == "/v1/track":
        body, headers = {"writeKey": key, "event": "Signed Up", "anonymousId": f"lead-{n % 2}"}, {}
    else:
        body, headers = {"eventType": "signup", "leadId": f"lead-{n % 2}", "eventId": f"e-{n}"}, {"HTTP_X_API_KEY": key}
    return Client(REMOTE_ADDR=ip).post(path, json.dumps(body), content_type="application/json", **headers)


def costs(key, n, redis_round_trips, **kwargs):
    """(status, Redis round trips, SQL statements) of one request."""
    statements = []
    redis_round_trips[0] = 0
    with connection.execute_wrapper(lambda execute, sql, *args: statements.append(sql) or execute(sql, *args)):
        response = post(key, n, **kwargs)
    return response.status_code, redis_round_trips[0], len(statements)


def test_a_single_event_of_a_known_key_and_lead_costs_two_redis_round_trips_and_a_statement(tenant, redis_round_trips):
    # the first requests of a process look the key up (database, then its cache entry) and create the leads
    first = costs(tenant.write_key, 0, redis_round_trips)
    assert first[0] == 202 and first[1] > 2 and first[2] > 1
    assert post(tenant.write_key, 1).status_code == 202

    # then: the admission script before, the scoring request after the commit; one statement between
    assert costs(tenant.write_key, 2, redis_round_trips) == (202, 2, 1)
    assert costs(tenant.write_key, 3, redis_round_trips) == (202, 2, 1)
    # a duplicate stores and requests nothing
    assert costs(tenant.write_key, 3, redis_round_trips) == (200, 1, 1)
    assert Event.objects.filter(project=tenant.project).count() == 4


def test_a_revoked_key_is_refused_at_once_by_a_process_that_knew_it(tenant, redis_round_trips):
    for n in range(3):
        post(tenant.write_key, n)
    assert costs(tenant.write_key, 3, redis_round_trips)[:2] == (202, 2)  # known: the one-round-trip path

    write_key_rotate(project=tenant.project)
    response = post(tenant.write_key, 4)

    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    # another process looking the old key up caches "no such key" in the entry: still refused here
    with pytest.raises(NotAuthenticated):
        project_for_write_key(raw_key=tenant.write_key)
    assert post(tenant.write_key, 5).status_code == 401
    new_key = ApiKey.objects.get(project=tenant.project, kind=ApiKey.Kind.WRITE, revoked_at__isnull=True).key
    assert post(new_key, 6).status_code == 202
    assert set(Event.objects.filter(project=tenant.project).values_list("event_id", flat=True)) == {
        "e-0", "e-1", "e-2", "e-3", "e-6",
    }  # fmt: skip


def test_deactivating_a_project_refuses_its_key_at_once_and_reactivating_restores_it(tenant, redis_round_trips):
    for n in range(3):
        post(tenant.write_key, n)
    assert costs(tenant.write_key, 3, redis_round_trips)[:2] == (202, 2)

    project_update(project=tenant.project, is_active=False)
    response = post(tenant.write_key, 4)

    assert response.status_code == 403 and response.json()["error"]["code"] == "project_inactive"
    project_update(project=tenant.project, is_active=True)
    assert post(tenant.write_key, 5).status_code == 202


def assert_rate_limited(response, scope_words):
    assert response.status_code == 429, response.content
    assert int(response["Retry-After"]) >= 1
    error = response.json()["error"]
    assert error["code"] == "rate_limited" and scope_words in error["message"] and error["fields"] == {}


def test_the_key_limit_refuses_on_the_one_round_trip_path(tenant, settings, redis_round_trips):
    settings.LEADPULSE_RATE_INGEST_KEY = "5/m"
    for n in range(3):
        assert post(tenant.write_key, n).status_code == 202
    assert costs(tenant.write_key, 3, redis_round_trips)[:2] == (202, 2)  # the 4th event, known key
    assert costs(tenant.write_key, 4, redis_round_trips)[:2] == (202, 2)  # the 5th

    redis_round_trips[0] = 0
    response = post(tenant.write_key, 5)

    assert_rate_limited(response, "5 events per 60 s")
    assert redis_round_trips[0] == 1  # refused by the script itself
    assert Event.objects.filter(project=tenant.project).count() == 5


def test_the_ip_limit_refuses_on_the_one_round_trip_path_and_counts_every_ingest_endpoint(tenant, settings):
    settings.LEADPULSE_RATE_INGEST_IP = "6/m"
    for n in range(3):  # the key becomes known to this process
        assert post(tenant.write_key, n).status_code == 202
    # one allowance per client IP, whichever endpoint counts it (the script, or before a body is read)
    assert post(tenant.write_key, 3, path="/v1/track").status_code == 200
    assert post("lp_pub_not-a-key", 4).status_code == 401  # invalid keys spend it too
    assert post(tenant.write_key, 5).status_code == 202  # the 6th request

    assert_rate_limited(post(tenant.write_key, 6), "Too many requests")
    assert_rate_limited(post(tenant.write_key, 7, path="/v1/track"), "Too many requests")
    assert post(tenant.write_key, 8, ip="10.0.0.2").status_code == 202  # another client
    assert Event.objects.filter(project=tenant.project).count() == 6
