"""Per-project event counts by UTC day and name, kept exact by the transactions that change them.

The invariant, at every commit: `EventRollup(project, day, name).count` is the number of the
project's *processed* events with that name whose timestamp falls on that UTC day, and
`EventName(project, name).count` the number with that name. Manual score adjustments (events of
type `adjustment`, which scoring writes) are no one's activity and are never counted. Only three
writes change that set of events, and each updates the counts in its own transaction:

- scoring marks events processed: `events_mark_processed` marks only the still-unprocessed rows
  and counts exactly the rows it marked, so a retried, duplicated or concurrent batch adds
  nothing twice;
- a merge hands a lead's events to another with `processed_at` cleared, to be folded again
  there: `rollups_counted` before, `rollups_subtract` after, and the survivor's fold adds them
  back when it marks them;
- an erasure deletes events: the same two calls take out the processed ones.

An event's project, name and timestamp never change. Readers (`ingest.selectors`) add the
events not processed yet, a scan of the backlog rather than of the log, in the same statement,
so their answers equal a count over every stored event.

Days are UTC dates: projects have no time zone, and the overview has always cut days at UTC
midnight.

On PostgreSQL every writer first takes a transaction-level advisory lock per project (ids in
ascending order). Writers of one project queue there, not on each other's rollup rows, so a
transaction that writes rollups twice (a merge: its fold adds, then it subtracts) cannot
deadlock with a scoring batch that took the same rows in another order. SQLite has one writer
at a time anyway.
"""

from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime

from django.db import connection, transaction
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate

from accounts.selectors import project_ids as all_project_ids
from core.sql import int_array

from .models import Event, EventName, EventRollup

# (project id, UTC day, event name) -> events
Tally = dict[tuple[int, date, str], int]

# bigint advisory-lock keys: this namespace plus the project id ("ROLL"). PostgreSQL keeps the
# one-bigint key space apart from the two-integer one that identity resolution locks in.
LOCK_NAMESPACE = 0x524F4C4C << 32
SQLITE_CHUNK = 10_000  # ids per statement, well under SQLite's 32,766 host parameters


def _quoted(model: type, *fields: str) -> list[str]:
    meta = model._meta  # type: ignore[attr-defined]
    return [connection.ops.quote_name(meta.db_table)] + [
        connection.ops.quote_name(meta.get_field(name).column) for name in fields
    ]


def _projects_lock(project_ids: Collection[int]) -> None:
    """Queue behind the projects' other rollup writers until this transaction ends (PostgreSQL)."""
    if connection.vendor != "postgresql" or not project_ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s + p) FROM unnest(%s::bigint[]) AS p",
            [LOCK_NAMESPACE, sorted(project_ids)],
        )


def events_mark_processed(*, event_pks: Sequence[int], project_ids: Collection[int], processed_at: datetime) -> int:
    """Mark the events that are still unprocessed as processed, and count exactly those; return how many
    were counted (every one but manual adjustments).

    `project_ids`: the projects the events belong to (their rollup writers are locked out until
    commit). One statement on PostgreSQL: an UPDATE … RETURNING feeds two upserts.
    """
    if not event_pks:
        return 0
    with transaction.atomic(savepoint=False):
        _projects_lock(project_ids)
        if connection.vendor == "postgresql":
            return _mark_postgresql(list(event_pks), processed_at)
        tally = _mark_returning(list(event_pks), processed_at)
        _tally_add(tally)
        return sum(tally.values())


