"""Scoring models: every model folds the same log under its own rules and policy; the API manages them."""

from datetime import timedelta
from itertools import pairwise

import pytest
from django.utils import timezone

from accounts.models import Membership
from ingest.lead_tallies import lead_tallies_drift
from ingest.models import Event, Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from scoring import engine
from scoring.models import LeadScore, RescoreJob, ScoreHistory, ScoringModel, ScoringRule
from scoring.services import lead_score, rescore_job_run
from scoring.services.fold import engine_models, facts, lead_profile, primary_model
from scoring.services.history import all_rows
from tests.accounts.factories import UserFactory
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

BASE = (timezone.now() - timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
ENTERPRISE = {"key": "enterprise", "name": "Enterprise", "warmThreshold": 5, "hotThreshold": 100,
              "qualifiedThreshold": 200, "maxScore": 300}  # fmt: skip


def ingest(project, anonymous_id, *events):
    """events: (name, minutes after BASE); one lead; returns it scored."""
    events_ingest(
        project_id=project.id,
        events=[
            CanonicalEvent(event_id=f"{anonymous_id}-{name}-{m}", name=name, anonymous_id=anonymous_id,
                           timestamp=BASE + timedelta(minutes=m))
            for name, m in events
        ],
    )  # fmt: skip
    lead = Lead.objects.get(project=project, anonymous_id=anonymous_id)
    return lead_score(lead_id=lead.id)


def pure(lead, model: ScoringModel) -> dict:
    """The model's result for the lead as a pure fold of its whole log computes it."""
    (spec,) = engine_models([model], ScoringRule.objects.filter(model=model, is_active=True).order_by("id"))
    evaluation = engine.lead_evaluate(
        lead=engine.Materialised(), events=[fact for _, fact in facts(Event.objects.filter(lead=lead))],
        profile=lead_profile(lead), rules=spec.rules, fit_rules=spec.fit_rules, policy=spec.policy,
        now=timezone.now(), refold=True,
    )  # fmt: skip
    return {"score": evaluation.score, "stage": evaluation.stage, "engagement": evaluation.engagement}


def stored(lead, model: ScoringModel) -> dict:
    lead.refresh_from_db()
    if model.is_primary:
        return {"score": lead.current_score, "stage": lead.lead_stage, "engagement": lead.engagement_score}
    row = LeadScore.objects.get(lead=lead, model=model)
    return {"score": row.score, "stage": row.stage, "engagement": row.engagement}


def second_model(project, **fields) -> ScoringModel:
    """A non-primary model that scores page views and demos differently, with its own thresholds."""
    model = ScoringModel.objects.create(project=project, key="b", name="B", warm_threshold=5, hot_threshold=8,
                                        qualified_threshold=12, max_score=40, **fields)  # fmt: skip
    ScoringRule.objects.create(project=project, model=model, name="views", event_type="page_view", points=3)
    ScoringRule.objects.create(project=project, model=model, name="demos", event_type="demo_request", points=100)
    return model


def run_jobs(project):
    for job in RescoreJob.objects.filter(project=project, status__in=["pending", "running"]):
        for index in range(job.slice_count):  # every slice of the job, one after the other
            while rescore_job_run(job_id=job.id, slice_index=index):
                pass


def history(lead, model=None) -> list[ScoreHistory]:
    """The lead's history rows (under `model`) as every reader sees them: stored, or made from the log."""
    rows = ScoreHistory.objects.filter(lead=lead, **({"model": model} if model else {}))
    return list(all_rows(lead=lead, rows=rows))


def chain_ok(lead, model) -> bool:
    """The model's history rows chain (each old score is the previous new one) up to the stored score."""
    rows = [row for row in history(lead, model) if row.reason in ("rule", "decay", "fit")]
    return all(a.new_score == b.old_score for a, b in pairwise(rows)) and (
        rows[-1].new_score == stored(lead, model)["score"]
    )


def test_one_fold_scores_every_model_under_its_own_rules_thresholds_and_cap(tenant):
    b = second_model(tenant.project)
    lead = ingest(tenant.project, "x", ("page_view", 1), ("page_view", 2), ("demo_request", 3))
    primary = primary_model(tenant.project)
    assert stored(lead, primary) == pure(lead, primary) == {"score": 60, "stage": "qualified", "engagement": 60}
    assert stored(lead, b) == pure(lead, b) == {"score": 40, "stage": "qualified", "engagement": 40}  # capped at 40
    assert chain_ok(lead, primary) and chain_ok(lead, b)
    assert len([row for row in history(lead, b) if row.reason == "rule"]) == 3
    # made from the log when read: the non-primary model stores one segment for the run, no row per event
    assert list(ScoreHistory.objects.filter(lead=lead, model=b).values_list("reason", flat=True)) == [engine.SEGMENT]


def test_a_late_event_refolds_every_model(tenant):
    b = second_model(tenant.project)
    ingest(tenant.project, "x", ("page_view", 10), ("page_view", 20))
    lead = ingest(tenant.project, "x", ("demo_request", 1))  # older than both: a refold
    for model in (primary_model(tenant.project), b):
        assert stored(lead, model) == pure(lead, model)
        assert chain_ok(lead, model)


def test_a_model_created_later_is_filled_in_by_the_rescore_and_then_folds_on(tenant):
    lead = ingest(tenant.project, "x", ("page_view", 1), ("page_view", 2))
    response = tenant.client.post("/api/models", {**ENTERPRISE, "copyFrom": "default"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["ruleCount"] == 10  # copied from the default model
    enterprise = ScoringModel.objects.get(project=tenant.project, key="enterprise")
    assert enterprise.rules.count() == primary_model(tenant.project).rules.count()
    assert not LeadScore.objects.filter(model=enterprise).exists()
    run_jobs(tenant.project)
    assert stored(lead, enterprise) == pure(lead, enterprise) == {"score": 10, "stage": "warm", "engagement": 10}

    lead = ingest(tenant.project, "x", ("demo_request", 3))
    assert stored(lead, enterprise) == pure(lead, enterprise) == {"score": 60, "stage": "warm", "engagement": 60}
    assert chain_ok(lead, enterprise)


def test_a_lead_a_new_model_has_not_folded_yet_refolds_under_it_at_its_next_event(tenant):
    ingest(tenant.project, "x", ("page_view", 1), ("page_view", 2))
    b = second_model(tenant.project)  # no re-score: the lead's rows for b do not exist
    lead = ingest(tenant.project, "x", ("page_view", 3))
    assert stored(lead, b) == pure(lead, b) == {"score": 9, "stage": "hot", "engagement": 9}
    assert chain_ok(lead, b)


def test_lead_api_shows_every_models_scores_and_lists_by_any_model(tenant):
    second_model(tenant.project)
    low = ingest(tenant.project, "low", ("demo_request", 1))  # default 50 / b 40
    high = ingest(tenant.project, "high", *[("page_view", m) for m in range(1, 13)])  # default 60 / b 36

    detail = tenant.client.get(f"/api/leads/{low.id}").json()
    assert detail["scores"] == {
        "default": {"score": 50, "stage": "hot", "engagement": 50, "fit": 0, "grade": "C", "cell": "C1"},
        "b": {"score": 40, "stage": "qualified", "engagement": 40, "fit": 0, "grade": "C", "cell": "C1"},
    }
    by_default = tenant.client.get("/api/leads").json()["results"]
    assert [lead["id"] for lead in by_default] == [high.id, low.id]
    by_b = tenant.client.get("/api/leads?model=b").json()["results"]
    assert [lead["id"] for lead in by_b] == [low.id, high.id]
    assert by_b[0]["scores"]["b"]["score"] == 40
    assert [lead["id"] for lead in tenant.client.get("/api/leads?model=b&stage=qualified").json()["results"]] == [
        low.id,
        high.id,
    ]
    assert tenant.client.get("/api/leads?model=default&stage=qualified").json()["count"] == 1
    board = tenant.client.get("/api/leaderboard?model=b&limit=1").json()
    assert [lead["id"] for lead in board["results"]] == [low.id] and board["count"] == 2
    assert tenant.client.get("/api/leaderboard/by-stage?model=b").json() == {
        "cold": 0, "warm": 0, "hot": 0, "qualified": 2,
    }  # fmt: skip
    history = tenant.client.get(f"/api/leads/{low.id}/history?model=b").json()["results"]
    assert [row["newScore"] for row in history] == [40]
    assert [row["newScore"] for row in tenant.client.get(f"/api/leads/{low.id}/history").json()["results"]] == [50]
    breakdown = tenant.client.get(f"/api/leads/{low.id}/score-breakdown?model=b").json()
    assert (breakdown["currentScore"], breakdown["foldScore"], breakdown["clampAdjustment"]) == (40, 40, -60)
    assert [(rule["eventType"], rule["points"]) for rule in breakdown["rules"]] == [("demo_request", 100)]
    assert tenant.client.get(f"/api/leads/{low.id}/score-breakdown").json()["currentScore"] == 50
    dashboard = tenant.client.get("/api/analytics/dashboard?model=b").json()
    assert dashboard["stageDistribution"]["qualified"] == 2 and dashboard["averageScore"] == 38.0
    assert [lead["id"] for lead in dashboard["topLeads"]] == [low.id, high.id]
    assert tenant.client.get(f"/api/leads/{low.id}/export").json()["scores"]["b"]["score"] == 40
    missing = tenant.client.get("/api/leads?model=nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert tenant.client.get("/api/leads?model=b%00").status_code == 404  # found by the schemathesis fuzz (was 500)


def test_making_a_model_primary_swaps_the_score_columns_without_a_refold(tenant):
    b = second_model(tenant.project)
    lead = ingest(tenant.project, "x", ("page_view", 1), ("demo_request", 2))
    default = primary_model(tenant.project)
    before = {"default": pure(lead, default), "b": pure(lead, b)}
    history = ScoreHistory.objects.count()
    assert tenant.client.get("/api/leaderboard/by-stage").json() == {"cold": 0, "warm": 0, "hot": 1, "qualified": 0}

    response = tenant.client.post("/api/models/b/primary")
    assert response.status_code == 200 and response.json()["isPrimary"] is True
    default.refresh_from_db()
    b.refresh_from_db()
    assert stored(lead, b) == before["b"] and stored(lead, default) == before["default"]
    assert not RescoreJob.objects.filter(project=tenant.project).exists()  # every lead was folded under b already
    assert ScoreHistory.objects.count() == history
    assert lead_tallies_drift(project_id=tenant.project.id) == {}  # the stage counts follow the new primary
    assert tenant.client.get("/api/leaderboard/by-stage").json() == {"cold": 0, "warm": 0, "hot": 0, "qualified": 1}
    assert tenant.client.get(f"/api/leads/{lead.id}").json()["currentScore"] == before["b"]["score"]

    lead = ingest(tenant.project, "x", ("page_view", 3))  # folds on from the swapped checkpoints
    assert stored(lead, b) == pure(lead, b) and stored(lead, default) == pure(lead, default)


def test_models_crud_and_their_refusals(tenant):
    listed = tenant.client.get("/api/models").json()["results"]
    assert [(m["key"], m["isPrimary"], m["ruleCount"]) for m in listed] == [("default", True, 10)]

    created = tenant.client.post("/api/models", ENTERPRISE, format="json")
    assert created.status_code == 201 and created.json()["ruleCount"] == 0
    assert RescoreJob.objects.filter(project=tenant.project, reason="model enterprise created").exists()
    assert tenant.client.post("/api/models", ENTERPRISE, format="json").status_code == 409
    bad_key = tenant.client.post("/api/models", {**ENTERPRISE, "key": "Not A Key"}, format="json")
    assert bad_key.status_code == 400 and "key" in bad_key.json()["error"]["fields"]
    bad_thresholds = tenant.client.post("/api/models", {**ENTERPRISE, "key": "c", "hotThreshold": 1}, format="json")
    assert bad_thresholds.status_code == 400 and "hotThreshold" in bad_thresholds.json()["error"]["fields"]
    unknown = tenant.client.post("/api/models", {**ENTERPRISE, "key": "d", "color": "red"}, format="json")
    assert unknown.status_code == 400 and "color" in unknown.json()["error"]["fields"]

    patched = tenant.client.patch("/api/models/enterprise", {"name": "Big accounts"}, format="json")
    assert patched.status_code == 200 and patched.json()["name"] == "Big accounts"
    jobs = RescoreJob.objects.count()
    tenant.client.patch("/api/models/enterprise", {"maxScore": 500}, format="json")
    assert RescoreJob.objects.count() == jobs + 1

    refused = tenant.client.delete("/api/models/default")
    assert refused.status_code == 409 and "primary" in refused.json()["error"]["message"]
    assert tenant.client.delete("/api/models/enterprise").status_code == 204
    assert tenant.client.get("/api/models/enterprise").status_code == 404


def test_a_project_has_at_most_25_models(tenant):
    for i in range(24):
        ScoringModel.objects.create(project=tenant.project, key=f"m{i}", name=f"M{i}")
    response = tenant.client.post("/api/models", ENTERPRISE, format="json")
    assert response.status_code == 400 and "25" in response.json()["error"]["message"]


def test_rules_belong_to_the_model_of_the_request(tenant):
    b = second_model(tenant.project)
    created = tenant.client.post("/api/rules?model=b", {"eventType": "signup", "points": 7}, format="json")
    assert created.status_code == 201 and created.json()["model"] == "b"
    assert ScoringRule.objects.get(id=created.json()["id"]).model == b
    assert {r["eventType"] for r in tenant.client.get("/api/rules?model=b").json()["results"]} == {
        "page_view", "demo_request", "signup",
    }  # fmt: skip
    assert len(tenant.client.get("/api/rules").json()["results"]) == 10  # the primary model's


def test_members_cannot_change_models(tenant):
    member = UserFactory()
    Membership.objects.create(user=member, project=tenant.project, role=Membership.Role.MEMBER)
    client = client_for(member)
    assert client.get("/api/models").status_code == 200
    assert client.post("/api/models", ENTERPRISE, format="json").status_code == 403
    assert client.patch("/api/models/default", {"name": "x"}, format="json").status_code == 403
    assert client.post("/api/models/default/primary").status_code == 403
    assert client.delete("/api/models/default").status_code == 403


def test_another_projects_models_are_404(tenant, other_tenant):
    second_model(other_tenant.project)
    client = tenant.client
    assert client.get("/api/models/b").status_code == 404
    assert client.patch("/api/models/b", {"name": "x"}, format="json").status_code == 404
    assert client.post("/api/models/b/primary").status_code == 404
    assert client.delete("/api/models/b").status_code == 404
    assert client.get("/api/leads?model=b").status_code == 404
    assert client.get("/api/rules?model=b").status_code == 404
    assert client.post("/api/models", {**ENTERPRISE, "copyFrom": "b"}, format="json").status_code == 404
    assert ScoringModel.objects.filter(key="b", project=other_tenant.project, name="B").exists()


def test_history_and_model_scores_have_no_database_constraints_yet_deletions_cascade(tenant):
    """One history row per event per model: no foreign-key trigger checks each at commit, and Django
    still removes the rows with their event, lead, model or project (no orphan is left behind)."""
    from django.db import connection

    b = second_model(tenant.project)
    lead = ingest(tenant.project, "x", ("page_view", 1), ("page_view", 2), ("demo_request", 3))
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, ScoreHistory._meta.db_table)
    assert not [name for name, c in constraints.items() if c["foreign_key"]]
    assert len(history(lead)) == 6 and LeadScore.objects.filter(lead=lead).count() == 1
    Event.objects.filter(lead=lead, name="demo_request").delete()
    assert not ScoreHistory.objects.filter(lead=lead, event__isnull=True, reason="rule").exists()
    assert len([row for row in history(lead) if row.reason == "rule"]) == 4  # the demo's two rows went with it
    b.delete()
    assert len(history(lead)) == 2 and not LeadScore.objects.filter(lead=lead).exists()
    tenant.project.delete()
    assert not ScoreHistory.objects.filter(lead_id=lead.id).exists()


def test_history_rows_keep_any_text_their_details_carry_through_copy(tenant):
    """History rows go to PostgreSQL as COPY text lines written by hand: backslashes, tabs, newlines, quotes and
    any character in an adjustment's reason come back exactly as they went in, under every model."""
    from scoring.services.adjustments import Author, lead_adjust

    b = second_model(tenant.project)
    lead = ingest(tenant.project, "x", ("page_view", 1))
    reason = 'C:\\temp\\n is not a newline,\ta tab,\nreal newline, "quotes", \\N, ünïcödé, 🙂, \x01'
    author = Author(type="user", id=tenant.owner.id, label="ana\\b@example.com")
    for model in (primary_model(tenant.project), b):
        lead_adjust(lead=lead, reason=reason, author=author, points=-2, model=model)
    rows = sorted((row for row in history(lead) if "adjustment" in row.details), key=lambda row: row.model_id)
    assert [row.details["adjustment"]["reason"] for row in rows] == [reason, reason]
    assert [row.details["adjustment"]["author"]["label"] for row in rows] == ["ana\\b@example.com"] * 2
    assert [row.delta for row in rows] == [-2, -2] and all(row.event_id for row in rows)
