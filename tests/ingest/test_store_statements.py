"""What ingest asks of PostgreSQL per request: a single event of a known lead in one autocommitted
statement (lookup and insert), events of known leads in one lookup and one autocommitted INSERT, a
transaction only when leads are created (real commits: the test's own transaction would hide both)."""

from datetime import UTC, datetime

import pytest
from django.db import connection

from ingest.models import Event, Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from tests.accounts.factories import project_with_owner

pytestmark = pytest.mark.django_db(transaction=True)


def event(event_id: str, lead: str) -> CanonicalEvent:
    return CanonicalEvent(event_id=event_id, name="page_view", anonymous_id=lead, timestamp=datetime.now(UTC))


def statements_ingesting(project_id: int, events: list[CanonicalEvent]) -> list[tuple[str, bool]]:
    """(the statement's first word, whether it ran inside a transaction) for each statement of the ingest."""
    seen: list[tuple[str, bool]] = []

    def record(execute, sql, params, many, context):
        seen.append((sql.split()[0].upper(), context["connection"].in_atomic_block))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        events_ingest(project_id=project_id, events=events)
    return seen


def test_known_leads_cost_one_lookup_and_one_autocommitted_insert():
    project = project_with_owner()[0]
    # a new lead: created and its event stored in one transaction
    first = statements_ingesting(project.id, [event("e1", "anon-1")])
    assert ("INSERT", True) in first and all(atomic for verb, atomic in first if verb == "INSERT")

    # the lead known now: one statement looks it up and inserts the event (no BEGIN/COMMIT round trips)
    assert statements_ingesting(project.id, [event("e2", "anon-1")]) == [("WITH", False)]
    # a batch with one new lead among known ones goes through the transaction again
    mixed = statements_ingesting(project.id, [event("e3", "anon-1"), event("e4", "anon-2")])
    assert all(atomic for verb, atomic in mixed if verb == "INSERT")
    # a batch of known leads: the lookup, then the insert on its own
    known = statements_ingesting(project.id, [event("e5", "anon-1"), event("e6", "anon-2")])
    assert known == [("SELECT", False), ("INSERT", False)]

    # every event is stored once, on its lead; a repeated id is still a duplicate, in one statement too
    duplicate: list = []
    with connection.execute_wrapper(lambda execute, *args: duplicate.append(args[0]) or execute(*args)):
        assert events_ingest(project_id=project.id, events=[event("e2", "anon-1")]).duplicates == ["e2"]
    assert len(duplicate) == 1
    stored = dict(Event.objects.filter(project=project).values_list("event_id", "lead__anonymous_id"))
    assert stored == {"e1": "anon-1", "e2": "anon-1", "e3": "anon-1", "e4": "anon-2", "e5": "anon-1", "e6": "anon-2"}
    assert Lead.objects.filter(project=project).count() == 2


def test_a_single_event_of_a_merged_lead_goes_to_the_survivor_in_one_statement():
    project = project_with_owner()[0]
    events_ingest(project_id=project.id, events=[event("e1", "device"), event("e2", "person")])
    device, person = (Lead.objects.get(project=project, anonymous_id=key) for key in ("device", "person"))
    Lead.objects.filter(pk=device.pk).update(merged_into=person)

    assert statements_ingesting(project.id, [event("e3", "device")]) == [("WITH", False)]

    assert Event.objects.get(project=project, event_id="e3").lead_id == person.pk


def test_the_event_log_keeps_only_the_indexes_and_the_constraint_it_needs():
    """Every index costs each insert and each scoring's `processed_at` update: the lead's and the project's single
    indexes are covered by composite ones. The lead's foreign key stays (an insert racing an erasure fails); the
    project's is implied by it. Deleting a project still deletes its events (Django cascades)."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Event._meta.db_table)
    indexed = sorted(tuple(c["columns"]) for c in constraints.values() if c["index"] or c["unique"])
    assert indexed == [
        ("id",), ("lead_id", "timestamp", "event_id"), ("lead_id", "timestamp", "event_id"), ("project_id", "event_id"),
        ("project_id", "timestamp"),
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'event_pending_idx'")
        assert cursor.fetchone()[0].endswith('(lead_id, "timestamp", event_id) WHERE (processed_at IS NULL)')
    assert [c["foreign_key"] for c in constraints.values() if c["foreign_key"]] == [("ingest_lead", "id")]

    project = project_with_owner()[0]
    other = project_with_owner()[0]
    events_ingest(project_id=project.id, events=[event("e1", "anon-1"), event("e2", "anon-2")])
    events_ingest(project_id=other.id, events=[event("e1", "anon-1")])
    project.delete()
    assert list(Event.objects.values_list("project_id", flat=True)) == [other.id]
    assert list(Lead.objects.values_list("project_id", flat=True)) == [other.id]


def test_the_single_event_statement_is_prepared_once_per_connection():
    """PostgreSQL parsed and planned the single event's statement at every request (more of its CPU than running
    it): psycopg prepares it on its connection after a few runs (`core.sql.prepared_cursor`)."""
    project = project_with_owner()[0]
    events_ingest(project_id=project.id, events=[event("e0", "anon-1")])  # the lead exists now

    def prepared() -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
            return [statement for (statement,) in cursor.fetchall() if "ingest_event" in statement]

    for i in range(1, 7):  # prepared at its fifth run, unless an earlier test's runs on this connection did it
        assert events_ingest(project_id=project.id, events=[event(f"e{i}", "anon-1")]).accepted == [f"e{i}"]
    assert len(prepared()) == 1
    assert prepared()[0].startswith("WITH input")
    for i in range(7, 10):  # and only once
        assert events_ingest(project_id=project.id, events=[event(f"e{i}", "anon-1")]).accepted == [f"e{i}"]
    assert len(prepared()) == 1
    assert Event.objects.filter(project=project).count() == 10
