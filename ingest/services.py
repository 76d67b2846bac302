"""Writes of the ingest app: store accepted events durably, then wake scoring."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from leadpulse.pipeline import lead_score_request
from leadpulse.realtime import project_broadcast

from .models import Event, Lead
from .schema import CanonicalEvent


@dataclass(frozen=True)
class IngestResult:
    accepted: list[str]
    duplicates: list[str]


def _leads_resolve(*, project_id: int, anonymous_ids: set[str], first_seen: dict[str, datetime]) -> dict[str, int]:
    """Map anonymous ids to the lead ids their events belong to, creating missing leads.

    Never locks or updates existing lead rows, so ingest does not wait for scoring.
    """

    def lookup() -> dict[str, int]:
        rows = Lead.objects.filter(project_id=project_id, anonymous_id__in=anonymous_ids).values_list(
            "anonymous_id", "id", "merged_into_id"
        )
        return {anonymous_id: merged_into_id or lead_id for anonymous_id, lead_id, merged_into_id in rows}

    found = lookup()
    missing = anonymous_ids - found.keys()
    if missing:
        Lead.objects.bulk_create(
            [
                Lead(project_id=project_id, anonymous_id=anonymous_id, first_seen_at=first_seen[anonymous_id])
                for anonymous_id in sorted(missing)
            ],
            ignore_conflicts=True,
        )
        found = lookup()
    return found


def _events_insert(*, events: list[Event]) -> set[str]:
    """Insert events, skipping any whose (project, event_id) exists; return the inserted ids.

    Django's `bulk_create(ignore_conflicts=True)` cannot tell which rows were inserted,
    and the duplicate count must be exact even when clients race, so this is one
    `INSERT … ON CONFLICT DO NOTHING RETURNING` (PostgreSQL and SQLite ≥ 3.35).
    """
    meta = Event._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    qn = connection.ops.quote_name
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    # Only quoted model metadata is interpolated; every value is a parameter.
    sql = (
        f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(str(f.column)) for f in fields)}) "  # noqa: S608
        f"VALUES {', '.join([row] * len(events))} "
        f"ON CONFLICT ({qn('project_id')}, {qn('event_id')}) DO NOTHING RETURNING {qn('event_id')}"
    )
    params = [f.get_db_prep_save(f.pre_save(event, True), connection) for event in events for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {inserted for (inserted,) in cursor.fetchall()}


def events_ingest(*, project_id: int, events: Sequence[CanonicalEvent]) -> IngestResult:
    """Store a request's valid events in one transaction; enqueue scoring after commit.

    A constant number of queries whatever the number of events: one lead lookup (plus
    one insert and one re-read when leads are new) and one event insert.
    """
    if not events:
        return IngestResult(accepted=[], duplicates=[])
    received_at = timezone.now()
    first_seen: dict[str, datetime] = {}
    for event in events:
        first_seen[event.anonymous_id] = min(event.timestamp, first_seen.get(event.anonymous_id, event.timestamp))

    with transaction.atomic():
        lead_ids = _leads_resolve(project_id=project_id, anonymous_ids=set(first_seen), first_seen=first_seen)
        rows = [
            Event(
                project_id=project_id,
                lead_id=lead_ids[event.anonymous_id],
                event_id=event.event_id,
                type=event.type,
                name=event.name,
                anonymous_id=event.anonymous_id,
                user_id=event.user_id,
                session_id=event.session_id,
                properties=event.properties,
                context=event.context,
                timestamp=event.timestamp,
                received_at=received_at,
            )
            for event in events
        ]
        inserted = _events_insert(events=rows)
        # Within one request the same id may appear twice: only its first row was stored.
        stored: list[Event] = []
        accepted: list[str] = []
        duplicates: list[str] = []
        seen: set[str] = set()
        for row in rows:
            if row.event_id in inserted and row.event_id not in seen:
                seen.add(row.event_id)
                stored.append(row)
                accepted.append(row.event_id)
            else:
                duplicates.append(row.event_id)

        if stored:
            touched = {row.lead_id for row in stored}
            summary = [
                {
                    "eventId": row.event_id,
                    "eventType": row.name,
                    "leadId": row.lead_id,
                    "timestamp": row.timestamp.isoformat(),
                }
                for row in stored[:50]
            ]
            transaction.on_commit(lambda: lead_score_request(lead_ids=touched))
            transaction.on_commit(
                lambda: project_broadcast(
                    project_id=project_id, type="event.ingested", payload={"count": len(stored), "events": summary}
                )
            )
    return IngestResult(accepted=accepted, duplicates=duplicates)
