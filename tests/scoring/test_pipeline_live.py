"""The whole pipeline with real processes: HTTP ingest → PostgreSQL → Redis → Celery workers.

Workers are separate `celery worker` processes on the test database; nothing is eager
and nothing of ours is mocked.
"""

import itertools
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import Client
from django.utils import timezone

from core.contracts import LEAD_SCORE_TASK
from core.pipeline import PENDING_KEY
from ingest.models import Event, Lead
from leadpulse.celery import app as celery_app
from scoring.models import ScoreHistory
from tests.live import wait_until

pytestmark = pytest.mark.live


@pytest.fixture
def live_tenant(live_pipeline):
    from tests.accounts.factories import project_with_owner

    project, _owner, write_key = project_with_owner(name="Live")
    return project, write_key


def send(path, body, *, key=None):
    """One HTTP request from its own thread and connection, as concurrent clients would."""
    try:
        headers = {"HTTP_X_API_KEY": key} if key else {}
        return Client().post(path, json.dumps(body), content_type="application/json", **headers)
    finally:
        connection.close()


def all_scored(project):
    return lambda: not Event.objects.filter(project=project, processed_at__isnull=True).exists()


def assert_consistent(lead):
    """Invariant 3: the materialised score is the fold, the end of an unbroken history chain."""
    rows = list(
        ScoreHistory.objects.filter(lead=lead).select_related("event").order_by("occurred_at", "event__event_id")
    )
    assert len(rows) == Event.objects.filter(lead=lead).count()
    for previous, row in itertools.pairwise(rows):
        assert row.old_score == previous.new_score
    assert rows[-1].new_score == lead.current_score == lead.fold_state["score"]


def test_twenty_threads_sending_one_event_store_and_score_it_once(live_tenant):
    project, key = live_tenant
    body = {"eventType": "signup", "leadId": "dup-lead", "eventId": "same-event"}

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda _: send("/api/events", body, key=key), range(20)))

    assert sorted(r.status_code for r in responses) == [200] * 19 + [202]
    wait_until(all_scored(project), message="the event to be scored")
    lead = Lead.objects.get(project=project, anonymous_id="dup-lead")
    assert lead.current_score == 30
    assert ScoreHistory.objects.filter(lead=lead).count() == 1


def test_200_concurrent_events_for_one_lead_across_two_workers_sum_exactly(live_tenant, workers):
    project, key = live_tenant
    before = [workers.succeeded(i) for i in range(workers.count)]
    bodies = [{"eventType": "page_view", "leadId": "busy", "eventId": f"pv-{i:03d}"} for i in range(200)]

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda body: send("/api/events", body, key=key).status_code, bodies))
        # extra redundant scoring tasks for the same lead race the ones ingest enqueued
        lead_id = Lead.objects.get(project=project, anonymous_id="busy").id
        for _ in range(40):
            celery_app.send_task(LEAD_SCORE_TASK, kwargs={"lead_id": lead_id})

    assert statuses == [202] * 200
    wait_until(all_scored(project), timeout=120, message="200 events to be scored")
    lead = Lead.objects.get(pk=lead_id)
    assert lead.current_score == 200 * 5
    assert lead.lead_stage == "qualified"
    assert_consistent(lead)
    # both worker processes took part
    wait_until(
        lambda: all(workers.succeeded(i) > before[i] for i in range(workers.count)),
        timeout=10,
        message="both workers to log scoring work",
    )


def test_out_of_order_events_through_the_pipeline_score_30_not_10(live_tenant):
    project, key = live_tenant
    t1 = timezone.now() - timedelta(hours=2)
    t2 = t1 + timedelta(minutes=30)

    send("/api/events", {"eventType": "signup", "leadId": "ooo", "eventId": "s", "timestamp": t2.isoformat()}, key=key)
    wait_until(all_scored(project), message="signup to be scored")
    assert Lead.objects.get(project=project, anonymous_id="ooo").current_score == 30
    send(
        "/api/events",
        {"eventType": "unsubscribe", "leadId": "ooo", "eventId": "u", "timestamp": t1.isoformat()},
        key=key,
    )
    wait_until(all_scored(project), message="the late unsubscribe to be scored")

    lead = Lead.objects.get(project=project, anonymous_id="ooo")
    assert lead.current_score == 30
    assert lead.last_event_at == t2
    assert_consistent(lead)


