"""Training a prediction model from stored outcomes, and the probabilities it writes (service level, PostgreSQL)."""

import pytest
from django.utils import timezone

from core.contracts import LeadChange
from ingest.models import Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from predictions.models import LeadPrediction, PredictionModel, TrainingJob
from predictions.services.training import (
    lead_changes_predict,
    models_retrain,
    prediction_model_train,
    training_examples,
)
from scoring.models import ScoringModel
from scoring.services import lead_erase
from tests.predictions.support import synthetic_project

pytestmark = pytest.mark.django_db


def train(project) -> TrainingJob:
    model = ScoringModel.objects.get(project=project, is_primary=True)
    job = TrainingJob.objects.create(project=project, scoring_model=model)
    prediction_model_train(job_id=job.id)
    job.refresh_from_db()
    return job


def test_a_job_learns_the_hidden_signal_stores_the_model_and_scores_every_lead(tenant):
    # given
    synthetic_project(tenant.project, count=240)

    # when
    job = train(tenant.project)

    # then
    assert job.status == "succeeded" and job.progress == 100, job.message
    model = PredictionModel.objects.get(project=tenant.project)
    assert model.active and model.version == 1 and job.prediction_model_id == model.id
    assert model.train_count + model.test_count == 240
    assert model.report["model"]["auc"] >= 0.75
    assert model.report["rules"] is not None  # the rules' side, on the same holdout
    assert f"AUC {model.report['model']['auc']:.2f}" in job.message
    assert (
        LeadPrediction.objects.filter(prediction_model=model).count()
        == Lead.objects.filter(project=tenant.project).count()
    )
    row = LeadPrediction.objects.filter(prediction_model=model).first()
    assert 0 <= row.probability <= 1 and len(row.factors) == 3
    assert all(set(factor) == {"feature", "value", "contribution", "label"} for factor in row.factors)


def test_examples_never_hold_an_event_at_or_after_the_outcome(tenant):
    leads = {lead.key: lead for lead in synthetic_project(tenant.project, count=60)}
    keys = dict(Lead.objects.filter(project=tenant.project).values_list("id", "anonymous_id"))

    examples = training_examples(
        project_id=tenant.project.id, scoring_model=ScoringModel.objects.get(project=tenant.project, is_primary=True)
    )

    assert len(examples) == 60
    for example in examples:
        lead = leads[keys[int(example.key)]]
        assert example.at == lead.at and example.won == lead.won
        assert all(event.timestamp < example.at for event in example.lead.events)
        assert "contract_signed" not in {event.name for event in example.lead.events}  # at the outcome: unseen
        assert example.lead.traits["industry"] == lead.traits["industry"]


def test_below_the_minimum_the_job_is_refused_with_learns_message(tenant):
    synthetic_project(tenant.project, count=100, outcomes=40)

    job = train(tenant.project)

    assert job.status == "refused" and job.finished_at is not None
    assert "at least 30 won and 30 lost" in job.message
    assert not PredictionModel.objects.filter(project=tenant.project).exists()


def test_retraining_activates_the_new_version_and_drops_the_old_ones_predictions(tenant):
    synthetic_project(tenant.project, count=200)
    first = train(tenant.project)

    jobs = models_retrain()  # what the weekly schedule runs
    assert [job.project_id for job in jobs] == [tenant.project.id]
    prediction_model_train(job_id=jobs[0].id)

    old, new = PredictionModel.objects.filter(project=tenant.project).order_by("version")
    assert (old.version, old.active, new.version, new.active) == (1, False, 2, True)
    assert first.prediction_model_id == old.id
    assert not LeadPrediction.objects.filter(prediction_model=old).exists()
    assert LeadPrediction.objects.filter(prediction_model=new).count() == 200


def test_a_scoring_batchs_lead_changes_recompute_those_leads_probabilities(tenant, other_tenant):
    synthetic_project(tenant.project, count=200)
    train(tenant.project)
    lead = Lead.objects.filter(project=tenant.project).order_by("id").first()
    before = LeadPrediction.objects.get(lead=lead)
    now = timezone.now()
    events_ingest(project_id=tenant.project.id, events=[
        CanonicalEvent(event_id=f"hot-{i}", name=name, anonymous_id=lead.anonymous_id, timestamp=now)
        for i, name in enumerate(["demo_request", "pricing_page_visit", "pricing_page_visit", "demo_request"])
    ])  # fmt: skip

    written = lead_changes_predict(changes=[
        LeadChange(kind="scored", project_id=tenant.project.id, lead_id=lead.id, old_score=0, new_score=1,
                   old_stage="cold", new_stage="cold"),
        LeadChange(kind="scored", project_id=other_tenant.project.id, lead_id=lead.id, old_score=0, new_score=1,
                   old_stage="cold", new_stage="cold"),  # another project's change names no lead of this one
    ])  # fmt: skip

    after = LeadPrediction.objects.get(lead=lead)
    assert written == 1
    assert after.computed_at > before.computed_at
    assert after.probability > before.probability
    assert any("demo_request" in factor["feature"] for factor in after.factors)


def test_erasing_a_lead_erases_its_predictions_and_a_merged_away_lead_loses_its_own(tenant):
    synthetic_project(tenant.project, count=200)
    train(tenant.project)
    erased, merged, survivor = Lead.objects.filter(project=tenant.project).order_by("id")[:3]

    lead_erase(lead=erased)
    Lead.objects.filter(id=merged.id).update(merged_into=survivor)
    lead_changes_predict(changes=[
        LeadChange(kind="merged", project_id=tenant.project.id, lead_id=survivor.id, old_score=0, new_score=0,
                   old_stage="cold", new_stage="cold", merged_lead_id=merged.id),
    ])  # fmt: skip

    assert not LeadPrediction.objects.filter(lead_id__in=[erased.id, merged.id]).exists()
    assert LeadPrediction.objects.filter(lead=survivor).count() == 1
