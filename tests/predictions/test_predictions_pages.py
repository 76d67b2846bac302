"""The predictions page, its train and apply buttons, the job JSON it polls, and the probability on leads' pages."""

import pytest
from django.test import Client

from accounts.models import Membership
from ingest.models import Lead
from predictions.models import PredictionModel, TrainingJob
from predictions.services.training import lead_predictions_refresh
from scoring.models import RuleSetDraft, RuleSetVersion, ScoringModel, ScoringRule
from tests.accounts.factories import UserFactory
from tests.predictions.support import prediction_world
from tests.scoring.factories import scored_lead

pytestmark = pytest.mark.django_db


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def member(tenant):
    user = UserFactory()
    Membership.objects.create(user=user, project=tenant.project, role=Membership.Role.MEMBER)
    return user


def test_before_training_the_page_says_so_and_offers_admins_the_button(tenant, member):
    page = browser(tenant.owner).get("/predictions/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="model-none"' in html and 'id="train-form"' in html
    assert 'href="/predictions/"' in html  # the nav entry
    assert 'id="train-form"' not in browser(member).get("/predictions/").content.decode()


def test_the_report_shows_the_model_beside_the_rules_with_charts_and_suggestions(tenant, member):
    prediction_world(tenant.project)
    model = PredictionModel.objects.get(project=tenant.project)

    html = browser(member).get("/predictions/?target=0.7").content.decode()

    assert f"<strong>v{model.version}</strong>" in html
    assert f'data-auc="model">{model.report["model"]["auc"]:.3f}' in html
    assert html.count("<svg") >= 2  # calibration and lift
    assert 'id="suggested-points"' in html and 'data-event-type="demo_request"' in html
    assert '<option value="0.7" selected>' in html
    assert 'id="apply-form"' not in html  # members see, admins apply


def test_members_cannot_train_or_apply(tenant, member):
    prediction_world(tenant.project)
    client = browser(member)
    assert client.post("/predictions/train/").status_code == 403
    assert client.post("/predictions/suggestions/apply/").status_code == 403
    assert TrainingJob.objects.filter(project=tenant.project).count() == 1  # the world's finished one
    assert not RuleSetDraft.objects.filter(project=tenant.project).exists()


def test_an_admin_starts_a_job_and_the_page_follows_it(tenant, django_capture_on_commit_callbacks):
    client = browser(tenant.owner)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post("/predictions/train/")
    assert response.status_code == 302
    job = TrainingJob.objects.get(project=tenant.project)
    assert job.status == "pending" and job.requested_by == tenant.owner and len(callbacks) == 1

    html = client.get("/predictions/").content.decode()
    assert f'data-job-url="/predictions/jobs/{job.id}/"' in html
    polled = client.get(f"/predictions/jobs/{job.id}/").json()
    assert (polled["id"], polled["status"], polled["progress"]) == (job.id, "pending", 0)


def test_a_job_of_another_project_is_404(tenant, other_tenant):
    job = TrainingJob.objects.get(id=prediction_world(other_tenant.project))
    assert browser(tenant.owner).get(f"/predictions/jobs/{job.id}/").status_code == 404


def test_apply_as_draft_lands_in_the_draft_and_publishes_nothing(tenant):
    prediction_world(tenant.project)
    model = ScoringModel.objects.get(project=tenant.project, is_primary=True)
    rules = ScoringRule.objects.filter(model=model).values_list("id", "event_type", "points").order_by("id")
    live = list(rules)
    versions = RuleSetVersion.objects.filter(model=model).count()

    response = browser(tenant.owner).post("/predictions/suggestions/apply/", {"target": "0.7"})

    assert response.status_code == 302 and response["Location"] == "/rules/"
    draft = RuleSetDraft.objects.get(model=model)
    suggestions = browser(tenant.owner).get("/predictions/?target=0.7").context["suggestions"]
    assert suggestions["points"], "the synthetic model suggests points"
    drafted = {rule["event_type"]: rule["points"] for rule in draft.document["rules"] if not rule.get("conditions")}
    for row in suggestions["points"]:
        assert drafted[row["eventType"]] == row["suggested"]
    if suggestions["thresholds"]["suggested"]:
        warm, hot, qualified = suggestions["thresholds"]["suggested"]
        settings = draft.document["settings"]
        assert (settings["warm_threshold"], settings["hot_threshold"], settings["qualified_threshold"]) == (
            warm, hot, qualified,
        )  # fmt: skip
    # nothing is live: the same rules, points and version
    model.refresh_from_db()
    assert (
        list(ScoringRule.objects.filter(model=model).values_list("id", "event_type", "points").order_by("id")) == live
    )
    assert RuleSetVersion.objects.filter(model=model).count() == versions
    assert 'id="draft' in browser(tenant.owner).get("/rules/").content.decode()


def test_leads_show_their_probability_sorted_by_it_with_factors_on_the_lead_page(tenant):
    prediction_world(tenant.project)
    hot = scored_lead(tenant.project, "hot", "demo_request", "pricing_page_visit", "demo_request", "signup")
    cold = scored_lead(tenant.project, "cold", "unsubscribe")
    lead_predictions_refresh(project_id=tenant.project.id, lead_ids=[hot.id, cold.id])

    leads = tenant.client.get("/api/leads?ordering=-conversionProbability").json()["results"]
    probabilities = [lead["conversionProbability"]["probability"] for lead in leads]
    assert [lead["id"] for lead in leads] == [hot.id, cold.id] and probabilities == sorted(probabilities, reverse=True)
    assert len(leads[0]["conversionProbability"]["factors"]) == 3

    page = browser(tenant.owner).get(f"/leads/{hot.id}/").content.decode()
    assert 'id="probability-factors"' in page
    label = leads[0]["conversionProbability"]["factors"][0]["label"]
    assert label in page
    listing = browser(tenant.owner).get("/leads/").content.decode()
    assert f'data-probability="{leads[0]["conversionProbability"]["probability"]}"' in listing
    assert Lead.objects.filter(project=tenant.project).count() == 2
