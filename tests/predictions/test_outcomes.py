"""Leads' outcomes (won/lost) on PostgreSQL: recorded one by one, in bulk and from CSV, listed, shown with leads,
taken from the project's "won" event, moved with merges and erased with leads.

Events go in through ingest and are scored by scoring's real services; what scoring hands over after commit is
taken from the broker's door (`send_task`, Celery's, not ours) and run by the task registered under its name, as a
worker would (tests/predictions/test_outcomes_live.py runs it in real worker processes).
"""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from accounts.models import Membership
from core.contracts import PREDICTION_LEAD_CHANGES_TASK
from ingest.models import Event, Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from leadpulse.celery import app as celery_app
from predictions.models import Outcome, PredictionSettings
from scoring.services import lead_erase, lead_score
from tests.accounts.factories import UserFactory
from tests.conftest import client_for
from tests.handover import sent_to
from tests.plans import rows_read, statements_matching
from tests.scoring.factories import scored_lead

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


@pytest.fixture
def handed_over(monkeypatch):
    """The messages scoring sends after commit, by task name (nothing reaches a broker)."""
    sent: list[tuple[str, dict]] = []
    monkeypatch.setattr("core.pipeline.app.send_task", lambda name, kwargs=None, **_: sent.append((name, kwargs)))
    return sent


@pytest.fixture
def pipeline(handed_over, django_capture_on_commit_callbacks):
    """Score leads with scoring's services, then deliver predictions' messages to their task (`again`: twice)."""
    celery_app.loader.import_default_modules()  # what a worker does as it starts: every app's tasks registered

    def run(*lead_ids: int, again: bool = False) -> list[dict]:
        handed_over.clear()
        with django_capture_on_commit_callbacks(execute=True):
            for lead_id in lead_ids:
                lead_score(lead_id=lead_id)
        messages = sent_to(PREDICTION_LEAD_CHANGES_TASK, handed_over)
        for _ in range(2 if again else 1):
            for kwargs in messages:
                celery_app.tasks[PREDICTION_LEAD_CHANGES_TASK](**kwargs)
        return messages

    return run


def ingest(project, anonymous_id, *events, at=NOW) -> int:
    """events: (type, name, properties) or a track event's name, a minute apart ending at `at`; the lead's id."""
    events_ingest(
        project_id=project.id,
        events=[
            CanonicalEvent(
                event_id=f"{anonymous_id}-{i}-{at.timestamp()}", anonymous_id=anonymous_id,
                timestamp=at - timedelta(minutes=len(events) - 1 - i),
                **({"type": e[0], "name": e[1], "properties": e[2]} if isinstance(e, tuple) else {"name": e}),
            )
            for i, e in enumerate(events)
        ],
    )  # fmt: skip
    return Lead.objects.get(project=project, anonymous_id=anonymous_id).id


def identify(traits):
    return ("identify", "identify", traits)


@pytest.fixture
def lead(tenant):
    return scored_lead(tenant.project, "ann", "page_view", "signup", email="ann@example.com", user_id="crm-1")


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- One lead: record, get, replace, clear --------------------------------------------------------------------------


