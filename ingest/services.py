"""Writes of the ingest app: store accepted events durably, then wake scoring."""

import functools
import logging
import os
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.db.models import JSONField, Model
from django.utils import timezone

from core import metrics
from core.groups import GroupCommit
from core.pipeline import lead_score_request
from core.realtime import project_broadcast
from core.sql import prepared_cursor

# re-exported: the lead tallies' write other apps make (scoring moves leads between stages, merges and erasure
# take them out)
from .lead_tallies import LeadMove as LeadMove
from .lead_tallies import lead_tallies_move as lead_tallies_move
from .lead_tallies import lead_tallies_rebuild as lead_tallies_rebuild
from .models import Event, Lead

# re-exported: the rollups' writes other apps make (scoring marks events processed, merges and erasure subtract)
from .rollups import events_mark_processed as events_mark_processed
from .rollups import rollups_counted as rollups_counted
from .rollups import rollups_subtract as rollups_subtract
from .schema import CanonicalEvent

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    accepted: list[str]
    duplicates: list[str]


IDENTITY_CALLS = ("identify", "alias", "group")


def lead_key(event: CanonicalEvent) -> str:
    """The anonymous id a new lead for this event gets (user-only events get a synthetic one)."""
    return event.anonymous_id or f"user:{event.user_id}"


