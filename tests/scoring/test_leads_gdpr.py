"""Lead writes and privacy endpoints: edit, erase (GDPR), export one lead as JSON, export leads as CSV."""

import csv
import io

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from accounts.models import Membership
from automations.models import AutomationExecution, WebhookDelivery
from ingest.models import Event, Lead
from scoring.models import ScoreHistory
from scoring.services import lead_merge
from tests.accounts.factories import UserFactory
from tests.automations.factories import (
    AutomationExecutionFactory,
    AutomationRuleFactory,
    WebhookDeliveryFactory,
    WebhookSubscriptionFactory,
)
from tests.conftest import client_for
from tests.scoring.factories import scored_lead

pytestmark = pytest.mark.django_db


def member_client(project):
    member = UserFactory()
    Membership.objects.create(user=member, project=project, role=Membership.Role.MEMBER)
    return client_for(member)


def merge(source, target):
    """Merge like identity resolution does: both rows locked, lower id first."""
    with transaction.atomic():
        rows = Lead.objects.select_for_update().filter(id__in=[source.id, target.id]).order_by("id")
        locked = {lead.id: lead for lead in rows}
        lead_merge(source=locked[source.id], target=locked[target.id])
    target.refresh_from_db()
    return target


def execution_for(lead):
    """An automation execution for the lead, with the webhook delivery it sent."""
    rule = AutomationRuleFactory(
        project=lead.project, name="tag hot", action="webhook", action_config={"url": "https://example.com/hook"}
    )
    execution = AutomationExecutionFactory(rule=rule, lead=lead)
    WebhookDeliveryFactory(execution=execution, url=rule.action_config["url"], event="automation.fired",
                           payload={"leadId": lead.id})  # fmt: skip
    return execution


def snapshot(project):
    """Every row an erase or an edit could touch."""
    return (
        list(Lead.objects.filter(project=project).order_by("id").values()),
        list(Event.objects.filter(project=project).order_by("id").values("id", "lead_id")),
        list(ScoreHistory.objects.filter(project=project).order_by("id").values("id", "lead_id")),
        list(AutomationExecution.objects.filter(project=project).order_by("id").values("id", "lead_id")),
        list(WebhookDelivery.objects.filter(project=project).order_by("id").values("id", "execution_id")),
    )


def rows_referring_to(lead_ids):
    return {
        "lead": Lead.objects.filter(id__in=lead_ids).count(),
        "merged_into": Lead.objects.filter(merged_into_id__in=lead_ids).count(),
        "event": Event.objects.filter(lead_id__in=lead_ids).count(),
        "history": ScoreHistory.objects.filter(lead_id__in=lead_ids).count(),
        "execution": AutomationExecution.objects.filter(lead_id__in=lead_ids).count(),
        "delivery": WebhookDelivery.objects.filter(execution__lead_id__in=lead_ids).count(),
    }


def error_fields(response):
    return set(response.json()["error"]["fields"])


# --- auth, tenancy, roles ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("patch", "/api/leads/{id}"),
        ("put", "/api/leads/{id}"),
        ("delete", "/api/leads/{id}"),
        ("get", "/api/leads/{id}/export"),
        ("get", "/api/leads/export"),
    ],
)
def test_every_endpoint_needs_authentication(tenant, method, path):
    lead = scored_lead(tenant.project, "a-1", "page_view")
    before = snapshot(tenant.project)

    response = getattr(APIClient(), method)(path.format(id=lead.id), {"name": "x"}, format="json")

    assert response.status_code == 401
    assert snapshot(tenant.project) == before


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("patch", "/api/leads/{id}", {"name": "Mallory"}),
        ("put", "/api/leads/{id}", {"name": "Mallory", "email": "", "company": "", "traits": {}}),
        ("delete", "/api/leads/{id}", None),
        ("get", "/api/leads/{id}/export", None),
    ],
)
def test_another_projects_lead_is_404_and_untouched(tenant, other_tenant, method, path, body):
    theirs = scored_lead(other_tenant.project, "theirs", "demo_request", name="Theirs")
    execution_for(theirs)
    before = snapshot(other_tenant.project)

    response = getattr(tenant.client, method)(path.format(id=theirs.id), body, format="json")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert snapshot(other_tenant.project) == before


