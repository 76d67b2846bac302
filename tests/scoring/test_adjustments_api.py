"""Manual adjustments through the API: POST/GET /api/leads/{id}/adjustments, the timeline and the breakdown."""

import pytest
from rest_framework.test import APIClient

from accounts.models import Membership
from accounts.services import secret_key_create
from ingest.lead_tallies import lead_tallies, lead_tallies_drift
from ingest.models import Event, EventName, Lead
from ingest.rollups import rollups_drift
from scoring.models import LeadScore, ScoreHistory, ScoringModel
from scoring.services import rule_create
from scoring.services.models import scoring_model_create
from tests.accounts.factories import UserFactory
from tests.conftest import client_for
from tests.scoring.factories import scored_lead

pytestmark = pytest.mark.django_db


@pytest.fixture
def lead(tenant):
    return scored_lead(tenant.project, "adj-1", "signup", "demo_request")  # 30 + 50


def adjust(client, lead, **body):
    return client.post(f"/api/leads/{lead.id}/adjustments", body, format="json")


def test_points_are_added_by_the_worker_s_fold_and_the_answer_carries_the_new_score(tenant, lead):
    # when
    response = adjust(tenant.client, lead, points=-20, reason="disqualified, student")
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["score"] == 60 and body["stage"] == "qualified"
    assert body["lead"]["currentScore"] == 60 and body["lead"]["engagementScore"] == 60
    adjustment = body["adjustment"]
    assert adjustment["points"] == -20 and adjustment["setTo"] is None and adjustment["model"] == "default"
    assert adjustment["scored"] and adjustment["scoreDelta"] == -20 and adjustment["newScore"] == 60
    assert adjustment["author"] == {"type": "user", "id": tenant.owner.id, "label": tenant.owner.email}
    assert adjustment["label"] == f"Manual \u221220 by {tenant.owner.email}: disqualified, student"
    # the log holds it, folded (processed) like any event, with a history row that says what it was
    event = Event.objects.get(lead=lead, type=Event.Type.ADJUSTMENT)
    assert event.name == "$adjustment" and event.processed_at is not None
    assert event.event_id == adjustment["eventId"]
    assert event.properties == {"points": -20, "reason": "disqualified, student", "model": "default",
                                "author": adjustment["author"]}  # fmt: skip
    row = ScoreHistory.objects.get(event=event)
    assert row.details["adjustment"] == {"points": -20, "reason": "disqualified, student",
                                         "author": adjustment["author"]}  # fmt: skip
    assert row.details["rules"] == []


def test_set_to_resets_the_engagement_and_the_fit_still_adds(tenant, lead):
    Lead.objects.filter(pk=lead.pk).update(traits={"plan": "pro"})
    pro = [{"path": "traits.plan", "op": "eq", "value": "pro"}]
    rule_create(project=tenant.project, data={"name": "Pro", "kind": "fit", "points": 15, "conditions": pro})
    # when
    body = adjust(tenant.client, lead, setTo=0, reason="reset after bounce").json()
    # then
    assert body["lead"]["engagementScore"] == 0 and body["lead"]["fitScore"] == 15 and body["score"] == 15
    assert body["adjustment"]["label"] == f"Manual reset to 0 by {tenant.owner.email}: reset after bounce"


def test_a_member_can_adjust_and_so_can_a_secret_key(tenant, lead):
    member = UserFactory()
    Membership.objects.create(user=member, project=tenant.project, role=Membership.Role.MEMBER)
    assert adjust(client_for(member), lead, points=5, reason="met at a fair").status_code == 201
    key, raw = secret_key_create(project=tenant.project)
    key_client = APIClient()
    key_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    body = adjust(key_client, lead, points=5, reason="CRM sync").json()
    assert body["adjustment"]["author"] == {"type": "key", "id": key.id, "label": f"secret key {key.prefix}\u2026"}
    assert body["score"] == 90


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "x"}, "points"),
        ({"points": 5, "setTo": 0, "reason": "x"}, "setTo"),
        ({"points": 0, "reason": "x"}, "points"),
        ({"points": 10001, "reason": "x"}, "points"),
        ({"points": "5", "reason": "x"}, "points"),
        ({"points": 1.5, "reason": "x"}, "points"),
        ({"setTo": -1, "reason": "x"}, "setTo"),
        ({"points": 5}, "reason"),
        ({"points": 5, "reason": "   "}, "reason"),
        ({"points": 5, "reason": "x" * 501}, "reason"),
        ({"points": 5, "reason": "x", "model": "nope"}, "model"),
        ({"points": 5, "reason": "x", "model": ""}, "model"),
        ({"points": 5, "reason": "x", "when": "now"}, "when"),
    ],
)
def test_bad_bodies_are_400s_naming_the_field_and_store_nothing(tenant, lead, body, field):
    response = adjust(tenant.client, lead, **body)
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert not Event.objects.filter(type=Event.Type.ADJUSTMENT).exists()