def _leads_lookup(project_id: int, anonymous_ids: list[str], user_ids: list[str]) -> list[tuple]:
    """(id, anonymous_id, user_id, merged_into_id) of the project's leads with one of these ids.

    Plain SQL: on the single-event path the ORM spent more CPU compiling this one query
    than PostgreSQL spent answering it. Only quoted model metadata is interpolated.
    """
    qn = connection.ops.quote_name
    columns = ", ".join(qn(column) for column in ("id", "anonymous_id", "user_id", "merged_into_id"))
    matches = [f"{qn('anonymous_id')} IN ({', '.join(['%s'] * len(anonymous_ids))})"]
    if user_ids:
        matches.append(f"{qn('user_id')} IN ({', '.join(['%s'] * len(user_ids))})")
    sql = (
        f"SELECT {columns} FROM {qn(Lead._meta.db_table)} "  # noqa: S608
        f"WHERE {qn('project_id')} = %s AND ({' OR '.join(matches)})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [project_id, *anonymous_ids, *user_ids])
        return cursor.fetchall()


def _leads_resolve(
    *, project_id: int, events: Sequence[CanonicalEvent], create: bool = True, none_known: bool = False
) -> list[int] | None:
    """The lead id each event belongs to, creating missing leads; one to three queries.

    `create=False`: one query, and None when a lead would have to be created. `none_known`: the
    caller just found none of the events' leads, so the first lookup is skipped.

    An event goes to the lead of its `userId` when one exists, else to the lead of its
    anonymous id (following merges). Identity calls stay on their anonymous lead so the
    worker can merge that lead into the known one. Never locks or updates existing
    lead rows, so ingest does not wait for scoring.
    """
    anonymous_ids = sorted({lead_key(event) for event in events})
    user_ids = sorted({event.user_id for event in events if event.user_id})

    def lookup() -> tuple[dict[str, int], dict[str, int]]:
        by_anonymous: dict[str, int] = {}
        by_user: dict[str, int] = {}
        rows = _leads_lookup(project_id, anonymous_ids, user_ids)
        for lead_id, anonymous_id, user_id, merged_into_id in sorted(rows):
            by_anonymous[anonymous_id] = merged_into_id or lead_id
            if user_id and not merged_into_id:
                by_user.setdefault(user_id, lead_id)
        return by_anonymous, by_user

    by_anonymous, by_user = ({}, {}) if none_known else lookup()
    missing: dict[str, Lead] = {}
    for event in events:
        key = lead_key(event)
        # identity calls always get their device's lead, so the worker can merge it into the person's
        needs_own = event.type in IDENTITY_CALLS or event.user_id not in by_user
        if key not in by_anonymous and needs_own and key not in missing:
            missing[key] = Lead(
                project_id=project_id,
                anonymous_id=key,
                user_id="" if event.anonymous_id else event.user_id,
                first_seen_at=event.timestamp,
            )
        if key in missing:
            missing[key].first_seen_at = min(missing[key].first_seen_at or event.timestamp, event.timestamp)
    if missing and not create:
        return None
    if missing:
        # In one global order (by key): concurrent requests creating the same leads then wait
        # for each other on the unique index instead of deadlocking in opposite orders.
        _leads_insert(leads=[missing[key] for key in sorted(missing)])
        by_anonymous, by_user = lookup()

    def resolve(event: CanonicalEvent) -> int:
        if event.user_id in by_user and not (event.type in IDENTITY_CALLS and lead_key(event) in by_anonymous):
            return by_user[event.user_id]
        return by_anonymous[lead_key(event)]

    return [resolve(event) for event in events]


def _insert_returning(objects: Sequence[Model], *, unique: tuple[str, str], returning: Sequence[str]) -> list[tuple]:
    """Insert `objects` (all of one model) in one statement, skipping any that conflict on the `unique`
    columns; return the `returning` columns of the rows inserted.

    Django's `bulk_create(ignore_conflicts=True)` cannot tell which rows were inserted, and what
    follows must count each row once even when clients race, so this is one
    `INSERT … ON CONFLICT DO NOTHING RETURNING` (PostgreSQL and SQLite ≥ 3.35).
    """
    meta = objects[0]._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    qn = connection.ops.quote_name
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    # Only quoted model metadata is interpolated; every value is a parameter.
    sql = (
        f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(str(f.column)) for f in fields)}) "  # noqa: S608
        f"VALUES {', '.join([row] * len(objects))} "
        f"ON CONFLICT ({', '.join(qn(column) for column in unique)}) DO NOTHING "
        f"RETURNING {', '.join(qn(column) for column in returning)}"
    )
    params = [f.get_db_prep_save(f.pre_save(obj, True), connection) for obj in objects for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _leads_insert(*, leads: list[Lead]) -> None:
    """Insert the leads, skipping any whose (project, anonymous id) exists; count the inserted ones in the
    tallies (a lead a concurrent request created is counted by that request)."""
    inserted = _insert_returning(leads, unique=("project_id", "anonymous_id"),
                                 returning=("project_id", "lead_stage", "current_score", "matrix_cell"))  # fmt: skip
    lead_tallies_move(
        moves=[LeadMove(project_id, None, (stage, score, cell)) for project_id, stage, score, cell in inserted]
    )


def _events_insert(*, events: list[Event]) -> set[str]:
    """Insert events, skipping any whose (project, event_id) exists; return the inserted ids (the duplicate
    count is exact even when clients race)."""
    inserted = _insert_returning(events, unique=("project_id", "event_id"), returning=("event_id",))
    return {event_id for (event_id,) in inserted}


class IngestedBroadcasts:
    """`event.ingested` to a project's group: the first of a burst at once, the rest merged.

    A busy project would otherwise cost one channel-layer send per ingest request (about a
    millisecond of CPU each, most of a small request's cost beyond the database). Within a
    window after a send, a process merges the project's later events into one message (counts
    added, the newest `MAX_EVENTS` listed in arrival order), sent when the window ends.
    """

    WINDOW_SECONDS = 0.1
    MAX_EVENTS = 50

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a child has none of the parent's timers

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._open: set[int] = set()  # projects within a window
        self._pending: dict[int, tuple[int, list[dict]]] = {}

    def send(self, *, project_id: int, events: list[dict], count: int) -> None:
        with self._lock:
            if project_id in self._open:
                total, merged = self._pending.get(project_id, (0, []))
                self._pending[project_id] = (total + count, [*merged, *events][-self.MAX_EVENTS :])
                return
            self._open.add(project_id)
        self._broadcast(project_id, count, events)

    def _broadcast(self, project_id: int, count: int, events: list[dict]) -> None:
        try:
            project_broadcast(project_id=project_id, type="event.ingested", payload={"count": count, "events": events})
        finally:
            timer = threading.Timer(self.WINDOW_SECONDS, self._window_end, args=(project_id,))
            timer.daemon = True
            timer.start()

    def _window_end(self, project_id: int) -> None:
        with self._lock:
            pending = self._pending.pop(project_id, None)
            if pending is None:
                self._open.discard(project_id)
                return
        self._broadcast(project_id, *pending)


ingested_broadcasts = IngestedBroadcasts()


# PostgreSQL's deadlock victim and serialization failure: the whole transaction may simply run again.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
INGEST_ATTEMPTS = 4


def _retryable(error: DatabaseError) -> bool:
    return getattr(error.__cause__, "sqlstate", None) in RETRYABLE_SQLSTATES


def events_ingest(*, project_id: int, events: Sequence[CanonicalEvent]) -> IngestResult:
    """Store a request's valid events atomically (one INSERT, or one transaction when leads are new); enqueue
    scoring after commit.

    A constant number of queries whatever the number of events: one lead lookup (plus
    one insert and one re-read when leads are new) and one event insert. A deadlock
    victim or serialization failure runs the transaction again (a few times), which is
    safe because nothing of it was kept and events are inserted `ON CONFLICT DO NOTHING`;
    inside a caller's transaction there is nothing to retry, so the error goes up.
    """
    if not events:
        return IngestResult(accepted=[], duplicates=[])
    received_at = timezone.now()
    for attempt in range(1, INGEST_ATTEMPTS + 1):
        try:
            return _events_store(project_id=project_id, events=events, received_at=received_at)
        except DatabaseError as error:
            if attempt == INGEST_ATTEMPTS or connection.in_atomic_block or not _retryable(error):
                raise
            logger.info("ingest transaction retried (attempt %d): %s", attempt, error.__cause__.__class__.__name__)
            time.sleep(random.uniform(0, 0.02 * attempt))  # jitter, so victims do not collide again
    raise AssertionError("unreachable")


def _events_store(*, project_id: int, events: Sequence[CanonicalEvent], received_at: datetime) -> IngestResult:
    """Store the events: when all their leads exist, one autocommitted INSERT (the common case:
    no BEGIN and COMMIT round trips), for a single anonymous event on PostgreSQL one statement with
    its lead's lookup; otherwise the leads are created and the events stored in one transaction."""
    none_known = False
    single = events[0] if len(events) == 1 else None
    if single and not single.user_id and single.type not in IDENTITY_CALLS and connection.vendor == "postgresql":
        # The single event of an anonymous id: lead lookup and insert in one statement (a
        # data-modifying WITH, which SQLite lacks).
        result = _event_store_on_known_lead(project_id=project_id, event=events[0], received_at=received_at)
        if result is not None:
            metrics.ingest_events(accepted=len(result.accepted), duplicate=len(result.duplicates))
            return result
        none_known = True
    elif not connection.in_atomic_block:
        known = _leads_resolve(project_id=project_id, events=events, create=False)
        if known is not None:
            # One statement is atomic by itself. A lead merged or erased since the lookup is what
            # the transaction would meet too (its lookup locks nothing): scoring hands a merged
            # lead's events on, and an erased lead's foreign key fails the insert as it would fail
            # the transaction's commit.
            result = _events_write(project_id=project_id, events=events, lead_ids=known, received_at=received_at)
            metrics.ingest_events(accepted=len(result.accepted), duplicate=len(result.duplicates))
            return result
    with transaction.atomic():
        lead_ids = _leads_resolve(project_id=project_id, events=events, none_known=none_known)
        assert lead_ids is not None  # created when missing
        result = _events_write(project_id=project_id, events=events, lead_ids=lead_ids, received_at=received_at)
    metrics.ingest_events(accepted=len(result.accepted), duplicate=len(result.duplicates))
    return result


def _events_write(
    *, project_id: int, events: Sequence[CanonicalEvent], lead_ids: list[int], received_at: datetime
) -> IngestResult:
    """Insert the events of resolved leads; enqueue their scoring and the broadcast once committed."""
    rows = [
        Event(
            project_id=project_id,
            lead_id=lead_id,
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
        for event, lead_id in zip(events, lead_ids, strict=True)
    ]
    # Sorted (stably: a repeated id keeps its first row) for the same reason as new leads.
    inserted = _events_insert(events=sorted(rows, key=lambda row: row.event_id))
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
        _events_stored(
            project_id=project_id, stored=[(row.event_id, row.name, row.lead_id, row.timestamp) for row in stored]
        )
    return IngestResult(accepted=accepted, duplicates=duplicates)


def _events_stored(*, project_id: int, stored: list[tuple[str, str, int, datetime]]) -> None:
    """Once the (event id, name, lead id, timestamp) stored commit: enqueue their leads' scoring, broadcast them."""
    touched = {lead_id for _, _, lead_id, _ in stored}
    summary = [
        {"eventId": event_id, "eventType": name, "leadId": lead_id, "timestamp": timestamp.isoformat()}
        for event_id, name, lead_id, timestamp in stored[:50]
    ]
    transaction.on_commit(lambda: lead_score_request(lead_ids=touched))
    count = len(stored)
    transaction.on_commit(lambda: ingested_broadcasts.send(project_id=project_id, events=summary, count=count))


@functools.cache
def _events_on_known_leads_sql(rows: int) -> tuple[str, list[tuple[str, bool]]]:
    """The statement of `_events_store_on_known_leads` for `rows` events, and each event's fields in the
    order of its parameters (name, whether it is JSON).

    Each event's lead is found as `_leads_resolve` finds it for such an event (by its anonymous id, following a
    merge) and the events of found leads are inserted `ON CONFLICT DO NOTHING`, in key order (so that two
    statements never wait on each other's keys in opposite orders); per event, in the order given: its
    position, its lead (NULL: none) and the lead it was stored on (NULL: not stored, a duplicate).
    """
    qn = connection.ops.quote_name
    meta, lead = Event._meta, Lead._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key and f.name != "lead"]
    columns = [qn(str(f.column)) for f in fields]
    cells = ", ".join(f"CAST(%s AS {f.db_type(connection)})" for f in fields)
    values = ", ".join(f"(CAST(%s AS integer), {cells})" for _ in range(rows))
    stored_fields = [f for f in meta.concrete_fields if not f.primary_key]
    inserted = ", ".join(qn(str(f.column)) for f in stored_fields)
    selected = ", ".join("lead.id" if f.name == "lead" else f"input.{qn(str(f.column))}" for f in stored_fields)
    project, event_id, anonymous_id = qn("project_id"), qn("event_id"), qn("anonymous_id")
    # Only quoted model metadata is interpolated; every value is a parameter.
    sql = (
        f"WITH input (ord, {', '.join(columns)}) AS (VALUES {values}), "  # noqa: S608
        f"lead AS (SELECT input.ord, COALESCE(l.{qn('merged_into_id')}, l.{qn('id')}) AS id "
        f"FROM input JOIN {qn(lead.db_table)} l "
        f"ON l.{project} = input.{project} AND l.{anonymous_id} = input.{anonymous_id}), "
        f"stored AS (INSERT INTO {qn(meta.db_table)} ({inserted}) "
        f"SELECT {selected} FROM input JOIN lead ON lead.ord = input.ord "
        f"ORDER BY input.{project}, input.{event_id} "
        f"ON CONFLICT ({project}, {event_id}) DO NOTHING RETURNING {project}, {event_id}, {qn('lead_id')}) "
        "SELECT input.ord, lead.id, stored.lead_id FROM input LEFT JOIN lead ON lead.ord = input.ord "
        f"LEFT JOIN stored ON stored.{project} = input.{project} AND stored.{event_id} = input.{event_id} "
        "ORDER BY input.ord"
    )
    return sql, [(f.name, isinstance(f, JSONField)) for f in fields]


# (project id, event, received at) of a single anonymous event to store on its lead
KnownLeadEvent = tuple[int, CanonicalEvent, datetime]


def _events_store_on_known_leads(events: Sequence[KnownLeadEvent]) -> list[tuple[int | None, int | None]]:
    """Store single events of anonymous ids whose leads exist, in one statement (atomic by itself, so no
    transaction; see `_events_on_known_leads_sql`); per event, (its lead, the lead it was stored on): (None,
    None) when it has no lead, (lead, None) for a duplicate."""
    sql, fields = _events_on_known_leads_sql(len(events))
    adapt_json = connection.ops.adapt_json_value
    params: list[Any] = []
    for position, (project_id, event, received_at) in enumerate(events):
        values: dict[str, Any] = {
            "project": project_id,
            "event_id": event.event_id,
            "type": event.type,
            "name": event.name,
            "anonymous_id": event.anonymous_id,
            "user_id": event.user_id,
            "session_id": event.session_id,
            "properties": event.properties,
            "context": event.context,
            "timestamp": event.timestamp,
            "received_at": received_at,
            "processed_at": None,
        }
        # the values as the fields would adapt them (JSON wrapped; text, integers and aware datetimes as they are)
        params.append(position)
        params += [adapt_json(values[name], None) if is_json else values[name] for name, is_json in fields]
    with prepared_cursor(connection) as cursor:
        cursor.execute(sql, params)
        return [(lead_id, stored_on) for _, lead_id, stored_on in cursor.fetchall()]


def _known_lead_stores_grouped(events: Sequence[KnownLeadEvent]) -> list[tuple[int | None, int | None] | Exception]:
    """A round of concurrent requests' single events, in one statement; when it fails, each event in a
    statement of its own, so that one event's error (or a deadlock with another round) is only its own."""
    try:
        return list(_events_store_on_known_leads(events))
    except DatabaseError:
        if len(events) == 1:
            raise
    outcomes: list[tuple[int | None, int | None] | Exception] = []
    for event in events:
        try:
            outcomes += _events_store_on_known_leads([event])
        except DatabaseError as error:
            outcomes.append(error)
    return outcomes


# A web process's concurrent single-event requests share one INSERT (core.groups): the leading request's
# thread runs it on its connection, outside any transaction.
_known_lead_stores = GroupCommit(
    "ingest-single-event", _known_lead_stores_grouped, key=lambda stored: (stored[0], stored[1].event_id)
)


def _event_store_on_known_lead(*, project_id: int, event: CanonicalEvent, received_at: datetime) -> IngestResult | None:
    """Store one event of an anonymous id whose lead exists in one statement, shared with concurrent requests'
    (see `_known_lead_stores`); None when there is no lead."""
    item = (project_id, event, received_at)
    if connection.in_atomic_block:  # the caller's transaction is its own: no other request's event joins it
        lead_id, stored_on = _events_store_on_known_leads([item])[0]
    else:
        lead_id, stored_on = _known_lead_stores.submit(item)
    if lead_id is None:
        return None
    if stored_on is None:
        return IngestResult(accepted=[], duplicates=[event.event_id])
    _events_stored(project_id=project_id, stored=[(event.event_id, event.name, stored_on, event.timestamp)])
    return IngestResult(accepted=[event.event_id], duplicates=[])


@transaction.atomic
def lead_create(
    *, project_id: int, anonymous_id: str, email: str = "", name: str = "", company: str = ""
) -> tuple[Lead, bool]:
    """Create a lead by hand, or return the existing one for that anonymous id (filling blanks)."""
    lead, created = Lead.objects.get_or_create(
        project_id=project_id,
        anonymous_id=anonymous_id,
        defaults={"email": email, "name": name, "company": company},
    )
    if not created:
        updates = {
            f: v for f, v in (("email", email), ("name", name), ("company", company)) if v and not getattr(lead, f)
        }
        if updates:
            for field, value in updates.items():
                setattr(lead, field, value)
            lead.save(update_fields=[*updates, "updated_at"])
    if lead.merged_into_id:
        lead = Lead.objects.get(pk=lead.merged_into_id)
    # the profile may have changed: fit rules look at it
    lead_id = lead.id
    transaction.on_commit(lambda: lead_score_request(lead_ids=[lead_id]))
    return lead, created
