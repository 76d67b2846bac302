from datetime import timedelta

from django.utils import timezone

from ingest.models import Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from scoring.services import lead_score


def scored_lead(project, anonymous_id, *names, **fields):
    """A lead with one event per name (a minute apart, ending now), scored by the real service."""
    now = timezone.now()
    events_ingest(
        project_id=project.id,
        events=[
            CanonicalEvent(
                event_id=f"{anonymous_id}-{i}",
                name=name,
                anonymous_id=anonymous_id,
                timestamp=now - timedelta(minutes=len(names) - i),
            )
            for i, name in enumerate(names)
        ],
    )
    lead = Lead.objects.get(project=project, anonymous_id=anonymous_id)
    if fields:
        Lead.objects.filter(pk=lead.pk).update(**fields)
    return lead_score(lead_id=lead.id)
