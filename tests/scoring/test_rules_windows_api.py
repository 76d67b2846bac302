"""Window rules on the API: rules, drafts, versions, rollback and the score under a version, against PostgreSQL."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ingest.models import Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from scoring.models import RescoreJob, RuleSetVersion, ScoringRule
from scoring.selectors import documents_diff_lines
from scoring.services import lead_score, rescore_job_run
from scoring.services.fold import primary_model

pytestmark = pytest.mark.django_db

BASE = (timezone.now() - timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
WINDOWED = {
    "name": "Pricing, 3 times a week",
    "eventType": "pricing_page_visit",
    "points": 20,
    "window": {"count": 3, "days": 7},
}


def run_jobs(project):
    for job in RescoreJob.objects.filter(project=project, status__in=["pending", "running"]).order_by("id"):
        for index in range(job.slice_count):
            while rescore_job_run(job_id=job.id, slice_index=index):
                pass


def visited(project, anonymous_id, times, *, hours=5):
    """A lead with `times` pricing visits `hours` apart (the project's default rules give 15 each)."""
    events_ingest(
        project_id=project.id,
        events=[
            CanonicalEvent(event_id=f"{anonymous_id}-{i}", name="pricing_page_visit", anonymous_id=anonymous_id,
                           timestamp=BASE + timedelta(hours=hours * i))
            for i in range(times)
        ],
    )  # fmt: skip
    return lead_score(lead_id=Lead.objects.get(project=project, anonymous_id=anonymous_id).id)


def without_default_pricing(project):
    """Leave only the window rule to score pricing visits."""
    ScoringRule.objects.filter(model=primary_model(project), event_type="pricing_page_visit").delete()


def test_a_window_rule_is_created_read_changed_and_cleared(tenant):
    # when
    response = tenant.client.post("/api/rules", WINDOWED, format="json")

    # then
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["window"] == {"count": 3, "days": 7}
    rule = ScoringRule.objects.get(id=created["id"], project=tenant.project)
    assert (rule.window_count, rule.window_days) == (3, 7)
    assert tenant.client.get(f"/api/rules/{rule.id}").json()["window"] == {"count": 3, "days": 7}
    assert next(r for r in tenant.client.get("/api/rules").json()["results"] if r["id"] == rule.id) == created

    changed = tenant.client.patch(f"/api/rules/{rule.id}", {"window": {"count": 2, "days": 1}}, format="json")
    assert changed.status_code == 200 and changed.json()["window"] == {"count": 2, "days": 1}
    rule.refresh_from_db()
    assert (rule.window_count, rule.window_days) == (2, 1)

    # a PUT without a window keeps it; null clears it
    kept = tenant.client.put(f"/api/rules/{rule.id}", {**WINDOWED, "window": None} | {"points": 5}, format="json")
    assert kept.status_code == 200 and kept.json()["window"] is None
    rule.refresh_from_db()
    assert (rule.window_count, rule.window_days, rule.points) == (None, None, 5)
    # other rules have none
    assert {r["window"] for r in tenant.client.get("/api/rules").json()["results"] if r["id"] != rule.id} == {None}


@pytest.mark.parametrize(
    ("window", "field"),
    [
        ("7d", "window"),
        (7, "window"),
        ([3, 7], "window"),
        ({"count": 0, "days": 7}, "window.count"),
        ({"count": 101, "days": 7}, "window.count"),
        ({"count": 2.5, "days": 7}, "window.count"),
        ({"count": True, "days": 7}, "window.count"),
        ({"count": "3", "days": 7}, "window.count"),
        ({"days": 7}, "window.count"),
        ({"count": 3, "days": 0}, "window.days"),
        ({"count": 3, "days": 366}, "window.days"),
        ({"count": 3, "days": None}, "window.days"),
        ({"count": 3}, "window.days"),
        ({"count": 3, "days": 7, "hours": 2}, "window.hours"),
    ],
)
def test_a_bad_window_is_400_naming_the_field_and_stores_nothing(tenant, window, field):
    before = ScoringRule.objects.filter(project=tenant.project).count()

    response = tenant.client.post("/api/rules", {**WINDOWED, "window": window}, format="json")

    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["message"].startswith(f"{field}: "), error
    assert list(error["fields"]) == ["window"]
    assert ScoringRule.objects.filter(project=tenant.project).count() == before


def test_a_whole_number_sent_as_a_float_is_taken(tenant):
    response = tenant.client.post("/api/rules", {**WINDOWED, "window": {"count": 3.0, "days": 7}}, format="json")
    assert response.status_code == 201 and response.json()["window"] == {"count": 3, "days": 7}


def test_only_engagement_rules_take_a_window(tenant):
    fit = {"kind": "fit", "points": 10, "conditions": [{"path": "traits.plan", "op": "eq", "value": "pro"}]}

    response = tenant.client.post("/api/rules", {**fit, "window": {"count": 2, "days": 7}}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"window": ["Only engagement rules take a window."]}
    # nor may a windowed rule become a fit rule
    windowed = tenant.client.post("/api/rules", WINDOWED, format="json").json()
    response = tenant.client.patch(f"/api/rules/{windowed['id']}", {"kind": "fit", **fit}, format="json")
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["window"]
    # a fit rule with a null window is fine
    assert tenant.client.post("/api/rules", {**fit, "window": None}, format="json").status_code == 201


def test_a_window_rule_scores_and_rescores_as_the_fold_says(tenant):
    without_default_pricing(tenant.project)
    lead = visited(tenant.project, "v", 4)
    assert lead.current_score == 0  # no rule scores pricing visits now

    tenant.client.post("/api/rules", WINDOWED, format="json")
    run_jobs(tenant.project)

    # the third visit gives 20; the fourth, the same week, nothing
    assert Lead.objects.get(id=lead.id).current_score == 20
    breakdown = tenant.client.get(f"/api/leads/{lead.id}/score-breakdown").json()
    assert [(r["name"], r["timesApplied"], r["points"], r["window"]) for r in breakdown["rules"]] == [
        ("Pricing, 3 times a week", 1, 20, {"count": 3, "days": 7})
    ]


def test_versions_carry_the_window_and_a_rollback_restores_it(tenant):
    without_default_pricing(tenant.project)
    lead = visited(tenant.project, "v", 4)
    rule = tenant.client.post("/api/rules", WINDOWED, format="json").json()  # v2
    run_jobs(tenant.project)
    assert Lead.objects.get(id=lead.id).current_score == 20
    tenant.client.patch(f"/api/rules/{rule['id']}", {"window": {"count": 1, "days": 30}}, format="json")  # v3
    run_jobs(tenant.project)
    assert Lead.objects.get(id=lead.id).current_score == 20  # the first visit now, then a month's rest
    tenant.client.patch(f"/api/rules/{rule['id']}", {"window": None}, format="json")  # v4: every visit
    run_jobs(tenant.project)
    assert Lead.objects.get(id=lead.id).current_score == 80

    # the documents carry it, on the wire and as stored
    v2 = tenant.client.get("/api/models/default/versions/2").json()["document"]
    assert next(r for r in v2["rules"] if r["id"] == rule["id"])["window"] == {"count": 3, "days": 7}
    stored = RuleSetVersion.objects.get(model=primary_model(tenant.project), number=2).document
    assert next(r for r in stored["rules"] if r["id"] == rule["id"])["window_count"] == 3
    diff = tenant.client.get("/api/models/default/versions/2/diff/3").json()
    assert diff["changed"] == [
        {"id": rule["id"], "fields": {"window": {"from": {"count": 3, "days": 7}, "to": {"count": 1, "days": 30}}}}
    ]
    lines = documents_diff_lines(
        before=stored, after=RuleSetVersion.objects.get(model=primary_model(tenant.project), number=4).document
    )
    assert lines["changed"] == ["Pricing, 3 times a week: window 3\u00d7 in 7 days \u2192 every time"]

    # the score under v2, recomputed from the log
    assert tenant.client.get(f"/api/leads/{lead.id}/score?version=2").json()["score"] == 20

    # when: rolled back to v2
    response = tenant.client.post("/api/models/default/versions/2/rollback", {}, format="json")
    assert response.status_code == 201
    run_jobs(tenant.project)

    # then the window is back, and so is the score
    row = ScoringRule.objects.get(id=rule["id"])
    assert (row.window_count, row.window_days) == (3, 7)
    assert Lead.objects.get(id=lead.id).current_score == 20


def test_a_version_published_before_windows_rolls_back_to_no_window(tenant):
    rule = tenant.client.post("/api/rules", WINDOWED, format="json").json()
    version = RuleSetVersion.objects.get(model=primary_model(tenant.project), number=2)
    # as documents were before windows: no window fields
    version.document["rules"] = [
        {k: v for k, v in r.items() if k not in ("window_count", "window_days")} for r in version.document["rules"]
    ]
    version.save(update_fields=["document"])
    tenant.client.patch(f"/api/rules/{rule['id']}", {"points": 1}, format="json")

    detail = tenant.client.get("/api/models/default/versions/2").json()["document"]
    assert next(r for r in detail["rules"] if r["id"] == rule["id"])["window"] is None
    assert tenant.client.get("/api/models/default/versions/2/diff/3").status_code == 200
    assert tenant.client.post("/api/models/default/versions/2/rollback", {}, format="json").status_code == 201

    row = ScoringRule.objects.get(id=rule["id"])
    assert (row.window_count, row.window_days, row.points) == (None, None, 20)


def test_a_draft_takes_a_window_validated_like_a_rule(tenant):
    without_default_pricing(tenant.project)
    visited(tenant.project, "v", 4)
    document = tenant.client.get("/api/models/default/versions/1").json()["document"]
    document["rules"] = [r for r in document["rules"] if r["eventType"] != "pricing_page_visit"]  # as live now

    bad = {**document, "rules": [*document["rules"], {**WINDOWED, "window": {"count": 3, "days": 0}}]}
    response = tenant.client.put("/api/models/default/draft", bad, format="json")
    assert response.status_code == 400
    position = len(document["rules"])
    assert response.json()["error"]["message"].startswith(f"rules[{position}].window.days: ")
    fit = {"kind": "fit", "points": 1, "conditions": [{"path": "email", "op": "exists"}]}
    fit["window"] = {"count": 2, "days": 2}
    response = tenant.client.put("/api/models/default/draft", {**document, "rules": [fit]}, format="json")
    assert response.status_code == 400 and response.json()["error"]["message"].startswith("rules[0].window: ")

    good = {**document, "rules": [*document["rules"], WINDOWED]}
    saved = tenant.client.put("/api/models/default/draft", good, format="json")
    assert saved.status_code == 200
    assert saved.json()["document"]["rules"][-1]["window"] == {"count": 3, "days": 7}
    preview = tenant.client.post("/api/models/default/draft/preview").json()
    assert preview["scoreChanged"] == 1 and preview["topMovers"][0]["to"] == 20

    assert tenant.client.post("/api/models/default/draft/publish", {}, format="json").status_code == 201
    live = ScoringRule.objects.get(model=primary_model(tenant.project), event_type="pricing_page_visit")
    assert (live.window_count, live.window_days) == (3, 7)


def test_the_rules_preview_folds_a_proposed_window_rule(tenant):
    without_default_pricing(tenant.project)
    visited(tenant.project, "v", 4)

    response = tenant.client.post("/api/rules/preview", {"rules": [WINDOWED]}, format="json")

    assert response.status_code == 200, response.json()
    assert [(m["from"], m["to"]) for m in response.json()["topMovers"]] == [(0, 20)]


def test_a_window_rule_and_adjustments_replay_in_versions_chunked_scores_and_a_rollback(tenant, settings):
    without_default_pricing(tenant.project)
    rule = tenant.client.post("/api/rules", WINDOWED, format="json").json()  # v2
    lead = visited(tenant.project, "wa", 2)  # two visits: no award yet
    adjust = {"points": 7, "reason": "met at a fair"}
    assert tenant.client.post(f"/api/leads/{lead.id}/adjustments", adjust, format="json").status_code == 201
    # when a late third visit (before the adjustment) arrives: the refold awards the window under the adjustment
    events_ingest(project_id=tenant.project.id, events=[CanonicalEvent(
        event_id="wa-late", name="pricing_page_visit", anonymous_id="wa", timestamp=BASE + timedelta(hours=10),
    )])  # fmt: skip
    lead_score(lead_id=lead.id)
    assert Lead.objects.get(id=lead.id).current_score == 27
    # then the score under v2, folded a page of two events at a time, is the live one
    settings.LEADPULSE_SCORE_CHUNK_EVENTS = 2
    at_v2 = tenant.client.get(f"/api/leads/{lead.id}/score?version=2").json()
    assert (at_v2["score"], at_v2["engagement"], at_v2["eventsFolded"]) == (27, 27, 4)
    # and v3 (no window: every visit) and a rollback to v2 keep the adjustment
    tenant.client.patch(f"/api/rules/{rule['id']}", {"window": None}, format="json")  # v3
    run_jobs(tenant.project)
    assert Lead.objects.get(id=lead.id).current_score == 67
    assert tenant.client.get(f"/api/leads/{lead.id}/score?version=2").json()["score"] == 27
    assert tenant.client.post("/api/models/default/versions/2/rollback", {}, format="json").status_code == 201
    run_jobs(tenant.project)
    assert Lead.objects.get(id=lead.id).current_score == 27
    assert tenant.client.get(f"/api/leads/{lead.id}/score?version=3").json()["score"] == 67