def test_a_member_records_a_leads_outcome_and_reads_it_back(tenant, lead):
    member = UserFactory()
    Membership.objects.create(user=member, project=tenant.project, role=Membership.Role.MEMBER)
    client = client_for(member)

    response = client.post(
        f"/api/leads/{lead.id}/outcome",
        {"outcome": "won", "value": 1200.5, "at": "2026-03-01T10:00:00Z", "reason": "signed"},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["leadId"] == lead.id and body["outcome"] == "won" and body["value"] == 1200.5
    assert body["at"] == "2026-03-01T10:00:00Z" and body["reason"] == "signed" and body["source"] == "api"
    assert body["author"] == {"type": "user", "id": member.id, "label": member.email}
    stored = Outcome.objects.get(lead=lead)
    assert (stored.project, stored.value, stored.author) == (tenant.project, Decimal("1200.50"), member)
    assert client.get(f"/api/leads/{lead.id}/outcome").json() == body


def test_a_later_outcome_replaces_the_one_a_lead_had(tenant, lead):
    tenant.client.post(f"/api/leads/{lead.id}/outcome", {"outcome": "won", "value": 10}, format="json")
    response = tenant.client.post(f"/api/leads/{lead.id}/outcome", {"outcome": "lost"}, format="json")
    assert response.status_code == 201
    outcome = Outcome.objects.get(lead=lead)
    assert (outcome.outcome, outcome.value, outcome.reason) == ("lost", None, "")
    assert abs(outcome.occurred_at - timezone.now()) < timedelta(seconds=5)  # `at` defaults to now
    assert Outcome.objects.count() == 1


def test_clearing_an_outcome_leaves_the_lead_without_one(tenant, lead):
    tenant.client.post(f"/api/leads/{lead.id}/outcome", {"outcome": "won"}, format="json")
    assert tenant.client.delete(f"/api/leads/{lead.id}/outcome").status_code == 204
    assert not Outcome.objects.exists()
    response = tenant.client.get(f"/api/leads/{lead.id}/outcome")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert tenant.client.delete(f"/api/leads/{lead.id}/outcome").status_code == 204  # none left: still 204


def test_a_secret_key_is_the_outcomes_author(tenant, lead):
    from accounts.services import secret_key_create

    key, secret = secret_key_create(project=tenant.project)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = client.post(f"/api/leads/{lead.id}/outcome", {"outcome": "lost"}, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["author"]["type"] == "key" and response.json()["author"]["id"] == key.id


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"outcome": "maybe"}, "outcome"),
        ({}, "outcome"),
        ({"outcome": "won", "value": "12"}, "value"),
        ({"outcome": "won", "value": -1}, "value"),
        ({"outcome": "won", "value": True}, "value"),
        ({"outcome": "won", "at": 1700000000}, "at"),
        ({"outcome": "won", "at": "yesterday"}, "at"),
        ({"outcome": "won", "at": "1999-12-31T23:00:00Z"}, "at"),
        ({"outcome": "won", "reason": 7}, "reason"),
        ({"outcome": "won", "reason": "x" * 1001}, "reason"),
        ({"outcome": "won", "within": "7d"}, "within"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_stores_nothing(tenant, lead, body, field):
    response = tenant.client.post(f"/api/leads/{lead.id}/outcome", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert not Outcome.objects.exists()


def test_another_projects_lead_is_404_and_untouched(tenant, other_tenant):
    theirs = scored_lead(other_tenant.project, "bob", "signup")
    other_tenant.client.post(f"/api/leads/{theirs.id}/outcome", {"outcome": "won"}, format="json")
    assert tenant.client.post(f"/api/leads/{theirs.id}/outcome", {"outcome": "lost"}, format="json").status_code == 404
    assert tenant.client.get(f"/api/leads/{theirs.id}/outcome").status_code == 404
    assert tenant.client.delete(f"/api/leads/{theirs.id}/outcome").status_code == 404
    assert Outcome.objects.get(lead=theirs).outcome == "won"
    assert tenant.client.get("/api/outcomes").json()["count"] == 0


# --- Bulk and CSV -----------------------------------------------------------------------------------------------------


def test_bulk_stores_valid_items_by_id_email_or_external_id_and_reports_the_others(tenant, lead):
    bob = scored_lead(tenant.project, "bob", "signup", email="bob@example.com")
    cy = scored_lead(tenant.project, "cy", "signup", user_id="crm-3")
    items = [
        {"leadId": lead.id, "outcome": "won", "value": 500},
        {"email": "BOB@example.com", "outcome": "lost", "reason": "budget"},
        {"userId": "crm-3", "outcome": "won", "at": "2026-01-02T03:04:05Z"},
        {"email": "nobody@example.com", "outcome": "won"},
        {"leadId": lead.id, "email": "ann@example.com", "outcome": "won"},
        {"userId": "crm-3", "outcome": "tie"},
        "not an object",
        {"leadId": lead.id, "outcome": "lost", "extra": 1},
    ]

    response = tenant.client.post("/api/outcomes/bulk", {"outcomes": items}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["count"], body["stored"]) == (8, 3)
    assert [(r["index"], r["outcome"]["leadId"]) for r in body["results"]] == [(0, lead.id), (1, bob.id), (2, cy.id)]
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (3, "email"), (4, "email"), (5, "outcome"), (6, None), (7, "extra"),
    ]  # fmt: skip
    assert dict(Outcome.objects.values_list("lead_id", "outcome")) == {lead.id: "won", bob.id: "lost", cy.id: "won"}
    assert Outcome.objects.get(lead=cy).occurred_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_bulk_with_no_valid_item_is_400_naming_each_and_stores_nothing(tenant, lead):
    items = [{"email": "nobody@example.com", "outcome": "won"}, {"leadId": lead.id, "outcome": "maybe"}]
    response = tenant.client.post("/api/outcomes/bulk", {"outcomes": items}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error["fields"]) == {"outcomes[0].email", "outcomes[1].outcome"}
    assert not Outcome.objects.exists()


def test_bulk_keeps_the_last_item_for_a_lead_and_follows_merges(tenant, lead):
    merged = scored_lead(tenant.project, "ann-phone", "page_view")
    Lead.objects.filter(id=merged.id).update(merged_into=lead)
    items = [{"leadId": lead.id, "outcome": "lost"}, {"leadId": merged.id, "outcome": "won", "value": 3}]
    body = tenant.client.post("/api/outcomes/bulk", {"outcomes": items}, format="json").json()
    assert body["stored"] == 2 and Outcome.objects.count() == 1
    outcome = Outcome.objects.get()
    assert (outcome.lead_id, outcome.outcome, outcome.value) == (lead.id, "won", 3)


def csv_text(*rows) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


def test_a_csv_upload_stores_valid_rows_and_reports_each_bad_row_with_its_line(tenant, lead):
    scored_lead(tenant.project, "bob", "signup", email="bob@example.com")
    text = csv_text(
        ["email", "userId", "leadId", "outcome", "value", "at", "reason"],
        ["ann@example.com", "", "", "won", "1200.50", "2026-02-01T09:00:00Z", "signed, at last"],
        ["bob@example.com", "", "", "lost", "", "", ""],
        ["", "crm-404", "", "won", "", "", ""],
        ["", "", "abc", "won", "", "", ""],
        ["ann@example.com", "", "", "won", "lots", "", ""],
        ["ann@example.com", "", "", "won", "", "March", ""],
    )
    upload = SimpleUploadedFile("outcomes.csv", text.encode(), content_type="text/csv")

    response = tenant.client.post("/api/outcomes/upload", {"file": upload}, format="multipart")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["count"], body["stored"]) == (6, 2)
    assert [(e["row"], e["field"]) for e in body["errors"]] == [(4, "userId"), (5, "leadId"), (6, "value"), (7, "at")]
    ann = Outcome.objects.get(lead=lead)
    assert (ann.outcome, ann.value, ann.reason, ann.source) == ("won", Decimal("1200.50"), "signed, at last", "csv")
    assert ann.occurred_at == datetime(2026, 2, 1, 9, tzinfo=UTC)


