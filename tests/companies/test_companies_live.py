"""Companies through the real pipeline: Segment calls over HTTP, scoring and companies in worker processes."""

import json

import pytest
from django.db import connection
from django.test import Client

from companies.models import Company, CompanyMembership, CompanyScore
from ingest.models import Lead
from tests.accounts.factories import project_with_owner
from tests.live import wait_until

pytestmark = pytest.mark.live


def batch(key, messages):
    try:
        return Client().post("/v1/batch", json.dumps({"writeKey": key, "batch": messages}), content_type="text/plain")
    finally:
        connection.close()


def person(name, email):
    return [
        {"type": "identify", "anonymousId": name, "traits": {"email": email}, "messageId": f"{name}-id"},
        {"type": "track", "event": "email_open", "anonymousId": name, "messageId": f"{name}-open"},
        {"type": "track", "event": "page_view", "anonymousId": name, "messageId": f"{name}-view"},
    ]


def test_three_warm_people_of_one_company_make_it_hot_through_the_workers(live_pipeline):
    project, _owner, key = project_with_owner(name="Companies live")
    messages = [*person("ann", "ann@acme.com"), *person("bob", "bob@www.acme.com"), *person("cy", "cy@eu.acme.com"),
                *person("dee", "dee@gmail.com")]  # fmt: skip

    assert batch(key, messages).status_code == 200

    def rolled_up():
        score = CompanyScore.objects.filter(company__project=project, company__key="acme.com").first()
        return score is not None and score.score == 3 * 15 + 3 * 10

    wait_until(rolled_up, message="the company's roll-up of its three members")
    assert set(Lead.objects.filter(project=project).values_list("lead_stage", flat=True)) == {"warm"}
    assert CompanyScore.objects.get(company__project=project).stage == "qualified"
    members = CompanyMembership.objects.filter(project=project).values_list("lead__anonymous_id", flat=True)
    assert sorted(members) == ["ann", "bob", "cy"]  # gmail names no company
    assert Company.objects.filter(project=project).count() == 1
