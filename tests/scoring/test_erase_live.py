"""Leads erased (GDPR) while real worker processes score, merge or skip them: nothing comes back, nothing fails.

Each test fixes one interleaving with row locks held from a connection of its own: a worker
process (or the erase, through the API) is stopped on a row the test holds, the other party
is started and seen waiting in `pg_blocking_pids` on the statement named below, then the row
is let go. The workers are the session's (tests/conftest.py); they are woken only when the
test says so, by holding the scoring wake-up marker (a Redis key, core.pipeline) while events
are stored. Every test ends with the project's rollups (ingest.rollups) equal to a fresh count
of the events left: an erase takes out exactly what the batches and merges it raced counted.
"""

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC

import psycopg
import pytest
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from core.pipeline import PENDING_KEY, WAKE_KEY, WAKE_LATER_SECONDS, lead_score_request, lead_score_wake
from ingest.models import Event, EventName, EventRollup, Lead
from ingest.rollups import LOCK_NAMESPACE
from scoring.models import ScoreHistory
from tests.accounts.factories import project_with_owner
from tests.conftest import client_for
from tests.live import WorkerPool, wait_until
from tests.scoring.test_batch_live import all_scored, assert_pure_fold, mixed_backlog, post

pytestmark = pytest.mark.live

# The statements each party is expected to wait on (every fragment in the statement), as the code is now.
# pg_stat_activity keeps a statement's first 1 kB (track_activity_query_size): match what comes early.
# a batch marking the events it folded processed (ingest.rollups.events_mark_processed: one UPDATE … RETURNING
# feeding the rollups' upserts, run under the project's rollup lock)
BATCH_MARKS = ("WITH marked AS", 'UPDATE "ingest_event" SET "processed_at"')
# a batch handing a merged lead's late events on to its survivor (scoring.services.batch._leads_fold)
BATCH_HANDS_ON = ('UPDATE "ingest_event" SET "lead_id"', '"processed_at" IS NULL')
# a merge moving the source's events to the target, to be folded again there (scoring.services.identity.lead_merge)
MERGE_MOVES = ('UPDATE "ingest_event" SET "lead_id"', '"processed_at" = NULL')
# identity resolution locking the device and the lead it is about to merge into, whole rows (lead_identify;
# its `FOR NO KEY UPDATE` is past the first 1 kB, but a plain select never waits for a row lock)
MERGE_LOCKS = ('SELECT "ingest_lead"."id", "ingest_lead"."created_at", ',)
# lead_erase: locking the leads merged into the lead, then the lead, then deleting their events
ERASE_LOCKS_MERGED = ('SELECT "ingest_lead"."id" AS "id" FROM "ingest_lead"', '"merged_into_id" =', "FOR UPDATE")
ERASE_LOCKS_LEAD = ('SELECT "ingest_lead"."merged_into_id" AS "merged_into_id" FROM', '."id" =', "FOR UPDATE")
ERASE_DELETES_EVENTS = ('DELETE FROM "ingest_event"',)