def test_batch_over_many_leads_is_scored_completely(live_tenant):
    project, key = live_tenant
    events = [
        {"eventType": "email_open" if i % 3 else "form_submit", "leadId": f"b{i % 40}", "eventId": f"b-{i}"}
        for i in range(400)
    ]
    assert send("/api/events/batch", {"events": events}, key=key).json()["accepted"] == 400

    wait_until(all_scored(project), timeout=120, message="the batch to be scored")
    for lead in Lead.objects.filter(project=project):
        assert_consistent(lead)
    expected = sum(10 if i % 3 else 20 for i in range(400))
    assert sum(Lead.objects.filter(project=project).values_list("current_score", flat=True)) == expected


def test_flushing_redis_loses_nothing_the_reconciler_rescores(live_tenant, workers):
    project, key = live_tenant
    workers.stop()
    try:
        events = [{"eventType": "signup", "leadId": f"r{i}", "eventId": f"r-{i}"} for i in range(30)]
        assert send("/api/events/batch", {"events": events}, key=key).status_code == 202
        # the queued tasks and pending markers are gone
        redis.Redis.from_url(settings.REDIS_URL).flushdb()
    finally:
        workers.start()

    assert Event.objects.filter(project=project, processed_at__isnull=True).count() == 30
    from scoring.tasks import events_reconcile_task

    events_reconcile_task.delay()  # what celery-beat runs every 30 s
    wait_until(all_scored(project), timeout=60, message="the reconciler to get every event scored")
    assert set(Lead.objects.filter(project=project).values_list("current_score", flat=True)) == {30}


def test_a_redis_outage_at_ingest_keeps_the_events_and_the_reconciler_gets_them_scored(
    live_tenant, settings, refusing_port
):
    project, key = live_tenant
    pending = redis.Redis.from_url(settings.REDIS_URL)
    real_redis = settings.REDIS_URL
    # the pending set and the wake-up marker are unreachable when ingest asks for scoring
    settings.REDIS_URL = f"redis://127.0.0.1:{refusing_port}/0"
    events = [{"eventType": "signup", "leadId": f"o{i}", "eventId": f"o-{i}"} for i in range(20)]
    assert send("/api/events/batch", {"events": events}, key=key).status_code == 202
    single = {"eventType": "signup", "leadId": "o0", "eventId": "o-single"}
    assert send("/api/events", single, key=key).status_code == 202
    settings.REDIS_URL = real_redis

    # stored, and nothing asked for them: the workers stay idle
    lead_ids = set(Lead.objects.filter(project=project).values_list("id", flat=True))
    assert len(lead_ids) == 20
    assert not lead_ids & {int(lead_id) for lead_id in pending.smembers(PENDING_KEY)}
    time.sleep(1)
    assert Event.objects.filter(project=project, processed_at__isnull=True).count() == 21

    from scoring.tasks import events_reconcile_task

    events_reconcile_task.delay()  # what celery-beat runs every 30 s
    wait_until(all_scored(project), timeout=60, message="the reconciler to get every event scored")
    assert sorted(Lead.objects.filter(project=project).values_list("current_score", flat=True)) == [30] * 19 + [60]


def test_leads_put_back_without_a_wake_up_as_the_drains_end_are_still_scored(live_tenant, monkeypatch):
    import ingest.services
    from core.pipeline import lead_score_request

    project, key = live_tenant
    monkeypatch.setattr(ingest.services, "lead_score_request", lambda **_: 0)  # stored, nothing requested
    events = [{"eventType": "signup", "leadId": f"b{i}", "eventId": f"b-{i}"} for i in range(10)]
    assert send("/api/events/batch", {"events": events}, key=key).status_code == 202
    lead_ids = list(Lead.objects.filter(project=project).values_list("id", flat=True))

    # what a drain does with leads another worker held: back in the set, no wake-up, and it ends;
    # no drain is running and no reconciler runs here
    lead_score_request(lead_ids=lead_ids, wake=False)

    wait_until(all_scored(project), timeout=20, message="the leads to be scored without the reconciler")


