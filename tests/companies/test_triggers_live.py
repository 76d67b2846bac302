"""Company triggers end to end: Segment calls over HTTP, scoring, companies and automations in real workers, a real
HTTP receiver on 127.0.0.1."""

import json
import time

import pytest
from django.db import connection
from django.test import Client

from automations import engine
from automations.models import AutomationExecution
from companies.models import Company, CompanyScore, CompanyScoreHistory
from ingest.models import Event, Lead
from tests.accounts.factories import project_with_owner
from tests.conftest import client_for
from tests.live import wait_until

pytestmark = pytest.mark.live


def batch(key, messages):
    try:
        return Client().post("/v1/batch", json.dumps({"writeKey": key, "batch": messages}), content_type="text/plain")
    finally:
        connection.close()


def person(name, email, *events):
    return [
        {"type": "identify", "anonymousId": name, "traits": {"email": email}, "messageId": f"{name}-id"},
        *({"type": "track", "event": e, "anonymousId": name, "messageId": f"{name}-{i}"} for i, e in enumerate(events)),
    ]


def settled(project):
    wait_until(lambda: not Event.objects.filter(project=project, processed_at__isnull=True).exists(), timeout=60,
               message="scoring")  # fmt: skip


def test_three_warm_people_make_their_company_hot_and_each_company_rule_fires_once(live_pipeline, receiver):
    project, owner, key = project_with_owner(name="Company triggers")
    api = client_for(owner)
    rules = {}
    for body in (
        {"trigger": "company.stage_entered", "triggerConfig": {"stage": "hot"}},
        {"trigger": "company.score_crossed_up", "triggerConfig": {"threshold": 60}},
    ):
        created = api.post("/api/automations", {"name": body["trigger"], "action": "webhook",
                           "actionConfig": {"url": receiver.url}, **body}, format="json")  # fmt: skip
        assert created.status_code == 201, created.content
        rules[body["trigger"]] = created.json()

    # three people of acme, each warm (15) on their own: the company rolls up to 3 * 15 + 3 * 10 = 75
    for name in ("ann", "bob", "cy"):
        assert batch(key, person(name, f"{name}@acme.com", "email_open", "page_view")).status_code == 200

    wait_until(lambda: len(receiver.requests) >= 2, timeout=60, message="both company rules to fire")
    settled(project)
    wait_until(lambda: CompanyScore.objects.filter(company__project=project, score=75).exists(), timeout=30,
               message="the roll-up")  # fmt: skip
    # a fourth person, later in the window: the company moves again, no rule fires twice
    assert batch(key, person("dee", "dee@acme.com", "demo_request")).status_code == 200
    settled(project)
    wait_until(lambda: CompanyScore.objects.filter(company__project=project, score__gt=75).exists(), timeout=30,
               message="the fourth member's roll-up")  # fmt: skip
    time.sleep(1)  # any (wrong) second firing would be on its way by now
    live_pipeline.wait_idle()

    assert set(Lead.objects.filter(project=project, anonymous_id__in=["ann", "bob", "cy"])
               .values_list("lead_stage", flat=True)) == {"warm"}  # fmt: skip
    company = Company.objects.get(project=project)
    for trigger, rule in rules.items():
        [execution] = AutomationExecution.objects.filter(rule_id=rule["id"])
        assert (execution.company_id, execution.lead_id, execution.status) == (company.id, None, "succeeded"), trigger
    assert len(receiver.requests) == 2
    secrets = {rule["id"]: rule["actionConfig"]["secret"] for rule in rules.values()}
    by_trigger = {}
    for request in receiver.requests:
        data = json.loads(request.body)["data"]
        secret = secrets[data["automation"]["id"]]
        assert engine.signature_verify(secret=secret, header=request.headers["leadpulse-signature"], body=request.body,
                                       now=int(time.time()))  # fmt: skip
        by_trigger[data["trigger"]["trigger"]] = data
    assert set(by_trigger) == {"company.stage_entered", "company.score_crossed_up"}
    for data in by_trigger.values():
        shown = data["company"]
        assert (shown["id"], shown["domain"], shown["model"]) == (company.id, "acme.com", "default")
        assert shown["stage"] in ("hot", "qualified") and shown["score"] >= 31
        assert data["member"]["email"] in ("ann@acme.com", "bob@acme.com", "cy@acme.com")
        assert "lead" not in data
    assert by_trigger["company.score_crossed_up"]["company"]["score"] >= 60
    # the history chain ends at the current score
    rows = list(CompanyScoreHistory.objects.filter(company=company).order_by("id"))
    assert rows[-1].new_score == CompanyScore.objects.get(company=company).score
