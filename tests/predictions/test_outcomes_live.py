"""The project's "won" event through the real pipeline: Segment calls over HTTP, scoring and predictions in worker
processes."""

import json

import pytest
from django.db import connection
from django.test import Client

from ingest.models import Event
from predictions.models import Outcome
from tests.accounts.factories import project_with_owner
from tests.live import wait_until

pytestmark = pytest.mark.live


def batch(key, messages):
    try:
        return Client().post("/v1/batch", json.dumps({"writeKey": key, "batch": messages}), content_type="text/plain")
    finally:
        connection.close()


def test_a_contract_signed_event_records_the_lead_as_won_through_the_workers(live_pipeline):
    project, _owner, key = project_with_owner(name="Outcomes live")
    signed_at = "2026-11-30T12:00:00Z"
    messages = [
        {"type": "track", "event": "page_view", "anonymousId": "ann", "messageId": "ann-1"},
        {"type": "track", "event": "contract_signed", "anonymousId": "ann", "messageId": "ann-2",
         "timestamp": signed_at},
        {"type": "track", "event": "page_view", "anonymousId": "bob", "messageId": "bob-1"},
    ]  # fmt: skip

    assert batch(key, messages).status_code == 200

    wait_until(lambda: Outcome.objects.filter(project=project).exists(), message="ann's won outcome")
    outcome = Outcome.objects.get(project=project)
    event = Event.objects.get(project=project, event_id="ann-2")
    assert (outcome.lead_id, outcome.outcome, outcome.source) == (event.lead_id, "won", "event")
    assert outcome.occurred_at == event.timestamp and outcome.source_event_id == event.id
    # bob's lead is scored too, and gets no outcome
    wait_until(lambda: not Event.objects.filter(project=project, processed_at__isnull=True).exists(),
               message="every event scored")  # fmt: skip
    assert Outcome.objects.filter(project=project).count() == 1
