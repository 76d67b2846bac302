import base64
import json
import secrets
from datetime import timedelta

import jwt
import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts.services import key_hash, secret_key_create, write_key_cache_key, write_key_rotate
from ingest.models import Event, Lead
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _frozen_windows(frozen_rate_windows):
    """Every test here counts requests in fixed windows: none may end mid-test (see tests/conftest.py)."""


def http(ip: str = "127.0.0.1") -> Client:
    return Client(REMOTE_ADDR=ip)


def sdk(key, n):
    return "/api/ingest/event", {"apiKey": key, "event": "page_view", "anonymousId": f"a{n}"}, {}


def server(key, n):
    return "/api/events", {"eventType": "signup", "leadId": f"l{n}"}, {"HTTP_X_API_KEY": key}


def server_batch(key, n):
    events = [{"eventType": "signup", "leadId": f"l{n}", "eventId": f"{n}-{i}"} for i in range(3)]
    return "/api/events/batch", {"events": events}, {"HTTP_X_API_KEY": key}


def segment_track(key, n):
    return "/v1/track", {"writeKey": key, "event": "Signed Up", "anonymousId": f"a{n}"}, {}


def segment_batch(key, n):
    basic = base64.b64encode(f"{key}:".encode()).decode()
    batch = [{"type": "track", "event": "Signed Up", "anonymousId": f"a{n}", "messageId": f"{n}-{i}"} for i in range(3)]
    return "/v1/batch", {"batch": batch}, {"HTTP_AUTHORIZATION": f"Basic {basic}"}


def ingest(shape, key, n, *, client=None):
    path, body, headers = shape(key, n)
    return (client or http()).post(path, json.dumps(body), content_type="application/json", **headers)


def assert_rate_limited(response):
    assert response.status_code == 429, response.content
    assert int(response["Retry-After"]) >= 1
    error = response.json()["error"]
    assert error["code"] == "rate_limited" and error["message"] and error["fields"] == {}


@pytest.mark.parametrize("shape", [sdk, server, segment_track])
def test_ingest_over_the_write_key_limit_is_429_and_writes_nothing(tenant, settings, shape):
    settings.LEADPULSE_RATE_INGEST_KEY = "2/m"
    # given: two events
    assert ingest(shape, tenant.write_key, 1).status_code in (200, 202)
    assert ingest(shape, tenant.write_key, 2).status_code in (200, 202)
    events, leads = Event.objects.count(), Lead.objects.count()
    # when
    response = ingest(shape, tenant.write_key, 3)
    # then
    assert_rate_limited(response)
    assert (Event.objects.count(), Lead.objects.count()) == (events, leads)


@pytest.mark.parametrize("shape", [server_batch, segment_batch])
def test_a_batch_spends_one_unit_of_the_write_key_limit_per_event(tenant, settings, shape):
    settings.LEADPULSE_RATE_INGEST_KEY = "5/m"
    # given: a batch of 3 events spends 3 of 5
    assert ingest(shape, tenant.write_key, 1).status_code in (200, 202)
    events = Event.objects.count()
    # when: 3 more would be 6
    response = ingest(shape, tenant.write_key, 2)
    # then: refused whole, nothing stored, and the refused batch spent nothing
    assert_rate_limited(response)
    assert "5 events per 60 s" in response.json()["error"]["message"]
    assert Event.objects.count() == events
    assert ingest(server, tenant.write_key, 3).status_code == 202  # the 4th event
    assert ingest(server, tenant.write_key, 4).status_code == 202  # the 5th
    assert_rate_limited(ingest(server, tenant.write_key, 5))


def test_invalid_keys_spend_the_ip_allowance(tenant, settings):
    settings.LEADPULSE_RATE_INGEST_IP = "3/m"
    for n in range(3):
        assert ingest(server, f"lp_pub_random{n}", n).status_code == 401
    # when: a valid key from the same IP
    response = ingest(server, tenant.write_key, 9)
    # then
    assert_rate_limited(response)
    assert Event.objects.count() == 0
    # another client IP is not affected
    assert ingest(server, tenant.write_key, 10, client=http("10.0.0.9")).status_code == 202


def test_the_write_key_limit_is_per_project(tenant, other_tenant, settings):
    settings.LEADPULSE_RATE_INGEST_KEY = "2/m"
    for n in range(2):
        ingest(sdk, tenant.write_key, n)

    assert_rate_limited(ingest(sdk, tenant.write_key, 3))
    assert ingest(sdk, other_tenant.write_key, 3).status_code == 202