class Rows:
    """A connection of the test's own that holds rows locked, and a second one that sees who waits on whom."""

    def __init__(self) -> None:
        db = settings.DATABASES["default"]
        params = {"host": db["HOST"], "port": db["PORT"], "user": db["USER"], "dbname": db["NAME"]}
        self.holder = psycopg.connect(**params)
        self.watcher = psycopg.connect(**params, autocommit=True)
        self.pid = self.holder.info.backend_pid

    @contextmanager
    def holding(self, event: Event) -> Iterator[None]:
        """Hold the event's row locked (`FOR UPDATE`) until the block ends: whoever writes it waits."""
        self.holder.execute("SELECT id FROM ingest_event WHERE id = %s FOR UPDATE", [event.id])
        try:
            yield
        finally:
            self.holder.rollback()

    def waiting_for(self, pid: int) -> list[tuple[int, str]]:
        """The backends waiting for a lock `pid` holds, with the statement each is stuck on."""
        query = "SELECT pid, query FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))"
        return self.watcher.execute(query, [pid]).fetchall()

    def wait_for_waiter(self, pid: int, *, statement: tuple[str, ...], message: str) -> int:
        """Wait until a backend waits for `pid` on a statement containing every fragment of `statement`;
        return its pid."""
        found: list[int] = []

        def waits() -> bool:
            waiting = self.waiting_for(pid)
            found[:] = [waiter for waiter, query in waiting if all(part in query for part in statement)]
            return bool(found)

        try:
            wait_until(waits, timeout=60, interval=0.05, message=message)
        except AssertionError:
            activity = self.watcher.execute(
                "SELECT pid, wait_event_type, pg_blocking_pids(pid), left(query, 80) FROM pg_stat_activity"
                " WHERE datname = current_database()"
            ).fetchall()
            raise AssertionError(f"{message}: {pid=} {activity}") from None
        return found[0]

    def holds_rollup_lock(self, pid: int, project_id: int) -> bool:
        """Whether backend `pid` holds the project's rollup lock (a one-bigint advisory lock: high, low halves)."""
        key = LOCK_NAMESPACE + project_id
        query = (
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = %s"
            " AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1)"
        )
        row = self.watcher.execute(query, [pid, key >> 32, key & 0xFFFFFFFF]).fetchone()
        return bool(row and row[0])

    def close(self) -> None:
        self.holder.close()
        self.watcher.close()


@pytest.fixture
def rows(live_pipeline) -> Iterator[Rows]:
    rows = Rows()
    try:
        yield rows
    finally:
        rows.close()


@contextmanager
def wake_ups_held() -> Iterator[None]:
    """Store events without waking a worker: a queued wake-up's marker holds new ones back (pipeline).

    The marker is a plain Redis key of REDIS_URL's database (not a Django cache entry).
    """
    broker = redis.Redis.from_url(settings.REDIS_URL)
    broker.set(WAKE_KEY, 1, ex=300)
    try:
        yield
    finally:
        broker.delete(WAKE_KEY)


class WorkerLogs:
    """What the worker processes log from now on: no task may fail or be retried."""

    FAILURES = ("raised unexpected", "Retry in", "ERROR")

    def __init__(self, workers: WorkerPool) -> None:
        self.workers = workers
        self.offsets = [len(self._text(i)) for i in range(workers.count)]

    def _text(self, index: int) -> str:
        path = self.workers.log(index)
        return path.read_text(errors="replace") if path.exists() else ""

    def assert_clean(self) -> None:
        for index, offset in enumerate(self.offsets):
            new = self._text(index)[offset:]
            bad = [line for line in new.splitlines() if any(word in line for word in self.FAILURES)]
            assert not bad, f"worker {index}: {bad[:3]}"


def erase_in_background(pool: ThreadPoolExecutor, owner, lead: Lead) -> Future:
    """DELETE the lead through the API (an admin's JWT) in a thread of its own; the future holds the status."""

    def erase() -> int:
        try:
            return client_for(owner).delete(f"/api/leads/{lead.id}").status_code
        finally:
            connection.close()

    return pool.submit(erase)


def pending(lead_id: int) -> bool:
    return bool(redis.Redis.from_url(settings.REDIS_URL).sismember(PENDING_KEY, str(lead_id)))


