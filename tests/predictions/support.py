"""Demo-like data with a known signal for the training tests: synthetic leads stored through ingest, with outcomes."""

import functools
from typing import Any

from django.utils import timezone

from ingest.models import Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from predictions.learn import Example, model_train
from predictions.models import Outcome, PredictionModel, TrainingJob
from predictions.synthetic import SyntheticLead, leads_generate
from scoring.models import ScoringModel


def synthetic_project(project, *, count: int = 200, seed: int = 7, outcomes: int | None = None) -> list[SyntheticLead]:
    """Store `count` synthetic leads (their events, post-outcome ones too, and traits) and the first `outcomes` of
    their outcomes (all by default), as recorded from a CRM."""
    leads = leads_generate(count, seed=seed)
    events = [
        CanonicalEvent(event_id=f"{lead.key}-{i}", name=event.name, anonymous_id=lead.key, timestamp=event.timestamp,
                       properties=dict(event.properties))
        for lead in leads
        for i, event in enumerate(lead.events)
    ]  # fmt: skip
    for start in range(0, len(events), 2000):
        events_ingest(project_id=project.id, events=events[start : start + 2000])
    ids = dict(Lead.objects.filter(project=project).values_list("anonymous_id", "id"))
    for lead in leads:
        Lead.objects.filter(id=ids[lead.key]).update(traits={**lead.traits, "email": lead.email})
    now = timezone.now()
    Outcome.objects.bulk_create((
        Outcome(project=project, lead_id=ids[lead.key], outcome="won" if lead.won else "lost", occurred_at=lead.at,
                source="api", created_at=now, updated_at=now)
        for lead in leads[: len(leads) if outcomes is None else outcomes]
    ), ignore_conflicts=True)  # fmt: skip
    return leads


@functools.cache
def trained_document() -> tuple[dict[str, Any], dict[str, Any]]:
    """A model learnt from synthetic outcomes in memory (once per run), and its report."""
    leads = leads_generate(120)
    trained = model_train([Example(lead=lead.facts, won=lead.won, at=lead.at, rule_score=0.0, key=lead.key)
                           for lead in leads], current_points={"page_view": 5, "demo_request": 50})  # fmt: skip
    return trained.to_json(), dict(trained.report)


def prediction_world(project) -> int:
    """The project's primary model's active prediction model and a finished training job; the job's id."""
    document, report = trained_document()
    scoring_model = ScoringModel.objects.get(project=project, is_primary=True)
    model = PredictionModel.objects.create(project=project, scoring_model=scoring_model, version=1,
                                           trained_at=timezone.now(), document=document, report=report,
                                           train_count=90, test_count=30, active=True)  # fmt: skip
    job = TrainingJob.objects.create(project=project, scoring_model=scoring_model, status="succeeded", progress=100,
                                     prediction_model=model)  # fmt: skip
    return job.id
