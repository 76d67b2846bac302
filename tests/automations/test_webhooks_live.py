"""Automations and webhooks end to end: real workers, a real HTTP receiver on 127.0.0.1."""

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import Client

from automations import engine
from automations.models import AutomationExecution, WebhookDelivery, WebhookSubscription
from core.models import FailedJob
from tests.accounts.factories import project_with_owner
from tests.conftest import client_for
from tests.live import wait_until

pytestmark = pytest.mark.live


@pytest.fixture
def tenant_live(live_pipeline):
    project, owner, key = project_with_owner(name="Hooks")
    return project, client_for(owner), key


def send(key, body):
    try:
        return Client().post("/api/events", json.dumps(body), content_type="application/json", HTTP_X_API_KEY=key)
    finally:
        connection.close()


def test_entering_hot_fires_once_even_when_50_concurrent_events_push_the_lead_there(tenant_live, receiver):
    _project, api, key = tenant_live
    created = api.post("/api/automations", {
        "name": "Hot lead", "trigger": "stage_entered", "triggerConfig": {"stage": "hot"},
        "action": "webhook", "actionConfig": {"url": receiver.url},
    }, format="json")  # fmt: skip
    assert created.status_code == 201, created.content
    secret = created.json()["actionConfig"]["secret"]
    assert "secret" not in api.get(f"/api/automations/{created.json()['id']}").json()["actionConfig"]

    # 50 page views (5 points each): the lead passes 31 (hot) once, then 60 (qualified)
    with ThreadPoolExecutor(max_workers=10) as pool:
        bodies = [{"eventType": "page_view", "leadId": "burst", "eventId": f"b{i}"} for i in range(50)]
        assert set(pool.map(lambda body: send(key, body).status_code, bodies)) == {202}

    wait_until(lambda: AutomationExecution.objects.filter(status="succeeded").exists(), timeout=60,
               message="the automation to fire")  # fmt: skip
    live_wait_settled(tenant_live)
    assert AutomationExecution.objects.filter(rule_id=created.json()["id"]).count() == 1
    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert request.headers["leadpulse-event"] == "automation.fired"
    assert request.headers["leadpulse-delivery"]
    assert engine.signature_verify(secret=secret, header=request.headers["leadpulse-signature"],
                                   body=request.body, now=int(time.time()))  # fmt: skip
    tampered = request.body.replace(b'"hot"', b'"cold"')
    assert tampered != request.body
    assert not engine.signature_verify(secret=secret, header=request.headers["leadpulse-signature"], body=tampered,
                                       now=int(time.time()))  # fmt: skip
    payload = json.loads(request.body)
    assert payload["data"]["lead"]["anonymousId"] == "burst" and payload["data"]["trigger"]["stage"] == "hot"
    executions = api.get(f"/api/automations/{created.json()['id']}/executions").json()
    assert executions["count"] == 1 and executions["results"][0]["status"] == "succeeded"


def live_wait_settled(tenant_live):
    from ingest.models import Event

    project = tenant_live[0]
    wait_until(lambda: not Event.objects.filter(project=project, processed_at__isnull=True).exists(), timeout=60,
               message="scoring")  # fmt: skip


def subscribe(api, receiver, events=("lead.updated",)):
    response = api.post("/api/webhooks/subscribe", {"url": receiver.url, "events": list(events)}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_a_receiver_failing_four_times_gets_exactly_one_successful_delivery(tenant_live, receiver):
    _project, api, key = tenant_live
    receiver.script = [500, 500, 500, 500, 200]
    subscription = subscribe(api, receiver)
    assert subscription["secret"].startswith("whsec_")

    send(key, {"eventType": "signup", "leadId": "retry-me", "eventId": "s1"})

    wait_until(lambda: WebhookDelivery.objects.filter(status="succeeded").exists(), timeout=60,
               message="the delivery to succeed after retries")  # fmt: skip
    delivery = WebhookDelivery.objects.get()
    assert (delivery.attempts, delivery.response_code) == (5, 200)
    # the change carries the id that makes a redelivered change task send nothing twice
    assert delivery.change_key == f"{delivery.payload['data']['change']['changeId']}:lead.updated"
    assert len(receiver.requests) == 5
    assert len({r.headers["leadpulse-delivery"] for r in receiver.requests}) == 1  # same delivery id each time
    assert not FailedJob.objects.exists()
    assert WebhookSubscription.objects.get().consecutive_failures == 0


def test_a_receiver_that_never_succeeds_lands_in_the_dlq_and_replay_delivers(tenant_live, receiver):
    _project, api, key = tenant_live
    receiver.script = [503]
    subscribe(api, receiver)

    send(key, {"eventType": "signup", "leadId": "dead", "eventId": "d1"})

    wait_until(lambda: FailedJob.objects.exists(), timeout=60, message="the dead letter")
    assert WebhookDelivery.objects.get().status == "failed" and len(receiver.requests) == 5
    job = api.get("/api/failed-jobs").json()["results"][0]
    assert job["kind"] == "webhook.delivery" and job["attempts"] == 5

    receiver.script = [200]
    assert api.post(f"/api/failed-jobs/{job['id']}/replay").status_code == 202
    wait_until(lambda: WebhookDelivery.objects.get().status == "succeeded", timeout=30, message="the replay")
    assert len(receiver.requests) == 6


def test_send_test_and_delivery_log(tenant_live, receiver):
    _project, api, _key = tenant_live
    subscription = subscribe(api, receiver, events=("lead.stage_changed",))
    assert api.post(f"/api/webhooks/{subscription['id']}/test").status_code == 202
    wait_until(lambda: len(receiver.requests) == 1, timeout=30, message="the ping")
    assert receiver.requests[0].headers["leadpulse-event"] == "ping"
    deliveries = api.get(f"/api/webhooks/{subscription['id']}/deliveries").json()
    assert deliveries["results"][0]["status"] == "succeeded"