def test_the_csv_export_is_scoped_to_the_callers_project(tenant, other_tenant):
    scored_lead(tenant.project, "mine", "page_view")
    scored_lead(other_tenant.project, "theirs", "page_view")

    response = tenant.client.get("/api/leads/export")

    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["anonymousId"] for row in rows] == ["mine"]


def test_members_may_edit_a_lead_but_only_admins_erase_it(tenant):
    lead = scored_lead(tenant.project, "a-1", "page_view")
    member = member_client(tenant.project)

    assert member.patch(f"/api/leads/{lead.id}", {"name": "Ada"}, format="json").status_code == 200
    assert member.get(f"/api/leads/{lead.id}/export").status_code == 200
    assert member.get("/api/leads/export").status_code == 200
    response = member.delete(f"/api/leads/{lead.id}")
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert Lead.objects.filter(id=lead.id).exists()

    admin = UserFactory()
    Membership.objects.create(user=admin, project=tenant.project, role=Membership.Role.ADMIN)
    assert client_for(admin).delete(f"/api/leads/{lead.id}").status_code == 204
    assert not Lead.objects.filter(id=lead.id).exists()


# --- PUT/PATCH ---------------------------------------------------------------------------


def test_patch_changes_only_the_given_fields_and_never_the_scores(tenant):
    lead = scored_lead(tenant.project, "a-1", "demo_request", "signup", email="old@example.com", company="Old")
    scores = Lead.objects.filter(id=lead.id).values(
        "current_score", "engagement_score", "fit_score", "fit_grade", "lead_stage", "fold_state", "anonymous_id"
    )[0]

    response = tenant.client.patch(
        f"/api/leads/{lead.id}", {"email": "Ada@Example.COM", "traits": {"plan": {"tier": "pro"}}}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert body["email"] == "ada@example.com" and body["company"] == "Old" and body["currentScore"] == 80
    lead.refresh_from_db()
    assert (lead.email, lead.company, lead.traits) == ("ada@example.com", "Old", {"plan": {"tier": "pro"}})
    assert Lead.objects.filter(id=lead.id).values(*scores)[0] == scores


def test_put_replaces_every_editable_field_and_requires_them(tenant):
    lead = scored_lead(tenant.project, "a-1", "page_view", name="Old", company="Oldco")

    partial = tenant.client.put(f"/api/leads/{lead.id}", {"name": "New"}, format="json")
    assert partial.status_code == 400 and error_fields(partial) == {"email", "company", "traits"}

    full = {"name": "New", "email": "n@x.io", "company": "", "traits": {"a": 1}}
    assert tenant.client.put(f"/api/leads/{lead.id}", full, format="json").status_code == 200
    lead.refresh_from_db()
    assert (lead.name, lead.email, lead.company, lead.traits) == ("New", "n@x.io", "", {"a": 1})


def test_an_edit_asks_for_a_rescore_after_commit(tenant, django_capture_on_commit_callbacks, monkeypatch):
    lead = scored_lead(tenant.project, "a-1", "page_view")
    requested = []
    monkeypatch.setattr("scoring.services.leads.lead_score_request", lambda *, lead_ids: requested.append(lead_ids))

    with django_capture_on_commit_callbacks(execute=True):
        tenant.client.patch(f"/api/leads/{lead.id}", {"company": "Acme"}, format="json")

    assert requested == [[lead.id]]


def deep(levels):
    value: dict = {}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"traits": ["a", "list"]}, "traits"),
        ({"traits": "text"}, "traits"),
        ({"traits": deep(6)}, "traits"),
        ({"traits": {"blob": "x" * (33 * 1024)}}, "traits"),
        ({"traits": {"nul": "a\x00b"}}, "traits"),
        ({"name": "x" * 256}, "name"),
        ({"currentScore": 1000}, "currentScore"),
        ({"leadStage": "qualified", "name": "ok"}, "leadStage"),
        ({"project": 1}, "project"),
        ({"id": 1}, "id"),
        ({"anonymousId": "someone-else"}, "anonymousId"),
        ({"favouriteColour": "blue"}, "favouriteColour"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_changes_nothing(tenant, body, field):
    lead = scored_lead(tenant.project, "a-1", "demo_request", name="Ada")
    before = snapshot(tenant.project)

    response = tenant.client.patch(f"/api/leads/{lead.id}", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid" and field in error_fields(response)
    assert snapshot(tenant.project) == before


def test_five_levels_of_traits_are_accepted(tenant):
    lead = scored_lead(tenant.project, "a-1", "page_view")
    assert tenant.client.patch(f"/api/leads/{lead.id}", {"traits": deep(5)}, format="json").status_code == 200


# --- DELETE (erasure) --------------------------------------------------------------------


def test_erasing_a_lead_leaves_no_row_referring_to_it_or_to_the_leads_merged_into_it(tenant):
    # given a lead with events, history, an execution and its delivery, and a device merged into it
    target = scored_lead(tenant.project, "known", "demo_request", "signup", email="k@x.io")
    source = scored_lead(tenant.project, "device", "page_view", "pricing_page_visit")
    execution_for(source)
    execution_for(target)
    target = merge(source, target)
    bystander = scored_lead(tenant.project, "bystander", "page_view")
    execution_for(bystander)
    ids = [target.id, source.id]
    assert all(rows_referring_to(ids).values())

    # when
    response = tenant.client.delete(f"/api/leads/{target.id}")

    # then
    assert response.status_code == 204
    assert rows_referring_to(ids) == dict.fromkeys(rows_referring_to(ids), 0)
    assert Event.objects.filter(lead=bystander).count() == 1
    assert AutomationExecution.objects.filter(lead=bystander).count() == 1
    assert WebhookDelivery.objects.filter(execution__lead=bystander).count() == 1
    assert tenant.client.get(f"/api/leads/{target.id}").status_code == 404


def test_erasing_through_a_merged_away_id_erases_the_person(tenant):
    target = scored_lead(tenant.project, "known", "demo_request")
    source = scored_lead(tenant.project, "device", "page_view")
    merge(source, target)

    assert tenant.client.delete(f"/api/leads/{source.id}").status_code == 204

    assert rows_referring_to([source.id, target.id]) == dict.fromkeys(rows_referring_to([]), 0)


# --- GET /api/leads/{id}/export ------------------------------------------------------------


def test_the_json_export_holds_every_event_and_the_merged_identities(tenant):
    target = scored_lead(tenant.project, "known", "demo_request", "signup", email="k@x.io", traits={"plan": "pro"})
    source = scored_lead(tenant.project, "device", "page_view", "pricing_page_visit", name="Dev Ice")
    execution_for(target)
    target = merge(source, target)
    scored_lead(tenant.project, "other", "page_view")

    body = tenant.client.get(f"/api/leads/{source.id}/export").json()  # a merged-away id finds the person

    assert body["truncated"] is False
    assert body["lead"]["id"] == target.id and body["lead"]["traits"] == {"plan": "pro"}
    assert body["lead"]["email"] == "k@x.io" and body["lead"]["currentScore"] == target.current_score
    assert {"leadStage", "fitScore", "engagementScore", "foldState", "mergedIntoId"} <= set(body["lead"])
    assert [(m["id"], m["anonymousId"], m["name"]) for m in body["mergedIdentities"]] == [
        (source.id, "device", "Dev Ice")
    ]
    expected = set(Event.objects.filter(lead_id=target.id).values_list("event_id", flat=True))
    assert {event["eventId"] for event in body["events"]} == expected == {
        "known-0", "known-1", "device-0", "device-1"
    }  # fmt: skip
    assert set(body["events"][0]) == {
        "eventId", "type", "name", "timestamp", "receivedAt", "properties", "context", "sessionId", "anonymousId",
        "userId",
    }  # fmt: skip
    assert len(body["scoreHistory"]) == ScoreHistory.objects.filter(lead_id=target.id).count()
    assert [e["ruleName"] for e in body["automationExecutions"]] == ["tag hot"]


def test_the_json_export_caps_events_and_says_so(tenant, monkeypatch):
    lead = scored_lead(tenant.project, "a-1", "page_view", "signup", "demo_request")
    monkeypatch.setattr("scoring.selectors.LEAD_EXPORT_EVENT_LIMIT", 2)

    body = tenant.client.get(f"/api/leads/{lead.id}/export").json()

    assert body["truncated"] is True
    assert [event["eventId"] for event in body["events"]] == ["a-1-0", "a-1-1"]


# --- GET /api/leads/export (CSV) ---------------------------------------------------------


def csv_rows(response):
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_csv_export_streams_the_filtered_leads_as_an_attachment(tenant):
    for i in range(7):
        scored_lead(tenant.project, f"cold-{i}", "page_view")
    for i in range(3):
        scored_lead(tenant.project, f"hot-{i}", "demo_request", company="Hotco")
    merge(Lead.objects.get(anonymous_id="cold-0"), Lead.objects.get(anonymous_id="cold-1"))

    response = tenant.client.get("/api/leads/export", HTTP_ACCEPT="text/csv")

    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment")
    rows = csv_rows(response)
    live = Lead.objects.filter(project=tenant.project, merged_into__isnull=True)
    assert len(rows) == live.count() == 9
    hot = csv_rows(tenant.client.get("/api/leads/export?stage=hot&ordering=name"))
    assert len(hot) == live.filter(lead_stage="hot").count() == 3
    searched = csv_rows(tenant.client.get("/api/leads/export?search=hotco"))
    assert {row["anonymousId"] for row in searched} == {"hot-0", "hot-1", "hot-2"}
    by_device = csv_rows(tenant.client.get("/api/leads/export?anonymousId=cold-0"))
    assert [row["anonymousId"] for row in by_device] == ["cold-1"]  # the merged device finds its survivor


def test_the_csv_export_rejects_bad_filters_naming_them(tenant):
    response = tenant.client.get("/api/leads/export?stage=boiling")
    assert response.status_code == 400 and error_fields(response) == {"stage"}
    response = tenant.client.get("/api/leads/export?ordering=password")
    assert response.status_code == 400 and error_fields(response) == {"ordering"}


def test_the_csv_export_defuses_formulas(tenant):
    scored_lead(tenant.project, "evil", "page_view", name="=cmd|'/c calc'!A1", company="+1+1", email="")

    (row,) = csv_rows(tenant.client.get("/api/leads/export"))

    assert row["name"] == "'=cmd|'/c calc'!A1"
    assert row["company"] == "'+1+1"


def test_erasure_also_removes_webhook_deliveries_that_carry_the_lead(tenant):
    lead = scored_lead(tenant.project, "gone", "signup")
    keep = scored_lead(tenant.project, "kept", "signup")
    subscription = WebhookSubscriptionFactory(
        project=tenant.project, url="http://127.0.0.1:9/h", events=["lead.updated"]
    )
    for target in (lead, keep):
        WebhookDeliveryFactory(subscription=subscription, event="lead.updated",
                               payload={"data": {"lead": {"id": target.id, "email": "x@y.io"}}})  # fmt: skip

    assert tenant.client.delete(f"/api/leads/{lead.id}").status_code == 204

    assert list(WebhookDelivery.objects.values_list("payload__data__lead__id", flat=True)) == [keep.id]
