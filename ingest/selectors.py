"""Reads of the ingest app, always scoped to a project."""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.apps import apps
from django.db.models import Count, Max, Min, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from accounts.models import Project

from .lead_tallies import CELLS, STAGES, lead_tallies
from .models import Event, EventName, EventRollup, Lead

EVENT_PAGE_SIZE = 100


def events_for_project(*, project: Project, name: str = "", limit: int = EVENT_PAGE_SIZE) -> list[Event]:
    """The project's newest events (optionally of one name), each with its lead, in one query."""
    events = Event.objects.filter(project=project).select_related("lead")
    if name:
        events = events.filter(name=name)
    return list(events.order_by("-timestamp", "-id")[:limit])


def event_names_for_project(*, project: Project, limit: int = 200) -> list[str]:
    """The distinct event names the project has received, alphabetically (in the database's collation)."""
    counted = EventName.objects.filter(project=project, count__gt=0).values_list("name", flat=True).order_by()
    pending = _unprocessed(project).values_list("name", flat=True)
    return list(counted.union(pending).order_by("name")[:limit])


# Counts of the project's events. Each reads the rollups (the processed events, see ingest.rollups)
# and the events not processed yet in one statement, so it sees one snapshot: a scoring batch that
# commits meanwhile moves events from one side to the other, and the sum stays exact. The second
# side scans the backlog (the partial index of unprocessed events), never the whole log.


def _unprocessed(project: Project) -> QuerySet[Event]:
    # manual score adjustments are no one's activity: the rollups never count them either
    pending = Event.objects.filter(project=project, processed_at__isnull=True)
    return pending.exclude(type=Event.Type.ADJUSTMENT).order_by()


def event_counts_by_name(*, project: Project) -> dict[str, int]:
    """How many events of the project carry each name (names with none are left out)."""
    counted = EventName.objects.filter(project=project, count__gt=0).values_list("name", "count").order_by()
    pending = _unprocessed(project).values_list("name").annotate(n=Count("id"))
    totals: Counter[str] = Counter()
    for name, n in counted.union(pending, all=True):
        totals[name] += n
    return dict(totals)


def event_counts_by_day(*, project: Project, since: date) -> dict[date, int]:
    """How many events of the project fall on each UTC day from `since` on (days with none are left out)."""
    counted = (
        EventRollup.objects.filter(project=project, day__gte=since)
        .values_list("day")
        .annotate(n=Sum("count"))
        .order_by()
    )
    # every unprocessed day, cut below: a time condition here would tempt the planner to AND the
    # partial index with the project's (whole-log) time index
    pending = _unprocessed(project).annotate(day=TruncDate("timestamp", tzinfo=UTC)).values_list("day")
    totals: Counter[date] = Counter()
    for day, n in counted.union(pending.annotate(n=Count("id")), all=True):
        if day >= since:
            totals[day] += n
    return {day: n for day, n in totals.items() if n}


def event_last_timestamp(*, project: Project) -> datetime | None:
    """The newest event's timestamp (a few steps down the project's time index); adjustments are not events here."""
    events = Event.objects.filter(project=project).exclude(type=Event.Type.ADJUSTMENT)
    return events.aggregate(last=Max("timestamp"))["last"]


def rule_suggestions_for_project(*, project: Project) -> list[tuple[str, list[str]]]:
    """Each event name the project's engagement rules score, with those rules' names (the simulator's suggestions)."""
    rule_model = apps.get_model("scoring", "ScoringRule")  # scoring sits above ingest: by name, never imported
    rows = (
        rule_model.objects.filter(project=project, kind="engagement")
        .exclude(event_type__in=["", "*"])
        .values_list("event_type", "name")
        .order_by("event_type", "name")
    )
    names: dict[str, list[str]] = {}
    for event_type, name in rows:
        listed = names.setdefault(event_type, [])
        if name and name not in listed:
            listed.append(name)
    return list(names.items())


