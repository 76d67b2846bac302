"""Demo-like data with a known signal for the training tests: synthetic leads stored through ingest, with outcomes."""

from django.utils import timezone

from ingest.models import Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from predictions.models import Outcome
from predictions.synthetic import SyntheticLead, leads_generate


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
    Outcome.objects.bulk_create(
        Outcome(project=project, lead_id=ids[lead.key], outcome="won" if lead.won else "lost", occurred_at=lead.at,
                source="api", created_at=now, updated_at=now)
        for lead in leads[: len(leads) if outcomes is None else outcomes]
    )  # fmt: skip
    return leads
