"""What ingest asks of PostgreSQL per request: events of known leads in one autocommitted INSERT, a
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

    # the lead known now: the lookup, then the insert on its own (no BEGIN/COMMIT round trips)
    assert statements_ingesting(project.id, [event("e2", "anon-1")]) == [("SELECT", False), ("INSERT", False)]
    # a batch with one new lead among known ones goes through the transaction again
    mixed = statements_ingesting(project.id, [event("e3", "anon-1"), event("e4", "anon-2")])
    assert all(atomic for verb, atomic in mixed if verb == "INSERT")

    # every event is stored once, on its lead; a repeated id is still a duplicate
    assert events_ingest(project_id=project.id, events=[event("e2", "anon-1")]).duplicates == ["e2"]
    stored = dict(Event.objects.filter(project=project).values_list("event_id", "lead__anonymous_id"))
    assert stored == {"e1": "anon-1", "e2": "anon-1", "e3": "anon-1", "e4": "anon-2"}
    assert Lead.objects.filter(project=project).count() == 2