def test_a_csv_as_json_text_works_and_a_bad_header_is_400(tenant, lead):
    text = csv_text(["leadId", "outcome"], [str(lead.id), "lost"])
    response = tenant.client.post("/api/outcomes/upload", {"csv": text}, format="json")
    assert response.status_code == 200 and Outcome.objects.get(lead=lead).outcome == "lost"

    for bad in (csv_text(["email", "result"], ["ann@example.com", "won"]), csv_text(["email"], ["ann@example.com"])):
        response = tenant.client.post("/api/outcomes/upload", {"csv": bad}, format="json")
        assert response.status_code == 400 and "file" in response.json()["error"]["fields"]
    upload = SimpleUploadedFile("x.csv", b"\xff\xfe", content_type="text/csv")
    response = tenant.client.post("/api/outcomes/upload", {"file": upload}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()["error"]["fields"]
    response = tenant.client.post("/api/outcomes/upload", {"file": upload, "other": "1"}, format="multipart")
    assert response.status_code == 400


# --- List and settings ------------------------------------------------------------------------------------------------


def test_the_list_filters_by_outcome_and_pages(tenant, lead):
    bob = scored_lead(tenant.project, "bob", "signup")
    tenant.client.post(f"/api/leads/{lead.id}/outcome", {"outcome": "won", "at": "2026-01-01T00:00:00Z"}, format="json")
    tenant.client.post(f"/api/leads/{bob.id}/outcome", {"outcome": "lost", "at": "2026-02-01T00:00:00Z"}, format="json")

    body = tenant.client.get("/api/outcomes").json()
    assert body["count"] == 2 and [o["leadId"] for o in body["results"]] == [bob.id, lead.id]  # newest first
    assert body["results"][1]["email"] == "ann@example.com"
    assert [o["leadId"] for o in tenant.client.get("/api/outcomes?outcome=won").json()["results"]] == [lead.id]
    page = tenant.client.get("/api/outcomes?pageSize=1&page=2").json()
    assert [o["leadId"] for o in page["results"]] == [lead.id] and page["next"] is None
    for bad, field in (("outcome=maybe", "outcome"), ("pageSize=0", "pageSize")):
        response = tenant.client.get(f"/api/outcomes?{bad}")
        assert response.status_code == 400 and field in response.json()["error"]["fields"]


def test_settings_default_to_contract_signed_and_only_admins_change_them(tenant):
    assert tenant.client.get("/api/predictions/settings").json() == {"wonEventType": "contract_signed"}
    member = UserFactory()
    Membership.objects.create(user=member, project=tenant.project, role=Membership.Role.MEMBER)
    response = client_for(member).put("/api/predictions/settings", {"wonEventType": "closed_won"}, format="json")
    assert response.status_code == 403 and not PredictionSettings.objects.exists()

    response = tenant.client.put("/api/predictions/settings", {"wonEventType": "closed_won"}, format="json")
    assert response.status_code == 200 and response.json() == {"wonEventType": "closed_won"}
    assert PredictionSettings.objects.get(project=tenant.project).won_event_type == "closed_won"
    response = tenant.client.put("/api/predictions/settings", {"wonEventType": "no/slashes"}, format="json")
    assert response.status_code == 400 and "wonEventType" in response.json()["error"]["fields"]


# --- With leads: the API, the list, the page, exports -----------------------------------------------------------------


def test_leads_carry_their_outcome_and_filter_by_it(tenant, lead):
    bob = scored_lead(tenant.project, "bob", "signup")
    cy = scored_lead(tenant.project, "cy", "signup")
    tenant.client.post(f"/api/leads/{lead.id}/outcome", {"outcome": "won", "value": 9.99, "at": "2026-01-01T00:00:00Z",
                                                          "reason": "yes"}, format="json")  # fmt: skip
    tenant.client.post(f"/api/leads/{bob.id}/outcome", {"outcome": "lost"}, format="json")

    one = tenant.client.get(f"/api/leads/{lead.id}").json()
    assert one["outcome"] == {"outcome": "won", "value": 9.99, "at": "2026-01-01T00:00:00Z", "reason": "yes",
                              "source": "api"}  # fmt: skip
    listed = {item["id"]: item["outcome"] for item in tenant.client.get("/api/leads").json()["results"]}
    assert listed[cy.id] is None and listed[bob.id]["outcome"] == "lost"
    for value, expected in (("won", [lead.id]), ("lost", [bob.id]), ("none", [cy.id])):
        found = [item["id"] for item in tenant.client.get(f"/api/leads?outcome={value}").json()["results"]]
        assert found == expected, value
    response = tenant.client.get("/api/leads?outcome=maybe")
    assert response.status_code == 400 and "outcome" in response.json()["error"]["fields"]

    response = tenant.client.get("/api/leads/export")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    column = rows[0].index("Outcome")
    assert sorted(row[column] for row in rows[1:]) == ["", "lost", "won"]


def test_the_leads_page_shows_a_badge_and_the_lead_page_a_card_whose_form_records_and_clears(tenant, lead):
    page = browser(tenant.owner)
    tenant.client.post(f"/api/leads/{lead.id}/outcome", {"outcome": "won"}, format="json")
    html = page.get("/leads/?outcome=won").content.decode()
    assert '<td data-facet="outcome"><span class="badge stage-qualified" data-outcome="won"' in html

    html = page.get(f"/leads/{lead.id}/").content.decode()
    assert 'id="facet-outcome"' in html and 'id="outcome-form"' in html and 'id="outcome-clear-form"' in html

    response = page.post(f"/leads/{lead.id}/outcome/", {"outcome": "lost", "value": "15.5", "at": "2026-04-01T08:30",
                                                         "reason": "went quiet"})  # fmt: skip
    assert response.status_code == 302 and response["Location"].startswith(f"/leads/{lead.id}/")
    outcome = Outcome.objects.get(lead=lead)
    assert (outcome.outcome, outcome.value, outcome.source, outcome.author) == ("lost", Decimal("15.5"), "page",
                                                                                 tenant.owner)  # fmt: skip
    assert outcome.occurred_at == datetime(2026, 4, 1, 8, 30, tzinfo=UTC)
    assert "went quiet" in page.get(f"/leads/{lead.id}/").content.decode()

    response = page.post(f"/leads/{lead.id}/outcome/", {"outcome": "maybe"})
    assert response.status_code == 302 and Outcome.objects.get(lead=lead).outcome == "lost"
    assert page.post(f"/leads/{lead.id}/outcome/clear/").status_code == 302
    assert not Outcome.objects.exists()


def test_the_page_form_is_404_for_another_projects_lead(tenant, other_tenant):
    theirs = scored_lead(other_tenant.project, "bob", "signup")
    assert browser(tenant.owner).post(f"/leads/{theirs.id}/outcome/", {"outcome": "won"}).status_code == 404
    assert browser(tenant.owner).post(f"/leads/{theirs.id}/outcome/clear/").status_code == 404
    assert not Outcome.objects.exists()


def test_the_leads_list_reads_outcomes_once_per_page(tenant, django_assert_max_num_queries):
    for name in ("a", "b", "c", "d"):
        lead_id = scored_lead(tenant.project, name, "signup").id
        tenant.client.post(f"/api/leads/{lead_id}/outcome", {"outcome": "won"}, format="json")
    tenant.client.get("/api/leads?pageSize=1")  # warm caches
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        tenant.client.get("/api/leads?pageSize=1")
    with CaptureQueriesContext(connection) as four:
        tenant.client.get("/api/leads?pageSize=4")
    assert len(four) == len(one)


# --- The project's "won" event ----------------------------------------------------------------------------------------


def test_a_contract_signed_event_records_the_lead_as_won_at_its_time_once(tenant, pipeline):
    lead_id = ingest(tenant.project, "ann", "page_view", "contract_signed", at=NOW - timedelta(hours=1))

    messages = pipeline(lead_id, again=True)  # a redelivered message changes nothing

    assert len(messages) == 1
    outcome = Outcome.objects.get(lead_id=lead_id)
    event = Event.objects.get(lead_id=lead_id, name="contract_signed")
    assert (outcome.outcome, outcome.source, outcome.occurred_at) == ("won", "event", NOW - timedelta(hours=1))
    assert outcome.source_event_id == event.id and outcome.author is None
    first = outcome.updated_at
    celery_app.tasks[PREDICTION_LEAD_CHANGES_TASK](**messages[0])
    assert Outcome.objects.get(lead_id=lead_id).updated_at == first


def test_an_outcome_recorded_after_the_event_stays_and_an_earlier_loss_turns_into_a_win(tenant, pipeline):
    ann = ingest(tenant.project, "ann", "page_view", at=NOW - timedelta(days=2))
    bob = ingest(tenant.project, "bob", "page_view", at=NOW - timedelta(days=2))
    pipeline(ann, bob)
    later, earlier = NOW - timedelta(minutes=5), NOW - timedelta(days=1)
    tenant.client.post(f"/api/leads/{ann}/outcome", {"outcome": "lost", "at": later.isoformat()}, format="json")
    tenant.client.post(f"/api/leads/{bob}/outcome", {"outcome": "lost", "at": earlier.isoformat()}, format="json")
    ingest(tenant.project, "ann", "contract_signed", at=NOW - timedelta(hours=1))
    ingest(tenant.project, "bob", "contract_signed", at=NOW - timedelta(hours=1))

    pipeline(ann, bob, again=True)

    assert Outcome.objects.get(lead_id=ann).outcome == "lost"  # recorded by hand after the event
    won = Outcome.objects.get(lead_id=bob)
    assert (won.outcome, won.source, won.occurred_at) == ("won", "event", NOW - timedelta(hours=1))


def test_the_won_event_type_is_the_projects_setting(tenant, pipeline):
    tenant.client.put("/api/predictions/settings", {"wonEventType": "closed_won"}, format="json")
    signed = ingest(tenant.project, "ann", "contract_signed")
    closed = ingest(tenant.project, "bob", "closed_won")
    pipeline(signed, closed)
    assert list(Outcome.objects.values_list("lead_id", "outcome")) == [(closed, "won")]

    tenant.client.put("/api/predictions/settings", {"wonEventType": ""}, format="json")
    pipeline(ingest(tenant.project, "cy", "closed_won"))
    assert Outcome.objects.count() == 1


def test_a_leads_events_only_mark_its_own_project(tenant, other_tenant, pipeline):
    ours = ingest(tenant.project, "ann", "contract_signed")
    theirs = ingest(other_tenant.project, "ann", "page_view")
    pipeline(ours, theirs)
    assert list(Outcome.objects.values_list("project_id", "lead_id")) == [(tenant.project.id, ours)]


# --- Merges and erasure -----------------------------------------------------------------------------------------------


def test_a_merged_away_leads_outcome_follows_the_survivor(tenant, pipeline):
    crm = ingest(tenant.project, "crm", identify({"email": "ann@acme.com"}), "signup")
    pipeline(crm)
    phone = ingest(tenant.project, "phone", "page_view")
    pipeline(phone)
    tenant.client.post(f"/api/leads/{phone}/outcome", {"outcome": "won", "value": 70}, format="json")
    ingest(tenant.project, "phone", identify({"email": "ann@acme.com"}), at=NOW + timedelta(minutes=1))

    messages = pipeline(phone)  # the phone's lead merges into the CRM's

    assert Lead.objects.get(id=phone).merged_into_id == crm
    assert any(change["kind"] == "merged" for message in messages for change in message["changes"])
    outcome = Outcome.objects.get()
    assert (outcome.lead_id, outcome.outcome, outcome.value) == (crm, "won", 70)
    assert tenant.client.get(f"/api/leads/{phone}/outcome").json()["leadId"] == crm


def test_the_survivors_later_outcome_wins_over_a_merged_leads_earlier_one(tenant, pipeline):
    crm = ingest(tenant.project, "crm", identify({"email": "ann@acme.com"}), "signup")
    phone = ingest(tenant.project, "phone", "page_view")
    pipeline(crm, phone)
    tenant.client.post(f"/api/leads/{phone}/outcome", {"outcome": "won", "at": "2026-01-01T00:00:00Z"}, format="json")
    tenant.client.post(f"/api/leads/{crm}/outcome", {"outcome": "lost", "at": "2026-02-01T00:00:00Z"}, format="json")
    ingest(tenant.project, "phone", identify({"email": "ann@acme.com"}), at=NOW + timedelta(minutes=1))
    pipeline(phone)
    assert list(Outcome.objects.values_list("lead_id", "outcome")) == [(crm, "lost")]


def test_erasing_a_lead_erases_its_outcome_and_its_merged_leads(tenant, other_tenant, lead):
    assert "predictions.services.lead_outcomes_erase" in settings.LEADPULSE_LEAD_ERASERS
    merged = scored_lead(tenant.project, "ann-phone", "page_view")
    kept = scored_lead(tenant.project, "bob", "signup")
    theirs = scored_lead(other_tenant.project, "ann", "signup")
    for one in (lead, merged, kept, theirs):
        Outcome.objects.create(project_id=one.project_id, lead=one, outcome="won", occurred_at=NOW, source="api")
    Lead.objects.filter(id=merged.id).update(merged_into=lead)

    assert lead_erase(lead=lead) == 2

    assert sorted(Outcome.objects.values_list("lead_id", flat=True)) == sorted([kept.id, theirs.id])


def test_a_won_event_past_the_changes_first_500_events_still_counts(tenant, pipeline):
    lead_id = ingest(tenant.project, "ann", *(["page_view"] * 500), "contract_signed")

    messages = pipeline(lead_id)

    assert [len(change["eventIds"]) for message in messages for change in message["changes"]] == [500]
    outcome = Outcome.objects.get(lead_id=lead_id)
    assert (outcome.outcome, outcome.occurred_at) == ("won", NOW)


def test_the_won_event_lookup_reads_the_batchs_events_not_the_projects(tenant, other_tenant):
    """A batch's won events are found by the events' ids. With the project in the condition, PostgreSQL's planner
    went through the project's index whenever its statistics thought the project small (a new project growing
    between two autoanalyzes, or a log never analyzed yet) and read every event of the project, per batch."""
    from django.db import connection

    from predictions.services import _won_events_record

    def log(project, prefix: str, count: int) -> None:
        events_ingest(
            project_id=project.id,
            events=[CanonicalEvent(event_id=f"{prefix}-{i}", anonymous_id=f"{prefix}-{i % 20}", name="page_view",
                                   timestamp=NOW - timedelta(seconds=i)) for i in range(count)],
        )  # fmt: skip

    log(other_tenant.project, "old", 800)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE ingest_event")  # the statistics know the other project's events only
    log(tenant.project, "new", 500)
    lead_id = ingest(tenant.project, "ann", "page_view", "contract_signed")
    batch = set(Event.objects.filter(lead_id=lead_id).values_list("id", flat=True))

    with statements_matching('"ingest_event"."name" =') as statements:
        assert _won_events_record(project_id=tenant.project.id, event_ids=batch, lead_ids=set(), name="contract_signed")
    assert len(statements) == 1
    assert rows_read(statements[0], "ingest_event") < 50  # the batch's 2 events (and their index entries), not 500
    assert Outcome.objects.get(lead_id=lead_id).outcome == "won"