def test_health_reports_a_live_worker(live_tenant, api_client):
    wait_until(lambda: api_client.get("/api/health").status_code == 200, timeout=30, message="a heartbeat")
    body = api_client.get("/api/health").json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["redis"] == "ok"
    assert body["worker"]["status"] == "ok"


def test_a_trickle_of_single_events_is_scored_by_one_task_in_paced_batches_and_promptly(live_tenant, workers):
    """A steady trickle (one event every 10 ms, as a site's visitors send them) is scored by the task the first event
    woke: it holds the wake-up while it drains, so the events that follow send no task of their own, and it takes a
    batch at most every 100 ms (`LEADPULSE_SCORE_LINGER_SECONDS`), so they are scored a few at a time, not one by
    one, each well within a second of its arrival."""
    from core.contracts import LEAD_CHANGES_FANOUT_TASK

    project, key = live_tenant
    workers.wait_idle()

    def finished(task: str) -> int:
        return sum(workers.succeeded(i, task) for i in range(workers.count))

    tasks, batches = finished("_score_task["), finished(LEAD_CHANGES_FANOUT_TASK)  # one fan-out per batch
    started = time.monotonic()
    for i in range(40):
        body = {"eventType": "page_view", "leadId": f"trickle-{i}", "eventId": f"t-{i}"}
        assert send("/api/events", body, key=key).status_code == 202
        time.sleep(max(0.0, started + 0.01 * (i + 1) - time.monotonic()))
    sending = time.monotonic() - started
    wait_until(all_scored(project), timeout=30, message="the trickle to be scored")
    workers.wait_idle()

    tasks, batches = finished("_score_task[") - tasks, finished(LEAD_CHANGES_FANOUT_TASK) - batches
    assert 1 <= tasks <= 4, f"{tasks} scoring tasks for 40 trickled events: each woke its own"
    # one batch per linger of sending, the first at once and one more for the tail (a slow machine sends slower)
    assert 2 <= batches <= sending / settings.LEADPULSE_SCORE_LINGER_SECONDS + 3, (
        f"{batches} batches for 40 events sent over {sending:.2f} s"
    )
    waited = [
        (processed - received).total_seconds()
        for received, processed in Event.objects.filter(project=project).values_list("received_at", "processed_at")
    ]
    assert len(waited) == 40
    assert max(waited) < 1.0, f"ingest→scored up to {max(waited):.2f} s"
    assert set(Lead.objects.filter(project=project).values_list("current_score", flat=True)) == {5}


def test_worker_tasks_reuse_their_processes_database_connections(live_tenant, workers):
    """A prefork child keeps its pooled PostgreSQL connection from task to task. Celery's Django fix-up closed the
    child's whole pool around every task, so each batch's fan-out task connected anew (a server process started,
    authentication, the session's time zone set): ten batches opened ten connections or more."""
    from core.contracts import LEAD_CHANGES_FANOUT_TASK

    project, key = live_tenant
    workers.wait_idle()

    def sessions() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            return cursor.fetchone()[0]

    def fanouts() -> int:
        return sum(workers.succeeded(i, LEAD_CHANGES_FANOUT_TASK) for i in range(workers.count))

    send("/api/events", {"eventType": "page_view", "leadId": "warm-up", "eventId": "reuse-0"}, key=key)
    wait_until(all_scored(project), timeout=30, message="the first event to be scored")
    workers.wait_idle()
    before, batches = sessions(), fanouts()
    for i in range(1, 11):  # each scored before the next is sent: a batch and a fan-out task each
        send("/api/events", {"eventType": "page_view", "leadId": f"reuse-{i}", "eventId": f"reuse-{i}"}, key=key)
        wait_until(all_scored(project), timeout=30, message=f"event {i} to be scored")
        time.sleep(settings.LEADPULSE_SCORE_LINGER_SECONDS * 3)  # the drain has ended: the next wakes a task
    workers.wait_idle()

    assert fanouts() - batches >= 10
    assert sessions() - before <= 3, f"{sessions() - before} connections opened for {fanouts() - batches} batches"