def test_another_project_s_lead_or_model_is_not_found(tenant, other_tenant, lead):
    assert adjust(other_tenant.client, lead, points=5, reason="x").status_code == 404
    assert other_tenant.client.get(f"/api/leads/{lead.id}/adjustments").status_code == 404
    # a key of the other project's models is no model of this one
    scoring_model_create(project=other_tenant.project, data={"key": "theirs", "name": "Theirs"})
    response = adjust(tenant.client, lead, points=5, reason="x", model="theirs")
    assert response.status_code == 400 and "model" in response.json()["error"]["fields"]
    assert not Event.objects.filter(type=Event.Type.ADJUSTMENT).exists()


def test_adjustments_are_rate_limited_like_every_api_write(tenant, lead, settings):
    settings.LEADPULSE_RATE_API = "2/m"
    assert adjust(tenant.client, lead, points=1, reason="one").status_code == 201
    assert adjust(tenant.client, lead, points=1, reason="two").status_code == 201
    response = adjust(tenant.client, lead, points=1, reason="three")
    assert response.status_code == 429 and response.json()["error"]["code"] == "rate_limited"
    assert Event.objects.filter(type=Event.Type.ADJUSTMENT).count() == 2


def test_a_named_model_is_adjusted_alone(tenant, lead):
    primary = ScoringModel.objects.get(project=tenant.project, is_primary=True)
    other = scoring_model_create(project=tenant.project, data={"key": "sales", "name": "Sales"}, copy_from=primary)
    adjust(tenant.client, lead, points=1, reason="fold every model")  # folds the new model from the log too
    before = LeadScore.objects.get(lead=lead, model=other).score
    # when
    body = adjust(tenant.client, lead, points=-30, reason="not a sales fit", model="sales").json()
    # then
    assert body["adjustment"]["model"] == "sales" and body["score"] == before - 30
    assert LeadScore.objects.get(lead=lead, model=other).score == before - 30
    assert body["lead"]["currentScore"] == 81  # the primary model ignores it
    assert body["lead"]["scores"]["sales"]["score"] == before - 30


def test_list_timeline_and_breakdown_show_the_adjustment(tenant, lead):
    adjust(tenant.client, lead, points=-20, reason="disqualified, student")
    adjust(tenant.client, lead, setTo=10, reason="start over")
    # the list, newest first
    results = tenant.client.get(f"/api/leads/{lead.id}/adjustments").json()["results"]
    assert [r["reason"] for r in results] == ["start over", "disqualified, student"]
    assert results[0]["setTo"] == 10 and results[0]["newScore"] == 10 and results[0]["scoreDelta"] == -50
    # the timeline marks them
    events = tenant.client.get(f"/api/leads/{lead.id}/timeline").json()["events"]
    labels = [e["adjustment"]["label"] if e["adjustment"] else e["eventType"] for e in events]
    assert labels == ["signup", "demo_request", f"Manual \u221220 by {tenant.owner.email}: disqualified, student",
                      f"Manual reset to 10 by {tenant.owner.email}: start over"]  # fmt: skip
    # the breakdown adds up with them
    breakdown = tenant.client.get(f"/api/leads/{lead.id}/score-breakdown").json()
    assert [a["reason"] for a in breakdown["adjustments"]] == ["disqualified, student", "start over"]
    assert breakdown["adjustmentPoints"] == -20 + (10 - 60)
    rules = sum(rule["points"] for rule in breakdown["rules"])
    assert rules + breakdown["adjustmentPoints"] + breakdown["clampAdjustment"] + breakdown[
        "decayBetweenEvents"] == breakdown["foldScore"] == 10  # fmt: skip


