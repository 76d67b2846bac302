"""The predictions API beyond the access audit: what train, the job, the report and the suggestions answer."""

import pytest
from django.test import Client

from accounts.models import Membership
from predictions.models import TrainingJob
from scoring.models import RuleSetDraft, RuleSetVersion, ScoringModel
from tests.accounts.factories import UserFactory
from tests.conftest import client_for
from tests.predictions.support import prediction_world

pytestmark = pytest.mark.django_db


def test_before_training_the_report_and_suggestions_are_404_naming_why(tenant):
    for path in ("/api/predictions/report", "/api/predictions/suggestions"):
        response = tenant.client.get(path)
        assert response.status_code == 404
        assert "No prediction model has been trained" in response.json()["error"]["message"]


def test_train_answers_202_with_the_job_to_poll_and_returns_the_running_one_again(
    tenant, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        first = tenant.client.post("/api/predictions/train", {}, format="json")
    again = tenant.client.post("/api/predictions/train", {"model": "default"}, format="json")

    assert first.status_code == again.status_code == 202
    job = first.json()
    assert (job["status"], job["progress"], job["model"], job["version"]) == ("pending", 0, "default", None)
    assert first["Location"] == f"/api/predictions/jobs/{job['id']}"
    assert again.json()["id"] == job["id"] and len(callbacks) == 1  # one job, one message
    assert tenant.client.get(first["Location"]).json() == job
    assert tenant.client.post("/api/predictions/train", {"model": "nope"}, format="json").status_code == 404


def test_a_member_may_read_but_not_train_nor_apply(tenant):
    prediction_world(tenant.project)
    member = UserFactory()
    Membership.objects.create(user=member, project=tenant.project, role=Membership.Role.MEMBER)
    client = client_for(member)

    assert client.get("/api/predictions/report").status_code == 200
    assert client.post("/api/predictions/train", {}, format="json").status_code == 403
    assert client.post("/api/predictions/suggestions/apply", {}, format="json").status_code == 403
    assert TrainingJob.objects.filter(project=tenant.project).count() == 1
    assert not RuleSetDraft.objects.exists()


def test_another_projects_job_is_404(tenant, other_tenant):
    theirs = prediction_world(other_tenant.project)
    assert tenant.client.get(f"/api/predictions/jobs/{theirs}").status_code == 404
    assert tenant.client.get("/api/predictions/jobs/not-a-number").status_code == 404


def test_the_report_puts_the_learnt_model_beside_the_rules(tenant):
    prediction_world(tenant.project)

    report = tenant.client.get("/api/predictions/report").json()

    assert report["model"] == "default" and report["version"] == 1
    for side in ("learned", "rules"):
        assert 0 <= report[side]["auc"] <= 1
        assert [row["stage"] for row in report[side]["stages"]] == ["cold", "warm", "hot", "qualified"]
        assert [row["decile"] for row in report[side]["lift"]] == list(range(1, 11))
    assert len(report["calibration"]) == 10 and report["holdout"]["leads"] == report["testCount"]


def test_suggestions_follow_the_target_precision_and_apply_lands_in_the_draft_unpublished(tenant):
    prediction_world(tenant.project)
    model = ScoringModel.objects.get(project=tenant.project, is_primary=True)
    versions = RuleSetVersion.objects.filter(model=model).count()

    loose = tenant.client.get("/api/predictions/suggestions?targetPrecision=0.5").json()
    strict = tenant.client.get("/api/predictions/suggestions?targetPrecision=0.95").json()
    applied = tenant.client.post("/api/predictions/suggestions/apply", {"targetPrecision": 0.5}, format="json")

    assert loose["targetPrecision"] == 0.5 and loose["points"] == strict["points"]
    assert loose["thresholds"]["current"] == [11, 31, 60]
    if loose["thresholds"]["suggested"] and strict["thresholds"]["suggested"]:
        assert loose["thresholds"]["suggested"][2] <= strict["thresholds"]["suggested"][2]
    assert applied.status_code == 200, applied.content
    draft = RuleSetDraft.objects.get(model=model)
    assert applied.json()["draft"] == draft.document
    points = {
        r["event_type"]: r["points"]
        for r in draft.document["rules"]
        if r["kind"] == "engagement" and not r["conditions"]
    }
    assert all(points[row["eventType"]] == row["suggested"] for row in loose["points"])
    assert RuleSetVersion.objects.filter(model=model).count() == versions
    model.refresh_from_db()
    assert model.qualified_threshold == 60  # live settings untouched
    assert Client().get("/api/predictions/report").status_code == 401
