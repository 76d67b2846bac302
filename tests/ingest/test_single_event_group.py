"""Concurrent single-event requests of one process share one INSERT (core.groups.GroupCommit in
ingest.services), against the real PostgreSQL: while one request's statement runs, the others queue and
then go in one statement, each answered as if alone (stored on its lead, a duplicate, no lead yet, or an
error of its own)."""

import threading
import time
from datetime import UTC, datetime

import psycopg
import pytest
from django.conf import settings
from django.db import DataError, connection, connections, transaction

from core.metrics import GROUPED_ITEMS
from ingest import services
from ingest.models import Event, Lead
from ingest.schema import CanonicalEvent
from ingest.services import events_ingest
from tests.accounts.factories import project_with_owner

pytestmark = pytest.mark.django_db(transaction=True)


def event(event_id: str, lead: str, name: str = "page_view") -> CanonicalEvent:
    return CanonicalEvent(event_id=event_id, name=name, anonymous_id=lead, timestamp=datetime.now(UTC))


def grouped() -> float:
    return GROUPED_ITEMS.labels(group="ingest-single-event")._value.get()


def queued() -> int:
    return len(services._known_lead_stores._queue)


def wait_for(condition, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def ingest_in_thread(project_id: int, item: CanonicalEvent, outcomes: dict, *, atomic: bool = False):
    def run() -> None:
        try:
            if atomic:
                with transaction.atomic():
                    outcomes[item.event_id, item.anonymous_id] = events_ingest(project_id=project_id, events=[item])
            else:
                outcomes[item.event_id, item.anonymous_id] = events_ingest(project_id=project_id, events=[item])
        except Exception as error:
            outcomes[item.event_id, item.anonymous_id] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def queue_behind(threads: list[threading.Thread], thread: threading.Thread) -> None:
    """`thread`'s request is queued behind `threads`' (so they queue in a known order)."""
    threads.append(thread)
    count = len(threads)
    wait_for(lambda: queued() == count)


@pytest.fixture
def lead_locked():
    """Another session holds the lead `held`'s row: an event stored on it waits (its foreign key's share lock)."""
    database = settings.DATABASES["default"]
    other = psycopg.connect(
        host=database["HOST"],
        port=database["PORT"] or 5432,
        user=database["USER"],
        dbname=connection.settings_dict["NAME"],
    )

    def lock(project_id: int) -> None:
        other.execute(
            "SELECT 1 FROM ingest_lead WHERE project_id = %s AND anonymous_id = 'held' FOR UPDATE", [project_id]
        )

    yield lock, other
    other.close()


@pytest.fixture
def round_held(lead_locked):
    """A project whose leads `held` and anon-0…anon-{n-1} exist, and a first request queued on `held`, its statement
    waiting on the lead's row lock another session holds: (project, threads, outcomes, release)."""
    lock, other = lead_locked

    def start(known: int):
        project = project_with_owner()[0]
        leads = ["held", *(f"anon-{i}" for i in range(known))]
        events_ingest(project_id=project.id, events=[event(f"seed-{lead}", lead) for lead in leads])
        lock(project.id)
        outcomes: dict = {}
        threads = [ingest_in_thread(project.id, event("first", "held"), outcomes)]
        wait_for(lambda: queued() == 1)
        return project, threads, outcomes, other.commit

    return start


def test_requests_arriving_during_a_statement_share_the_next_one_each_answered_as_alone(round_held):
    before = grouped()
    project, threads, outcomes, release = round_held(8)  # the first request's statement waits on the held lead
    time.sleep(0.1)
    # meanwhile: eight known leads' events, one repeating another's id (it waits for the round after), an
    # event of a new lead, an event that PostgreSQL refuses, and an already-stored id
    arrivals = [event(f"e-{i}", f"anon-{i}") for i in range(8)]
    arrivals += [
        event("e-0", "anon-1"),
        event("new", "anon-new"),
        event("bad", "anon-2", name="nul\x00"),
        event("seed-anon-3", "anon-3"),
    ]
    for item in arrivals:
        queue_behind(threads, ingest_in_thread(project.id, item, outcomes))
    # a request inside a transaction of its own does not join them: it is answered while they wait
    inside = ingest_in_thread(project.id, event("inside", "anon-5"), outcomes, atomic=True)
    inside.join(5)
    assert outcomes["inside", "anon-5"].accepted == ["inside"]
    assert not any(key in outcomes for key in [("first", "held"), ("e-1", "anon-1")])

    release()  # the held lead is free
    for thread in threads:
        thread.join(10)

    assert outcomes["first", "held"].accepted == ["first"]
    assert all(outcomes[f"e-{i}", f"anon-{i}"].accepted == [f"e-{i}"] for i in range(8))
    assert outcomes["e-0", "anon-1"].duplicates == ["e-0"]  # the same id: stored once, by the first
    assert outcomes["new", "anon-new"].accepted == ["new"]  # no lead yet: created in a transaction of its own
    assert outcomes["seed-anon-3", "anon-3"].duplicates == ["seed-anon-3"]
    assert isinstance(outcomes["bad", "anon-2"], DataError)  # its error is its own
    # the eleven that queued while the first ran went in one statement; when PostgreSQL refused it, each
    # went again alone, so only the refused event failed (the repeated id ran in the round after)
    assert grouped() - before == 11
    stored = dict(Event.objects.filter(project=project).values_list("event_id", "lead__anonymous_id"))
    assert {key: stored[key] for key in ["first", "inside", "new", *(f"e-{i}" for i in range(8))]} == {
        "first": "held", "inside": "anon-5", "new": "anon-new", **{f"e-{i}": f"anon-{i}" for i in range(8)}
    }  # fmt: skip
    assert "bad" not in stored
    assert Lead.objects.filter(project=project).count() == 1 + 8 + 1  # held, anon-0…7, the new one


def test_a_round_is_one_statement_inserting_in_key_order(round_held):
    """One INSERT stores a round's events in key order (so that two rounds never wait on each other's keys in
    opposite orders): they arrive in the reverse order, and their ids still follow their keys."""
    before = grouped()
    project, threads, outcomes, release = round_held(5)
    for i in reversed(range(5)):
        queue_behind(threads, ingest_in_thread(project.id, event(f"e-{i}", f"anon-{i}"), outcomes))
    release()
    for thread in threads:
        thread.join(10)

    assert grouped() - before == 5
    assert all(outcomes[f"e-{i}", f"anon-{i}"].accepted == [f"e-{i}"] for i in range(5))
    ids = Event.objects.filter(project=project, event_id__startswith="e-").order_by("id")
    assert [row.event_id for row in ids] == [f"e-{i}" for i in range(5)]