def test_a_project_can_override_its_ingest_rate(tenant, other_tenant, settings):
    settings.LEADPULSE_RATE_INGEST_KEY = "100/s"
    tenant.project.ingest_rate_per_second = 2
    tenant.project.save(update_fields=["ingest_rate_per_second"])
    for n in range(2):
        assert ingest(server, tenant.write_key, n).status_code == 202

    assert_rate_limited(ingest(server, tenant.write_key, 3))
    for n in range(3):
        assert ingest(server, other_tenant.write_key, n).status_code == 202


def login(client, email, password=PASSWORD):
    return client.post("/api/auth/login", {"email": email, "password": password}, format="json")


def test_login_is_limited_per_ip_counting_failures(settings):
    settings.LEADPULSE_RATE_LOGIN_IP = "3/m"
    user = UserFactory()
    client = APIClient(REMOTE_ADDR="10.0.0.1")
    for n in range(3):
        assert login(client, f"nobody{n}@example.com").status_code == 401
    # when: the right password, same IP
    response = login(client, user.email)
    # then
    assert_rate_limited(response)
    assert login(APIClient(REMOTE_ADDR="10.0.0.2"), user.email).status_code == 200


def test_login_is_limited_per_account_across_ips(settings):
    settings.LEADPULSE_RATE_LOGIN_ACCOUNT = "2/m"
    user, other = UserFactory(), UserFactory()
    assert login(APIClient(REMOTE_ADDR="10.0.0.1"), user.email, "wrong").status_code == 401
    assert login(APIClient(REMOTE_ADDR="10.0.0.2"), user.email).status_code == 200
    # when: a third attempt, from a third IP, in other letter case
    response = login(APIClient(REMOTE_ADDR="10.0.0.3"), user.email.upper())
    # then
    assert_rate_limited(response)
    assert login(APIClient(REMOTE_ADDR="10.0.0.3"), other.email).status_code == 200


def test_register_is_limited_per_ip(settings):
    settings.LEADPULSE_RATE_REGISTER_IP = "2/m"
    client = APIClient()
    for n in range(2):
        body = {"email": f"new{n}@example.com", "password": "s3cure-enough-pass"}
        assert client.post("/api/auth/register", body, format="json").status_code == 201

    response = client.post("/api/auth/register", {"email": "new9@example.com", "password": "s3cure-enough-pass"})
    assert_rate_limited(response)


def test_the_api_is_limited_per_user_and_per_secret_key(tenant, other_tenant, settings):
    settings.LEADPULSE_RATE_API = "3/m"
    _, raw_key = secret_key_create(project=tenant.project)
    key_client = APIClient()
    key_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    for _ in range(3):
        assert tenant.client.get("/api/projects").status_code == 200
    # when
    response = tenant.client.get("/api/projects")
    # then: the user is limited; another user and the project's secret key are not
    assert_rate_limited(response)
    assert other_tenant.client.get("/api/projects").status_code == 200
    assert key_client.get("/api/leaderboard").status_code == 200


def test_the_sign_in_page_is_limited_per_account_too(tenant, settings):
    from django.test import Client

    settings.LEADPULSE_RATE_LOGIN_ACCOUNT = "2/m"
    statuses = [
        Client(REMOTE_ADDR=f"10.0.0.{i}")
        .post("/login/", {"username": tenant.owner.email.upper(), "password": "x"})
        .status_code
        for i in range(3)
    ]
    assert statuses == [200, 200, 429]


# --- Failed key lookups per client IP: random keys are guesses, limited apart and far below the request rate --------


def random_key(prefix: str = "lp_pub_") -> str:
    return prefix + secrets.token_urlsafe(24)