# Suggestions for the condition builders: paths seen in a bounded sample of the newest rows, read down the
# project's time (events) and score (leads) indexes, so the cost does not grow with the log.
SUGGESTION_SAMPLE = 100  # events of at most 32 KiB each: a few MiB at worst, a few KiB typically
SUGGESTED_PATHS_LIMIT = 300
PATH_DEPTH_LIMIT = 8  # scoring's PATH_PART_LIMIT: a condition path has at most 8 parts
PROFILE_FIELDS = ("email", "name", "company", "userId")  # what fit rules see besides `traits.*`


@dataclass(frozen=True)
class ConditionSuggestions:
    event_names: list[str]
    event_paths: list[str]  # `properties.*` and `context.*`, for engagement rules and event triggers
    profile_paths: list[str]  # `email`, `traits.*`…, for fit rules and automations' lead conditions


def _paths(prefix: str, value: Any, depth: int, found: set[str]) -> None:
    if not isinstance(value, dict) or depth >= PATH_DEPTH_LIMIT:
        return
    for key, child in value.items():
        if not isinstance(key, str) or not key or "." in key or len(key) > 64:
            continue  # not reachable by a dotted path
        path = f"{prefix}.{key}"
        found.add(path)
        _paths(path, child, depth + 1, found)


def _sorted_paths(documents: Iterable[tuple[str, Any]]) -> list[str]:
    found: set[str] = set()
    for prefix, document in documents:
        _paths(prefix, document, 1, found)
    return sorted(found)[:SUGGESTED_PATHS_LIMIT]


def condition_suggestions_for_project(*, project: Project, sample: int = SUGGESTION_SAMPLE) -> ConditionSuggestions:
    """Event names and the property, context and trait paths seen in the project's newest events and leads."""
    events = Event.objects.filter(project=project).order_by("-timestamp").values_list("properties", "context")[:sample]
    event_paths = _sorted_paths(
        (prefix, document)
        for properties, context in events
        for prefix, document in (("properties", properties), ("context", context))
    )
    traits = (
        Lead.objects.filter(project=project, merged_into__isnull=True)
        .order_by("-current_score", "-id")
        .values_list("traits", flat=True)[:sample]
    )
    profile_paths = list(PROFILE_FIELDS) + _sorted_paths(("traits", document) for document in traits)
    return ConditionSuggestions(
        event_names=event_names_for_project(project=project),
        event_paths=event_paths,
        profile_paths=profile_paths,
    )


def events_by_event_id(*, project: Project, event_ids: list[str]) -> dict[str, Event]:
    """The project's events with these client ids, with their leads, in one query."""
    events = Event.objects.filter(project=project, event_id__in=event_ids).select_related("lead")
    return {event.event_id: event for event in events}


def events_filtered_for_project(
    *,
    project: Project,
    event_type: str = "",
    lead_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Event]:
    """The project's events, optionally of one name, of one lead and within [since, until]."""
    events = Event.objects.filter(project=project)
    if event_type:
        events = events.filter(name=event_type)
    if lead_id is not None:
        events = events.filter(lead_id=lead_id)
    if since is not None:
        events = events.filter(timestamp__gte=since)
    if until is not None:
        events = events.filter(timestamp__lte=until)
    return events


def events_unscored_summary() -> dict[str, Any]:
    """Every project's stored events not scored yet: {"n": count, "oldest": earliest received_at}.

    One query on the partial index `event_pending_idx` (unprocessed rows only): it costs the
    backlog, not the events table. /metrics asks it at scrape time (`LEADPULSE_BACKLOG`).
    """
    return Event.objects.filter(processed_at__isnull=True).aggregate(n=Count("*"), oldest=Min("received_at"))


def event_numbers(*, project: Project, now: datetime, days: int = 30, top: int = 12) -> dict[str, Any]:
    """The overview's event numbers in three small queries, whatever the size of the log.

    Days are UTC days; `eventsToday` counts the events from today's UTC midnight on (later ones too).
    """
    today = now.astimezone(UTC).date()
    since = today - timedelta(days=days - 1)
    per_day = event_counts_by_day(project=project, since=since)
    by_name = event_counts_by_name(project=project)
    return {
        "eventsToday": sum(n for day, n in per_day.items() if day >= today),
        "lastEventAt": event_last_timestamp(project=project),
        "eventsByType": dict(sorted(by_name.items(), key=lambda item: (-item[1], item[0]))[:top]),
        "eventsPerDay": [
            {"date": day.isoformat(), "count": per_day.get(day, 0)}
            for day in (since + timedelta(days=i) for i in range(days))
        ],
    }


