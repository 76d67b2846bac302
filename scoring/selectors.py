"""Reads of leads and their scores, always scoped to a project."""

from django.db.models import Q, QuerySet

from accounts.models import Project
from ingest.models import Event, Lead
from leadpulse.errors import ApplicationError, NotFound

from .models import ScoreHistory

LEAD_ORDERING_FIELDS = {
    "currentScore": "current_score",
    "lastEventAt": "last_event_at",
    "firstSeenAt": "first_seen_at",
    "createdAt": "created_at",
    "eventsLast24h": "events_last_24h",
    "velocityScore": "velocity_score",
    "email": "email",
    "name": "name",
}


def leads_for_project(
    *,
    project: Project,
    stage: str | None = None,
    anonymous_id: str | None = None,
    search: str | None = None,
    ordering: str | None = None,
) -> QuerySet[Lead]:
    """The project's live (not merged-away) leads, filtered and ordered."""
    leads = Lead.objects.filter(project=project, merged_into__isnull=True)
    if stage:
        if stage not in Lead.Stage.values:
            raise ApplicationError(f"Must be one of {', '.join(Lead.Stage.values)}.", field="stage")
        leads = leads.filter(lead_stage=stage)
    if anonymous_id:
        # a device merged into a known lead still finds that lead
        leads = leads.filter(Q(anonymous_id=anonymous_id) | Q(merged_leads__anonymous_id=anonymous_id)).distinct()
    if search:
        condition = Q(email__icontains=search) | Q(name__icontains=search) | Q(company__icontains=search)
        condition |= Q(anonymous_id__icontains=search) | Q(user_id__icontains=search)
        if search.isdigit():
            condition |= Q(id=int(search))
        leads = leads.filter(condition)
    ordering = ordering or "-currentScore"
    descending = ordering.startswith("-")
    column = LEAD_ORDERING_FIELDS.get(ordering.lstrip("-"))
    if column is None:
        raise ApplicationError(
            f"Must be one of {', '.join(LEAD_ORDERING_FIELDS)} (prefix - for descending).", field="ordering"
        )
    return leads.order_by(f"-{column}" if descending else column, "-id" if descending else "id")


def lead_get(*, project: Project, lead_id: int | str) -> Lead:
    """The project's lead with this id, following merges to the survivor; 404 otherwise."""
    try:
        lead_pk = int(lead_id)
    except (TypeError, ValueError):
        raise NotFound("Lead not found.") from None
    lead = Lead.objects.filter(project=project, id=lead_pk).first()
    if lead is not None and lead.merged_into_id:
        lead = Lead.objects.filter(project=project, id=lead.merged_into_id).first()
    if lead is None:
        raise NotFound("Lead not found.")
    return lead


def lead_timeline(*, lead: Lead, limit: int = 200) -> list[tuple[Event, ScoreHistory | None]]:
    """The lead's newest `limit` events in score order, each with its history row (None until scored)."""
    newest = list(Event.objects.filter(lead=lead).order_by("-timestamp", "-event_id")[:limit])
    newest.reverse()
    history = {
        row.event_id: row for row in ScoreHistory.objects.filter(lead=lead, event_id__in=[event.id for event in newest])
    }
    return [(event, history.get(event.id)) for event in newest]
