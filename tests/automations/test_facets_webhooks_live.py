"""Webhook payloads carry the lead facets, end to end: real workers, a real HTTP receiver on 127.0.0.1."""

import json

import pytest

from automations.models import WebhookDelivery
from companies.models import Company
from ingest.models import Event, Lead
from predictions.models import LeadPrediction
from tests.accounts.factories import project_with_owner
from tests.automations.test_webhooks_live import subscribe
from tests.companies.test_browser import person, segment_batch
from tests.conftest import client_for
from tests.live import wait_until
from tests.predictions.support import prediction_world

pytestmark = pytest.mark.live


def scored(project) -> bool:
    return not Event.objects.filter(project=project, processed_at__isnull=True).exists()


def test_a_lead_updated_delivery_carries_the_company_the_outcome_and_the_probability(live_pipeline, receiver):
    project, owner, key = project_with_owner(name="Facet Hooks")
    api = client_for(owner)
    prediction_world(project)
    subscribe(api, receiver)
    segment_batch(key, person("dee", "dee@globex.com", "email_open"))
    wait_until(lambda: scored(project) and Company.objects.filter(project=project).exists(), timeout=60,
               message="scoring and the company")  # fmt: skip
    dee = Lead.objects.get(project=project, anonymous_id="dee")
    wait_until(lambda: LeadPrediction.objects.filter(lead=dee).exists(), timeout=60, message="dee's probability")
    wait_until(lambda: len(receiver.requests) == 1, timeout=60, message="the first delivery")  # before the outcome
    # the batch's consumers run in turn, predictions and companies before automations: its first delivery already
    # carries the probability and the company that batch gave dee
    first = json.loads(receiver.requests[0].body)["data"]["lead"]
    assert first["conversionProbability"] is not None and first["associatedCompany"]["domain"] == "globex.com"
    recorded = api.post(f"/api/leads/{dee.id}/outcome", {"outcome": "won", "reason": "signed"}, format="json")
    assert recorded.status_code in (200, 201), recorded.content
    seen = len(receiver.requests)

    segment_batch(key, [{"type": "track", "event": "page_view", "anonymousId": "dee", "messageId": "dee-later"}])

    wait_until(lambda: len(receiver.requests) > seen, timeout=60, message="the later delivery")
    lead = json.loads(receiver.requests[-1].body)["data"]["lead"]
    assert lead["id"] == dee.id and receiver.requests[-1].headers["leadpulse-event"] == "lead.updated"
    company = Company.objects.get(project=project)
    assert lead["associatedCompany"]["id"] == company.id and lead["associatedCompany"]["domain"] == "globex.com"
    assert lead["associatedCompany"]["members"] == 1 and lead["associatedCompany"]["stage"] in {"cold", "warm"}
    assert lead["outcome"]["outcome"] == "won" and lead["outcome"]["reason"] == "signed"
    probability = lead["conversionProbability"]
    assert 0 <= probability["probability"] <= 1 and len(probability["factors"]) >= 1
    assert {"feature", "value", "contribution", "label"} <= probability["factors"][0].keys()
    # the stored payload is what was sent
    assert WebhookDelivery.objects.filter(project=project).latest("id").payload["data"]["lead"] == lead
