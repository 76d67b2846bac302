"""The log is the source of truth: re-scores, late events, versions, model switches and erasure see adjustments."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ingest.lead_tallies import lead_tallies_drift
from ingest.models import Event, Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from scoring import engine
from scoring.models import ScoreHistory, ScoringRule
from scoring.services import lead_score
from scoring.services.fold import primary_model
from tests.scoring.test_versions import folded_history, rule_id, run_jobs, scored

pytestmark = pytest.mark.django_db


def adjust(tenant, lead, **body):
    response = tenant.client.post(f"/api/leads/{lead.id}/adjustments", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_a_rescore_refolds_the_adjustment_and_leaves_the_same_history(tenant):
    lead = scored(tenant.project, "r", "signup", "demo_request")  # 80
    adjust(tenant, lead, points=-20, reason="student")
    before = (Lead.objects.get(id=lead.id).current_score, folded_history(lead))
    assert before[0] == 60
    # when a rule changes (v2) and the project is re-scored from the log
    tenant.client.patch(f"/api/rules/{rule_id(tenant.project, 'signup')}", {"points": 40}, format="json")
    run_jobs(tenant.project)
    # then the adjustment is applied again, on the new rules' score
    lead.refresh_from_db()
    assert lead.current_score == 70
    rows = ScoreHistory.objects.filter(lead=lead, event__type=Event.Type.ADJUSTMENT, reason="rule")
    assert [(row.delta, row.details["adjustment"]["reason"], row.version) for row in rows] == [(-20, "student", 2)]
    # and back to v1's rules: exactly the history and score before
    tenant.client.patch(f"/api/rules/{rule_id(tenant.project, 'signup')}", {"points": 30}, format="json")
    run_jobs(tenant.project)
    after = (Lead.objects.get(id=lead.id).current_score, folded_history(lead))
    assert after[0] == before[0]
    assert [row[2:] for row in after[1]] == [row[2:] for row in before[1]]


def test_the_score_under_a_past_version_replays_the_adjustment(tenant):
    lead = scored(tenant.project, "v", "signup", "demo_request")
    adjust(tenant, lead, setTo=5, reason="reset")
    tenant.client.patch(f"/api/rules/{rule_id(tenant.project, 'page_view')}", {"points": 1}, format="json")  # v2
    past = tenant.client.get(f"/api/leads/{lead.id}/score?version=1").json()
    assert past["score"] == 5 and past["engagement"] == 5 and past["eventsFolded"] == 3


def test_a_late_event_before_the_adjustment_refolds_through_it(tenant):
    lead = scored(tenant.project, "late", "signup")  # 30, two days ago
    adjust(tenant, lead, setTo=0, reason="reset")
    assert Lead.objects.get(id=lead.id).current_score == 0
    # when an older event arrives after the adjustment was scored
    older = timezone.now() - timedelta(days=1, hours=23)
    events_ingest(project_id=tenant.project.id, events=[CanonicalEvent(
        event_id="late-old", name="demo_request", anonymous_id="late", timestamp=older,
    )])  # fmt: skip
    lead_score(lead_id=lead.id)
    # then the reset still comes after it (the fold replays the log in timestamp order)
    assert Lead.objects.get(id=lead.id).current_score == 0
    # and an event after the reset counts from 0
    events_ingest(project_id=tenant.project.id, events=[CanonicalEvent(
        event_id="late-new", name="page_view", anonymous_id="late", timestamp=timezone.now(),
    )])  # fmt: skip
    assert lead_score(lead_id=lead.id).current_score == 5


def test_switching_the_primary_model_keeps_each_adjustment_on_its_model(tenant):
    lead = scored(tenant.project, "m", "signup", "demo_request")
    tenant.client.post("/api/models", {"key": "sales", "name": "Sales", "copyFrom": "default"}, format="json")
    run_jobs(tenant.project)
    adjust(tenant, lead, points=-50, reason="not for sales", model="sales")
    adjust(tenant, lead, points=7, reason="primary at the time")  # stored as "default", the primary now
    # when sales becomes the primary model and the project is re-scored
    tenant.client.post("/api/models/sales/primary", {}, format="json")
    run_jobs(tenant.project)
    lead.refresh_from_db()
    # then the primary (sales) has its own adjustment only, and default keeps the other
    scores = tenant.client.get(f"/api/leads/{lead.id}").json()["scores"]
    assert lead.current_score == 30 == scores["sales"]["score"]
    assert scores["default"]["score"] == 87
    stored = Event.objects.filter(lead=lead, type=Event.Type.ADJUSTMENT).order_by("timestamp")
    assert [event.properties["model"] for event in stored] == ["sales", "default"]


def test_erasing_a_lead_erases_its_adjustments(tenant):
    lead = scored(tenant.project, "gdpr", "signup")
    adjust(tenant, lead, points=5, reason="contains a name: Ada")
    assert tenant.client.delete(f"/api/leads/{lead.id}").status_code == 204
    assert not Event.objects.filter(type=Event.Type.ADJUSTMENT).exists()
    assert not ScoreHistory.objects.filter(details__has_key="adjustment").exists()
    assert not Event.objects.filter(properties__reason__contains="Ada").exists()


def test_the_json_export_holds_the_adjustments(tenant):
    lead = scored(tenant.project, "export", "signup")
    adjust(tenant, lead, points=5, reason="met at a fair")
    names = [event["name"] for event in tenant.client.get(f"/api/leads/{lead.id}/export").json()["events"]]
    assert names == ["signup", engine.ADJUSTMENT_NAME]


def test_a_deleted_rule_never_matched_adjustments_so_nothing_is_lost(tenant):
    # a `*` rule: matches every event but adjustments
    primary = primary_model(tenant.project)
    ScoringRule.objects.create(project=tenant.project, model=primary, name="Any", event_type="*", points=1)
    lead = scored(tenant.project, "w", "signup")
    body = adjust(tenant, lead, points=10, reason="x")
    assert body["score"] == 30 + 1 + 10


def test_a_merge_carries_the_merged_lead_s_adjustments_to_the_survivor(tenant):
    start = timezone.now() - timedelta(days=1)
    known = scored(tenant.project, "crm-1", "demo_request")  # 50
    events_ingest(project_id=tenant.project.id, events=[CanonicalEvent(
        event_id="k-id", name="identify", type="identify", anonymous_id="crm-1", properties={"email": "b@x.io"},
        timestamp=start,
    )])  # fmt: skip
    lead_score(lead_id=known.id)
    device = scored(tenant.project, "browser", "signup")  # 30
    adjust(tenant, known, points=-20, reason="old customer")
    adjust(tenant, device, points=10, reason="came to the booth")
    # when the device identifies with the known lead's email
    events_ingest(project_id=tenant.project.id, events=[CanonicalEvent(
        event_id="d-id", name="identify", type="identify", anonymous_id="browser", properties={"email": "B@x.io"},
        timestamp=start + timedelta(minutes=5),
    )])  # fmt: skip
    lead_score(lead_id=device.id)
    # then the survivor folds both leads' events and both adjustments, and the tallies follow
    assert Lead.objects.get(id=device.id).merged_into_id == known.id
    survivor = Lead.objects.get(id=known.id)
    assert survivor.current_score == 50 + 30 - 20 + 10
    listed = tenant.client.get(f"/api/leads/{device.id}/adjustments").json()  # the merged id finds the survivor
    assert sorted(a["reason"] for a in listed["results"]) == ["came to the booth", "old customer"]
    assert lead_tallies_drift(project_id=tenant.project.id) == {}