def assert_stays_out_of_the_queue(lead_id: int, *, seconds: float = 2 * WAKE_LATER_SECONDS + 0.5) -> None:
    """The lead is not pending, and does not come back for longer than a delayed wake-up's period.

    A lead put back as busy is out of the set only while a drain holds it (a few ms, once per
    delayed wake-up): one look could catch it there.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert not pending(lead_id), "the lead is requested again"
        time.sleep(0.02)


def assert_erased(project, lead_ids: list[int], anonymous_ids: list[str], event_ids: list[str]) -> None:
    """Nothing of the leads is left: rows, events, history (on any lead), or a lead under their ids."""
    assert not Lead.objects.filter(id__in=lead_ids).exists()
    assert not Lead.objects.filter(merged_into_id__in=lead_ids).exists()
    assert not Lead.objects.filter(project=project, anonymous_id__in=anonymous_ids).exists()
    assert not Event.objects.filter(project=project, event_id__in=event_ids).exists()
    assert not ScoreHistory.objects.filter(lead_id__in=lead_ids).exists()
    assert not ScoreHistory.objects.filter(project=project, event__event_id__in=event_ids).exists()


def assert_rollups_exact(project) -> None:
    """Every event is scored, and the rollups (by UTC day and name, by name) equal a fresh count of them."""
    assert not Event.objects.filter(project=project, processed_at__isnull=True).exists()
    by_day: Counter[tuple[str, str]] = Counter()
    by_name: Counter[str] = Counter()
    for timestamp, name in Event.objects.filter(project=project).values_list("timestamp", "name"):
        by_day[(timestamp.astimezone(UTC).date().isoformat(), name)] += 1
        by_name[name] += 1
    stored_days = EventRollup.objects.filter(project=project).values_list("day", "name", "count")
    assert {(day.isoformat(), name): count for day, name, count in stored_days} == dict(by_day)
    assert dict(EventName.objects.filter(project=project).values_list("name", "count")) == dict(by_name)


def assert_one_rule_row_per_event(project) -> None:
    assert (
        ScoreHistory.objects.filter(project=project, reason="rule").count()
        == Event.objects.filter(project=project).count()
    )


def test_a_lead_erased_while_its_batch_is_scored_is_erased_after_the_batch_and_the_others_are_exact(
    live_pipeline, rows
):
    # given a backlog of 12 leads, stored without waking a worker
    logs = WorkerLogs(live_pipeline)
    project, owner, key = project_with_owner(name="Erased mid-batch")
    with wake_ups_held():
        post("/api/events/batch", {"events": mixed_backlog("x", leads=12, events=150, seed=5)}, key)
    leads = list(Lead.objects.filter(project=project).order_by("id"))
    stalled, erased = leads[0], leads[1]
    erased_events = list(Event.objects.filter(lead=erased).values_list("event_id", flat=True))
    assert erased_events

    # when a worker claims the whole backlog in one batch and is stopped marking it processed (an event row
    # is held), holding every lead of it and the project's rollup lock
    with ThreadPoolExecutor(max_workers=1) as pool:
        with rows.holding(Event.objects.filter(lead=stalled).first()):
            lead_score_wake(force=True)
            worker = rows.wait_for_waiter(rows.pid, statement=BATCH_MARKS, message="the batch")
            assert rows.holds_rollup_lock(worker, project.id)
            # and the lead is erased through the API meanwhile: the erase waits for the batch's claim of the lead
            status = erase_in_background(pool, owner, erased)
            rows.wait_for_waiter(worker, statement=ERASE_LOCKS_LEAD, message="the erase to wait for the batch")
            assert Event.objects.filter(lead=erased, processed_at__isnull=True).count() == len(erased_events)
        assert status.result(timeout=60) == 204

    # then the batch committed first (every event of it scored and counted), and the erase removed all of
    # the lead after it, its events' counts with them
    wait_until(all_scored(project), timeout=60, message="the backlog to be scored")
    assert_erased(project, [erased.id], [erased.anonymous_id], erased_events)
    assert_pure_fold(project)
    assert_one_rule_row_per_event(project)
    assert_rollups_exact(project)
    assert Lead.objects.filter(project=project).count() == 11
    assert not pending(erased.id)
    live_pipeline.wait_idle()
    logs.assert_clean()


def test_a_lead_being_erased_is_skipped_by_the_batch_and_dropped_from_the_queue_once_gone(live_pipeline, rows):
    # given a backlog of 12 leads, stored without waking a worker
    logs = WorkerLogs(live_pipeline)
    project, owner, key = project_with_owner(name="Erased before its batch")
    with wake_ups_held():
        post("/api/events/batch", {"events": mixed_backlog("y", leads=12, events=150, seed=6)}, key)
    erased = Lead.objects.filter(project=project).order_by("id")[1]
    erased_events = list(Event.objects.filter(lead=erased).values_list("event_id", flat=True))

    # when the erase holds the lead (it is stopped deleting the lead's events) while a worker scores the backlog
    with ThreadPoolExecutor(max_workers=1) as pool:
        with rows.holding(Event.objects.filter(lead=erased).first()):
            status = erase_in_background(pool, owner, erased)
            eraser = rows.wait_for_waiter(rows.pid, statement=ERASE_DELETES_EVENTS, message="the erase")
            lead_score_wake(force=True)

            # then the batch scores every other lead without waiting for the erase, and puts this one back in
            # the queue (found locked: requested again, with a delayed wake-up, never a failure or a retry)
            others = Event.objects.filter(project=project, processed_at__isnull=True).exclude(lead=erased)
            wait_until(lambda: not others.exists(), timeout=60, message="the other leads to be scored")
            wait_until(lambda: pending(erased.id), timeout=30, message="the skipped lead to be requested again")
            assert not rows.waiting_for(eraser), "nothing waits for the erase"
            assert Event.objects.filter(lead=erased, processed_at__isnull=True).count() == len(erased_events)
        assert status.result(timeout=60) == 204

    # and the next wake-up (the delayed one, the reconciler's, the next ingest's) drops it: it no longer exists
    lead_score_wake(force=True)
    wait_until(lambda: not pending(erased.id), timeout=30, message="the erased lead to leave the queue")
    assert_stays_out_of_the_queue(erased.id)
    live_pipeline.wait_idle()
    assert_erased(project, [erased.id], [erased.anonymous_id], erased_events)
    assert_pure_fold(project)
    assert_one_rule_row_per_event(project)
    assert_rollups_exact(project)
    assert Lead.objects.filter(project=project).count() == 11
    logs.assert_clean()


def known_person_and_device(workers: WorkerPool, key: str, project) -> tuple[Lead, Lead]:
    """A known lead (`crm`, ann@corp.io) and an anonymous device (`dev`), both scored by the workers.

    The workers are idle afterwards: a drain still running would take the next lead requested.
    """
    known = {"type": "identify", "anonymousId": "crm", "traits": {"email": "ann@corp.io"}, "messageId": "known"}
    post("/v1/batch", {"writeKey": key, "batch": [known]}, key)
    post(
        "/api/events/batch",
        {
            "events": [
                *({"eventType": "email_open", "leadId": "crm", "eventId": f"crm-{n}"} for n in range(5)),
                *({"eventType": "page_view", "leadId": "dev", "eventId": f"dev-{n}"} for n in range(6)),
            ]
        },
        key,
    )
    wait_until(all_scored(project), message="the known lead and the device")
    workers.wait_idle()
    return Lead.objects.get(project=project, anonymous_id="crm"), Lead.objects.get(project=project, anonymous_id="dev")


DEVICE_IDENTIFY = {"type": "identify", "anonymousId": "dev", "traits": {"email": "ANN@corp.io"}, "messageId": "dev-who"}


def device_identifies_as_the_known_person(key: str) -> None:
    """The device says it is ann@corp.io: scoring it merges it into `crm` (stored without waking a worker)."""
    with wake_ups_held():
        post("/v1/batch", {"writeKey": key, "batch": [DEVICE_IDENTIFY]}, key)


def event_ids(*leads: Lead) -> list[str]:
    return list(Event.objects.filter(lead__in=leads).values_list("event_id", flat=True))


def test_erasing_the_lead_a_device_is_about_to_merge_into_leaves_the_device_on_its_own(live_pipeline, rows):
    logs = WorkerLogs(live_pipeline)
    project, owner, key = project_with_owner(name="Erased merge target")
    known, device = known_person_and_device(live_pipeline, key, project)
    known_events = event_ids(known)
    device_identifies_as_the_known_person(key)

    # given the erase of the known lead holds it (stopped deleting its events)
    with ThreadPoolExecutor(max_workers=1) as pool:
        with rows.holding(Event.objects.filter(lead=known).first()):
            status = erase_in_background(pool, owner, known)
            eraser = rows.wait_for_waiter(rows.pid, statement=ERASE_DELETES_EVENTS, message="the erase")

            # when a worker resolves the device's identify call meanwhile: it finds the known lead and waits to
            # lock it with the device
            lead_score_wake(force=True)
            rows.wait_for_waiter(eraser, statement=MERGE_LOCKS, message="the merge to wait for the erase")
        assert status.result(timeout=60) == 204

    # then the merge finds its target gone and identifies the device in place: no task fails
    wait_until(all_scored(project), message="the device's identify call to be scored")
    live_pipeline.wait_idle()
    assert_erased(project, [known.id], ["crm"], known_events)
    device.refresh_from_db()
    assert (device.merged_into_id, device.email) == (None, "ann@corp.io")
    assert Event.objects.filter(lead=device).count() == 7
    assert_pure_fold(project)
    assert_one_rule_row_per_event(project)
    assert_rollups_exact(project)
    logs.assert_clean()


@pytest.mark.parametrize(
    "erased",
    [
        # the lead the device is being merged into: the merge commits first, so the erase takes the device with it
        "known",
        # the device itself (the API still sees it unmerged): its events, now the known lead's, are not left
        # behind, as the erase follows the merge (a DELETE sent a moment later resolves to the survivor too)
        "device",
    ],
)
def test_erasing_either_lead_of_a_merge_in_flight_erases_both(live_pipeline, rows, erased):
    logs = WorkerLogs(live_pipeline)
    project, owner, key = project_with_owner(name=f"Erased during merge ({erased})")
    known, device = known_person_and_device(live_pipeline, key, project)
    device_identifies_as_the_known_person(key)
    erased_events = [*event_ids(known, device), "dev-who"]

    # given a worker merging the device into the known lead (both locked), stopped moving the device's events
    with ThreadPoolExecutor(max_workers=1) as pool:
        with rows.holding(Event.objects.filter(lead=device).first()):
            lead_score_wake(force=True)
            merge = rows.wait_for_waiter(rows.pid, statement=MERGE_MOVES, message="the merge to move events")

            # when one of the two leads is erased meanwhile: the erase waits for the merge
            status = erase_in_background(pool, owner, known if erased == "known" else device)
            rows.wait_for_waiter(merge, statement=ERASE_LOCKS_LEAD, message="the erase to wait for the merge")
        assert status.result(timeout=60) == 204

    # then both leads and all their events are gone: no lead comes back without its events
    live_pipeline.wait_idle()
    assert_erased(project, [known.id, device.id], ["crm", "dev"], erased_events)
    assert not Lead.objects.filter(project=project).exists()
    assert not Event.objects.filter(project=project).exists()
    assert_rollups_exact(project)
    logs.assert_clean()


def test_erasing_a_lead_while_a_batch_hands_it_a_merged_leads_late_event_deadlocks_nobody(live_pipeline, rows):
    logs = WorkerLogs(live_pipeline)
    project, owner, key = project_with_owner(name="Erased during hand-on")
    known, device = known_person_and_device(live_pipeline, key, project)
    post("/v1/batch", {"writeKey": key, "batch": [DEVICE_IDENTIFY]}, key)
    wait_until(all_scored(project), message="the device to be merged into the known lead")
    live_pipeline.wait_idle()
    device.refresh_from_db()
    assert device.merged_into_id == known.id
    # given an event ingest attached to the device just before the merge committed (ingest read the lead
    # unmerged): the next batch that claims the device hands it on to the known lead
    with wake_ups_held():
        late = Event.objects.create(
            project=project,
            lead=device,
            event_id="late",
            name="page_view",
            type="track",
            timestamp=timezone.now(),
            received_at=timezone.now(),
        )
        lead_score_request(lead_ids=[device.id])
    erased_events = [*event_ids(known), "late"]

    with ThreadPoolExecutor(max_workers=1) as pool:
        with rows.holding(late):
            # when a worker's batch holds the device, stopped handing its event on
            lead_score_wake(force=True)
            batch = rows.wait_for_waiter(rows.pid, statement=BATCH_HANDS_ON, message="the batch to hand the event on")
            # and the known lead is erased meanwhile: the erase waits for the device (locked before the lead)
            status = erase_in_background(pool, owner, known)
            rows.wait_for_waiter(batch, statement=ERASE_LOCKS_MERGED, message="the erase to wait for the batch")
        # then the batch (whose commit checks the known lead's row) and the erase both end well
        assert status.result(timeout=60) == 204

    live_pipeline.wait_idle()
    assert_erased(project, [known.id, device.id], ["crm", "dev"], erased_events)
    assert not Event.objects.filter(project=project).exists()
    assert_rollups_exact(project)
    logs.assert_clean()
