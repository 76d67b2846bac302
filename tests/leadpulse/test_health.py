import pytest
from django.core.cache import cache

from leadpulse.health import HEARTBEAT_KEY, worker_heartbeat_record

pytestmark = pytest.mark.django_db


def test_health_is_503_without_a_worker_heartbeat(api_client):
    cache.delete(HEARTBEAT_KEY)
    response = api_client.get("/api/health")
    assert response.status_code == 503
    assert response.json()["status"] == "degraded" and response.json()["worker"]["status"] == "down"


def test_health_is_200_with_a_fresh_heartbeat(api_client):
    worker_heartbeat_record(hostname="w1@test")
    body = api_client.get("/api/health").json()
    assert body["status"] == "ok"
    assert body["worker"]["lastHeartbeat"] and "hostname" not in body["worker"]
    assert (body["database"], body["redis"]) == ("ok", "ok")


def test_health_is_503_when_redis_is_unreachable(api_client, settings):
    worker_heartbeat_record(hostname="w1@test")
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = api_client.get("/api/health")
    assert response.status_code == 503 and response.json()["redis"] == "down"


def test_the_root_asks_for_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_health_tells_strangers_nothing_about_projects_and_the_system_page_scopes_its_figures(api_client, tenant):
    from django.test import Client

    from core.models import FailedJob

    worker_heartbeat_record(hostname="w1@test")
    FailedJob.objects.create(project=tenant.project, kind="webhook.delivery", payload={})
    assert "pipeline" not in api_client.get("/api/health").json()
    browser = Client()
    browser.force_login(tenant.owner)
    page = browser.get("/system/")
    assert page.status_code == 200 and page.context["health"]["pipeline"]["deadLetters"] == 1
    assert set(page.context["health"]["pipeline"]) == {
        "beatLastRunAt",
        "queueDepth",
        "oldestUnprocessedSeconds",
        "deadLetters",
    }


def test_health_is_documented_unauthenticated_with_its_503(api_client):
    operation = api_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]["/api/health"]["get"]
    assert not any(operation.get("security", []))  # no scheme required
    assert operation["responses"]["503"]["content"] == operation["responses"]["200"]["content"]