def test_adjustments_are_not_activity(tenant, lead):
    before = Lead.objects.get(pk=lead.pk)
    adjust(tenant.client, lead, points=5, reason="x")
    after = Lead.objects.get(pk=lead.pk)
    # neither the last-event time nor the 24-hour velocity move; the event analytics do not count it
    assert after.last_event_at == before.last_event_at and after.events_last_24h == 2
    assert not EventName.objects.filter(project=tenant.project, name="$adjustment").exists()
    overview = tenant.client.get("/api/analytics/dashboard").json()
    assert "$adjustment" not in str(overview)
    assert tenant.client.get(f"/api/leads/{lead.id}/intelligence").json()["velocity"] == 2
    # the rollups stay exact (they count no adjustment); the lead tallies follow the score it moved
    assert rollups_drift(project_id=tenant.project.id) == {}
    assert lead_tallies_drift(project_id=tenant.project.id) == {}
    assert lead_tallies(project_id=tenant.project.id)["score_total"] == 85


def test_no_event_received_automation_fires_on_an_adjustment(tenant, lead):
    from automations import services as automations
    from core.contracts import LeadChange

    automations.automation_create(project=tenant.project, data={
        "name": "Any event", "trigger": "event_received", "trigger_config": {"eventType": "*"},
        "action": "add_tag", "action_config": {"tag": "seen"}})  # fmt: skip
    adjust(tenant.client, lead, points=5, reason="x")
    adjustment = Event.objects.get(type=Event.Type.ADJUSTMENT)
    signup = Event.objects.get(lead=lead, name="signup")

    def change(*events: Event) -> LeadChange:
        return LeadChange.from_message({
            "kind": "scored", "projectId": tenant.project.id, "leadId": lead.id, "oldScore": 80, "newScore": 85,
            "oldStage": "qualified", "newStage": "qualified", "velocity": 2, "eventIds": [e.id for e in events],
            "path": [[80, "qualified"], [85, "qualified"]],
        })  # fmt: skip

    assert automations.lead_change_handle(change=change(adjustment)) == 0
    assert automations.lead_change_handle(change=change(signup)) == 1  # the same trigger, on an event the lead sent


# Idempotency: a client's retry (a timeout, a double click) makes no second adjustment.


def keyed(client, lead, key, **body):
    return client.post(f"/api/leads/{lead.id}/adjustments", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_retry_with_the_same_idempotency_key_answers_with_the_first_adjustment(tenant, lead):
    first = keyed(tenant.client, lead, "retry-key-0001", points=-20, reason="student")
    again = keyed(tenant.client, lead, "retry-key-0001", points=-20, reason="student")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["adjustment"]["eventId"] == first.json()["adjustment"]["eventId"]
    assert again.json()["score"] == first.json()["score"] == 60  # applied once
    assert Event.objects.filter(lead=lead, type=Event.Type.ADJUSTMENT).count() == 1
    # without a key, every request is a new adjustment
    assert adjust(tenant.client, lead, points=-20, reason="student").json()["score"] == 40


@pytest.mark.parametrize(
    ("other", "field"),
    [
        ({"points": -30, "reason": "student"}, "Idempotency-Key"),
        ({"setTo": 0, "reason": "student"}, "Idempotency-Key"),
        ({"points": -20, "reason": "another reason"}, "Idempotency-Key"),
    ],
)
def test_the_same_key_for_another_adjustment_is_a_409_and_changes_nothing(tenant, lead, other, field):
    keyed(tenant.client, lead, "retry-key-0002", points=-20, reason="student")
    response = keyed(tenant.client, lead, "retry-key-0002", **other)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_conflict"
    assert response.json()["error"]["fields"].keys() == {field}
    assert Event.objects.filter(lead=lead, type=Event.Type.ADJUSTMENT).count() == 1
    assert Lead.objects.get(pk=lead.pk).current_score == 60


def test_the_same_key_on_another_lead_is_a_409(tenant, lead):
    other = scored_lead(tenant.project, "adj-2", "signup")
    keyed(tenant.client, lead, "retry-key-0003", points=-20, reason="student")
    assert keyed(tenant.client, other, "retry-key-0003", points=-20, reason="student").status_code == 409
    assert Event.objects.filter(lead=other, type=Event.Type.ADJUSTMENT).count() == 0


@pytest.mark.parametrize("key", ["short", "has space in it", "é-not-ascii-key", "x" * 101])
def test_a_malformed_idempotency_key_is_a_400_naming_it(tenant, lead, key):
    response = keyed(tenant.client, lead, key, points=-20, reason="student")
    assert response.status_code == 400 and response.json()["error"]["fields"].keys() == {"Idempotency-Key"}
    assert Event.objects.filter(lead=lead, type=Event.Type.ADJUSTMENT).count() == 0