def _mark_postgresql(event_pks: list[int], processed_at: datetime) -> int:
    events, pk, processed, project, timestamp, name, kind = _quoted(
        Event, "id", "processed_at", "project", "timestamp", "name", "type"
    )
    rollups, r_project, r_day, r_name, r_count = _quoted(EventRollup, "project", "day", "name", "count")
    names, n_project, n_name, n_count = _quoted(EventName, "project", "name", "count")
    # Only quoted model metadata is interpolated; the values are parameters. Rows are upserted in
    # key order and each key once (GROUP BY): ON CONFLICT may not touch a row twice.
    sql = f"""
        WITH marked AS (
            UPDATE {events} SET {processed} = %s
            WHERE {pk} = ANY(%s::bigint[]) AND {processed} IS NULL
            RETURNING {project} AS project_id, ({timestamp} AT TIME ZONE 'UTC')::date AS day, {name} AS name,
                {kind} AS kind
        ), tally AS (
            SELECT project_id, day, name, count(*) AS n FROM marked WHERE kind <> %s GROUP BY project_id, day, name
        ), by_day AS (
            INSERT INTO {rollups} AS r ({r_project}, {r_day}, {r_name}, {r_count})
            SELECT project_id, day, name, n FROM tally ORDER BY project_id, day, name
            ON CONFLICT ({r_project}, {r_day}, {r_name}) DO UPDATE SET {r_count} = r.{r_count} + EXCLUDED.{r_count}
        ), by_name AS (
            INSERT INTO {names} AS t ({n_project}, {n_name}, {n_count})
            SELECT project_id, name, sum(n) FROM tally GROUP BY project_id, name ORDER BY project_id, name
            ON CONFLICT ({n_project}, {n_name}) DO UPDATE SET {n_count} = t.{n_count} + EXCLUDED.{n_count}
        )
        SELECT coalesce(sum(n), 0) FROM tally
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [processed_at, int_array(event_pks), Event.Type.ADJUSTMENT.value])
        return int(cursor.fetchone()[0])


def _utc_day(value: datetime | str) -> date:
    # SQLite hands back the stored text (UTC, ISO format) unless a converter parsed it
    return value.date() if isinstance(value, datetime) else date.fromisoformat(value[:10])


def _mark_returning(event_pks: list[int], processed_at: datetime) -> Tally:
    """SQLite: UPDATE … RETURNING (3.35+) the marked rows, tallied here."""
    events, pk, processed, project, timestamp, name, kind = _quoted(
        Event, "id", "processed_at", "project", "timestamp", "name", "type"
    )
    stamp = Event._meta.get_field("processed_at").get_db_prep_save(processed_at, connection)
    tally: Counter[tuple[int, date, str]] = Counter()
    with connection.cursor() as cursor:
        for start in range(0, len(event_pks), SQLITE_CHUNK):
            chunk = event_pks[start : start + SQLITE_CHUNK]
            cursor.execute(
                f"UPDATE {events} SET {processed} = %s WHERE {pk} IN ({', '.join(['%s'] * len(chunk))}) "  # noqa: S608
                f"AND {processed} IS NULL RETURNING {project}, {timestamp}, {name}, {kind}",
                [stamp, *chunk],
            )
            for project_id, stamp_value, event_name, event_type in cursor.fetchall():
                if event_type == Event.Type.ADJUSTMENT:
                    continue
                tally[(project_id, _utc_day(stamp_value), event_name)] += 1
    return dict(tally)


def _by_name(tally: Tally) -> dict[tuple[int, str], int]:
    by_name: Counter[tuple[int, str]] = Counter()
    for (project_id, _day, name), n in tally.items():
        by_name[(project_id, name)] += n
    return dict(by_name)


def _tally_add(tally: Tally) -> None:
    """Add the counts, creating missing rows, in key order (INSERT … ON CONFLICT DO UPDATE)."""
    if not tally:
        return
    rollups, r_project, r_day, r_name, r_count = _quoted(EventRollup, "project", "day", "name", "count")
    names, n_project, n_name, n_count = _quoted(EventName, "project", "name", "count")
    adapt = connection.ops.adapt_datefield_value
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {rollups} ({r_project}, {r_day}, {r_name}, {r_count}) VALUES (%s, %s, %s, %s) "  # noqa: S608
            f"ON CONFLICT ({r_project}, {r_day}, {r_name}) "
            f"DO UPDATE SET {r_count} = {rollups}.{r_count} + excluded.{r_count}",
            [(p, adapt(d), name, n) for (p, d, name), n in sorted(tally.items())],
        )
        cursor.executemany(
            f"INSERT INTO {names} ({n_project}, {n_name}, {n_count}) VALUES (%s, %s, %s) "  # noqa: S608
            f"ON CONFLICT ({n_project}, {n_name}) DO UPDATE SET {n_count} = {names}.{n_count} + excluded.{n_count}",
            [(p, name, n) for (p, name), n in sorted(_by_name(tally).items())],
        )


def rollups_counted(*, events: QuerySet[Event]) -> Tally:
    """What these events contribute to the rollups (the processed ones), to subtract once they are gone."""
    rows = (
        events.filter(processed_at__isnull=False)
        .exclude(type=Event.Type.ADJUSTMENT)
        .annotate(day=TruncDate("timestamp", tzinfo=UTC))
        .values_list("project_id", "day", "name")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {(project_id, day, name): n for project_id, day, name, n in rows}


def rollups_subtract(*, counted: Tally) -> None:
    """Take counts out (events deleted, or handed on unprocessed); rows that reach zero go."""
    if not counted:
        return
    project_ids = {project_id for project_id, _, _ in counted}
    rollups, r_project, r_day, r_name, r_count = _quoted(EventRollup, "project", "day", "name", "count")
    names, n_project, n_name, n_count = _quoted(EventName, "project", "name", "count")
    adapt = connection.ops.adapt_datefield_value
    with transaction.atomic(savepoint=False):
        _projects_lock(project_ids)
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {rollups} SET {r_count} = {r_count} - %s "  # noqa: S608
                f"WHERE {r_project} = %s AND {r_day} = %s AND {r_name} = %s",
                [(n, p, adapt(d), name) for (p, d, name), n in sorted(counted.items())],
            )
            cursor.executemany(
                f"UPDATE {names} SET {n_count} = {n_count} - %s WHERE {n_project} = %s AND {n_name} = %s",  # noqa: S608
                [(n, p, name) for (p, name), n in sorted(_by_name(counted).items())],
            )
        # nothing of an erased lead's events stays behind, not even an event name only it had
        touched = {"project_id__in": project_ids, "name__in": {name for _, _, name in counted}, "count__lte": 0}
        EventRollup.objects.filter(**touched, day__in={day for _, day, _ in counted}).delete()
        EventName.objects.filter(**touched).delete()


@contextmanager
def events_deleting(*, events: QuerySet[Event]) -> Iterator[None]:
    """Around any other delete that removes these events (the admin's): they go out of the counts too.

    The events are row-locked first, so no batch marks one of them between the count and the delete.
    """
    with transaction.atomic():
        pks = list(events.select_related(None).select_for_update().order_by("id").values_list("id", flat=True))
        counted = rollups_counted(events=Event.objects.filter(id__in=pks))
        yield
        rollups_subtract(counted=counted)


def rollups_rebuild(*, project_id: int | None = None) -> int:
    """Recount the rollups of one project (or of every project) from its processed events; return the rows.

    The backfill for existing events (the migration runs it) and the repair after any drift,
    e.g. events processed by code that predates the rollups during a rolling deploy. Safe while
    scoring runs: each project is recounted in a transaction of its own, holding its rollup lock.
    """
    project_ids = all_project_ids() if project_id is None else [project_id]
    written = 0
    for pid in project_ids:
        with transaction.atomic():
            _projects_lock([pid])
            EventRollup.objects.filter(project_id=pid).delete()
            EventName.objects.filter(project_id=pid).delete()
            tally = rollups_counted(events=Event.objects.filter(project_id=pid))
            EventRollup.objects.bulk_create(
                [EventRollup(project_id=p, day=d, name=name, count=n) for (p, d, name), n in sorted(tally.items())],
                batch_size=5000,
            )
            EventName.objects.bulk_create(
                [EventName(project_id=p, name=name, count=n) for (p, name), n in sorted(_by_name(tally).items())],
                batch_size=5000,
            )
            written += len(tally)
    return written


def rollups_drift(*, project_id: int) -> dict[str, int]:
    """Stored minus recounted, where they differ: `"<day> <name>"` for days, `"* <name>"` for names.

    Empty when the project's rollups are exact.
    """
    expected = rollups_counted(events=Event.objects.filter(project_id=project_id))
    stored_days = EventRollup.objects.filter(project_id=project_id).values_list("day", "name", "count")
    stored: Counter[str] = Counter()
    for day, name, count in stored_days:
        stored[f"{day} {name}"] += count
        stored[f"* {name}"] += 0
    for name, count in EventName.objects.filter(project_id=project_id).values_list("name", "count"):
        stored[f"* {name}"] += count
    recount: Counter[str] = Counter()
    for (_, day, name), n in expected.items():
        recount[f"{day} {name}"] += n
        recount[f"* {name}"] += n
    drift = {key: stored[key] - recount[key] for key in stored.keys() | recount.keys()}
    return {key: n for key, n in sorted(drift.items()) if n}