def lead_numbers(*, project: Project) -> dict[str, Any]:
    """How many live leads the project has, per stage and per matrix cell (every one present), and their average
    score.

    One small query over the project's lead tallies (`ingest.lead_tallies`), never the leads.
    """
    tallies = lead_tallies(project_id=project.id)
    stages = {stage: tallies[stage] for stage in STAGES}
    total = sum(stages.values())
    cells = {cell: tallies[cell.lower()] for cell in CELLS}
    return {"total": total, "stages": stages, "cells": cells, "average": tallies["score_total"] / total if total else 0}


@dataclass(frozen=True)
class LeadProfile:
    """Who a lead says it is: what its company is derived from."""

    email: str
    company: str
    traits: dict[str, Any]


def leads_profiles(*, project_id: int, lead_ids: Iterable[int]) -> dict[int, LeadProfile]:
    """The profiles of the project's live (not merged away) leads among `lead_ids`, in one query."""
    rows = Lead.objects.filter(project_id=project_id, id__in=sorted(set(lead_ids)), merged_into__isnull=True)
    return {
        lead_id: LeadProfile(email, company, traits if isinstance(traits, dict) else {})
        for lead_id, email, company, traits in rows.values_list("id", "email", "company", "traits")
    }


@dataclass(frozen=True)
class LockedProfiles:
    profiles: dict[int, LeadProfile]  # the live (not merged away) leads among those asked for
    merged: list[int]  # the leads merged into them


def leads_profiles_locked(*, project_id: int, lead_ids: Iterable[int]) -> LockedProfiles:
    """`leads_profiles`, and the leads merged into them, `FOR KEY SHARE`-locked in id order, in one query.

    Call it inside a transaction. That is the lock a foreign-key check takes: scoring (`FOR NO KEY UPDATE`)
    and ingest never wait for it, but an erase (`FOR UPDATE`) does, so a row written for these leads before
    commit cannot outlive them; leads erased before are not returned.
    """
    import json  # imported here: this module's header is shared

    from django.db import connection

    from core.sql import int_array

    ids = sorted(set(lead_ids))
    if not ids:
        return LockedProfiles({}, [])
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(Lead._meta.db_table)
        # By the leads' own indexes only: with the project in the condition, a planner whose statistics thought
        # the project small went through the project's index and read (and share-locked) all its leads. Leads
        # are merged within a project only; the project's rows are kept below all the same.
        sql = (
            f"SELECT id, email, company, traits, merged_into_id, project_id FROM {table}"  # noqa: S608
            " WHERE id = ANY(%s::bigint[]) OR merged_into_id = ANY(%s::bigint[]) ORDER BY id FOR KEY SHARE"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [int_array(ids), int_array(ids)])
            rows = cursor.fetchall()
    else:  # SQLite (embedded mode) has one writer at a time
        leads = Lead.objects.filter(project_id=project_id).filter(Q(id__in=ids) | Q(merged_into_id__in=ids))
        rows = list(leads.values_list("id", "email", "company", "traits", "merged_into_id", "project_id"))
    profiles, merged = {}, []
    for lead_id, email, company, traits, merged_into_id, lead_project_id in rows:
        if lead_project_id != project_id:
            continue
        if merged_into_id is not None:
            merged.append(lead_id)
            continue
        if isinstance(traits, str):  # Django has psycopg hand jsonb over as text (JSONField decodes it)
            traits = json.loads(traits)
        profiles[lead_id] = LeadProfile(email, company, traits if isinstance(traits, dict) else {})
    return LockedProfiles(profiles, merged)


def events_for_leads(*, project: Project, lead_ids: Iterable[int] | QuerySet[Any], limit: int = 50) -> list[Event]:
    """The newest events of these leads of the project (ids, or a subquery of them), each with its lead, in one
    query: a company's member activity."""
    events = Event.objects.filter(project=project, lead_id__in=lead_ids).select_related("lead")
    return list(events.order_by("-timestamp", "-id")[: max(limit, 0)])
