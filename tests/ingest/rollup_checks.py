"""The answers the rollups replace, counted straight from the events table, and checks against them.

No pytest here: the SQLite check runs this module in a process of its own.
"""

import re
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Avg, Count, Max, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from ingest.models import Event, Lead
from ingest.rollups import rollups_drift
from ingest.selectors import event_names_for_project
from scoring.selectors import project_dashboard


def dashboard_from_events(*, project, now: datetime | None = None, days: int = 30, model=None) -> dict[str, Any]:
    """`project_dashboard` as it was before the rollups: aggregates over the whole events table (for the
    primary scoring model: `model` None, as the API passes it without `?model=`).

    The only change: names with equal counts are ordered by name (the old query left their order,
    and so which of them made the top 12, to the database).
    """
    assert model is None, "the reference knows the primary model only"
    now = now or timezone.now()
    leads = Lead.objects.filter(project=project, merged_into__isnull=True)
    lead_totals = leads.aggregate(
        total=Count("id"),
        qualified=Count("id", filter=Q(lead_stage=Lead.Stage.QUALIFIED)),
        average=Avg("current_score"),
    )
    stages = dict.fromkeys(Lead.Stage.values, 0)
    stages.update(dict(leads.values_list("lead_stage").annotate(n=Count("id")).order_by()))
    events = event_numbers_from_events(project=project, now=now, days=days)
    return {
        "totalLeads": lead_totals["total"],
        "qualifiedLeads": lead_totals["qualified"],
        "averageScore": round(lead_totals["average"] or 0, 1),
        "eventsToday": events["eventsToday"],
        "lastEventAt": events["lastEventAt"],
        "stageDistribution": stages,
        "eventsByType": events["eventsByType"],
        "eventsPerDay": events["eventsPerDay"],
        "topLeads": list(leads.order_by("-current_score", "-id")[:10]),
    }


def event_numbers_from_events(*, project, now: datetime, days: int = 30) -> dict[str, Any]:
    """The event numbers of the old `project_dashboard`, verbatim: four scans of the project's events."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    events = Event.objects.filter(project=project)
    since = today - timedelta(days=days - 1)
    per_day = dict(
        events.filter(timestamp__gte=since)
        .annotate(day=TruncDate("timestamp"))
        .values_list("day")
        .annotate(n=Count("id"))
        .order_by()
    )
    by_type = dict(events.values_list("name").annotate(n=Count("id")).order_by("-n", "name")[:12])
    return {
        "eventsToday": events.filter(timestamp__gte=today).count(),
        "lastEventAt": events.aggregate(last=Max("timestamp"))["last"],
        "eventsByType": by_type,
        "eventsPerDay": [
            {
                "date": (since + timedelta(days=i)).date().isoformat(),
                "count": per_day.get((since + timedelta(days=i)).date(), 0),
            }
            for i in range(days)
        ],
    }


def event_names_from_events(*, project, limit: int = 200) -> list[str]:
    """`event_names_for_project` as it was: a DISTINCT over the project's events."""
    names = Event.objects.filter(project=project).values_list("name", flat=True).distinct().order_by("name")
    return list(names[:limit])


def answers_differ(project, *, now: datetime | None = None) -> list[str]:
    """Where the rollup-based event counts differ from counts over the events (empty: they agree).

    Lead numbers are left out: scoring and merges change them between the two reads.
    """
    now = now or timezone.now()
    new, old = project_dashboard(project=project, now=now), dashboard_from_events(project=project, now=now)
    problems = [
        f"{key}: rollups {new[key]!r} != events {old[key]!r}"
        for key in ("eventsToday", "lastEventAt", "eventsPerDay")
        if new[key] != old[key]
    ]
    if list(new["eventsByType"].items()) != list(old["eventsByType"].items()):
        problems.append(f"eventsByType: rollups {new['eventsByType']} != events {old['eventsByType']}")
    names, old_names = event_names_for_project(project=project), event_names_from_events(project=project)
    if names != old_names:
        problems.append(f"event names: rollups {names} != events {old_names}")
    return problems


def rollup_problems(project) -> list[str]:
    """Drift of the stored rollups from a recount of the processed events, then any answer that differs."""
    return [f"drift {key}: {n:+d}" for key, n in rollups_drift(project_id=project.id).items()] + answers_differ(project)


def normalised(html: str) -> str:
    """A page without what differs between two renders of the same data (nonces, CSRF tokens, chart ids, and
    how long ago the last event was: a slow render crosses a minute)."""
    html = re.sub(r'(nonce|name="csrfmiddlewaretoken" value)="[^"]*"', "", html)
    html = re.sub(r"\d+\W+minutes? ago", "minutes ago", html)
    return re.sub(r"chart-[0-9a-f]{8}-[0-9a-f-]{27}", "chart", html)