@pytest.mark.parametrize("shape", [server, sdk, segment_batch])
def test_random_write_keys_from_one_ip_get_401_then_429_without_a_lookup(
    tenant, settings, shape, django_assert_num_queries
):
    settings.LEADPULSE_RATE_INGEST_BAD_KEY_IP = "30/m"
    attacker = http("10.6.6.6")
    assert ingest(shape, tenant.write_key, 0, client=http("10.1.1.1")).status_code in (200, 202)  # in use elsewhere
    # given: an IP spends its 30 failed lookups
    statuses = [ingest(shape, random_key(), n, client=attacker).status_code for n in range(30)]
    assert statuses == [401] * 30
    # when: it goes on guessing
    guesses = [random_key() for _ in range(370)]
    with django_assert_num_queries(0):
        responses = [ingest(shape, key, n, client=attacker) for n, key in enumerate(guesses)]
    # then: 429 in the error shape, no database lookup and no cache entry per guess
    for response in responses:
        assert_rate_limited(response)
    assert cache.get_many([write_key_cache_key(key_hash(key)) for key in guesses]) == {}
    # a valid key from the same IP still works, and other IPs' guesses are still only 401
    assert ingest(shape, tenant.write_key, 1, client=attacker).status_code in (200, 202)
    assert ingest(shape, random_key(), 1, client=http("10.7.7.7")).status_code == 401
    assert Event.objects.filter(project=tenant.project).count() == 2 * (3 if "batch" in shape.__name__ else 1)


def test_a_revoked_write_key_repeated_spends_the_allowance_too(tenant, settings):
    settings.LEADPULSE_RATE_INGEST_BAD_KEY_IP = "3/m"
    write_key_rotate(project=tenant.project)  # the old key, still in a page somewhere
    statuses = [ingest(server, tenant.write_key, n, client=http("10.6.6.6")).status_code for n in range(5)]
    assert statuses == [401, 401, 401, 429, 429]


def test_a_valid_key_not_in_use_waits_out_the_window_on_a_flooded_ip(tenant, settings, django_assert_num_queries):
    # Deciding a key is valid takes a lookup, which a flooding IP has spent: only keys in use (cached) pass.
    settings.LEADPULSE_RATE_INGEST_BAD_KEY_IP = "3/m"
    attacker = http("10.6.6.6")
    for n in range(3):
        assert ingest(server, random_key(), n, client=attacker).status_code == 401
    cache.delete(write_key_cache_key(key_hash(tenant.write_key)))
    with django_assert_num_queries(0):
        assert_rate_limited(ingest(server, tenant.write_key, 9, client=attacker))
    # the key works from anywhere else, and once used it passes on the flooded IP too
    assert ingest(server, tenant.write_key, 10, client=http("10.1.1.1")).status_code == 202
    assert ingest(server, tenant.write_key, 11, client=attacker).status_code == 202


def api_get(ip: str, authorization: str):
    return APIClient(REMOTE_ADDR=ip).get("/api/leads", HTTP_AUTHORIZATION=authorization)


def test_random_secret_keys_from_one_ip_get_401_then_429_without_a_lookup(tenant, settings, django_assert_num_queries):
    settings.LEADPULSE_RATE_API_BAD_KEY_IP = "30/m"
    _, secret = secret_key_create(project=tenant.project)
    assert api_get("10.1.1.1", f"Bearer {secret}").status_code == 200  # in use
    statuses = [api_get("10.6.6.6", f"Bearer {random_key('lp_sec_')}").status_code for _ in range(30)]
    assert statuses == [401] * 30

    with django_assert_num_queries(0):
        responses = [api_get("10.6.6.6", f"Bearer {random_key('lp_sec_')}") for _ in range(50)]

    for response in responses:
        assert_rate_limited(response)
    assert api_get("10.6.6.6", f"Bearer {secret}").status_code == 200
    assert api_get("10.7.7.7", f"Bearer {random_key('lp_sec_')}").status_code == 401


def test_forged_jwts_from_one_ip_get_401_then_429_and_expired_ones_are_not_counted(tenant, settings):
    settings.LEADPULSE_RATE_API_BAD_KEY_IP = "5/m"
    expired = AccessToken.for_user(tenant.owner)
    expired.set_exp(lifetime=-timedelta(seconds=1))
    forged = jwt.encode({**AccessToken.for_user(tenant.owner).payload}, "not-the-secret-key", algorithm="HS256")
    # expired tokens are genuine: a client refreshing late is not guessing
    assert {api_get("10.6.6.6", f"Bearer {expired}").status_code for _ in range(8)} == {401}
    # when: forged and garbled tokens
    statuses = [api_get("10.6.6.6", f"Bearer {token}").status_code for token in [forged, "abc.def.ghi"] * 4]
    # then
    assert statuses == [401] * 5 + [429] * 3
    assert_rate_limited(api_get("10.6.6.6", f"Bearer {forged}"))
    valid = str(AccessToken.for_user(tenant.owner))
    assert api_get("10.6.6.6", f"Bearer {valid}").status_code == 200
    assert api_get("10.7.7.7", f"Bearer {forged}").status_code == 401
