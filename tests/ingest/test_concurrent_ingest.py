"""Concurrent batches on PostgreSQL: overlapping new leads in random orders never cost a batch.

Each thread posts through Django's full request stack on its own pooled connection, so the
transactions really interleave in PostgreSQL (nothing is mocked, nothing is serialised here).
"""

import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import redis
from django.conf import settings
from django.db import connection, transaction
from django.test import Client

from core.pipeline import PENDING_KEY
from ingest.models import Event, Lead
from tests.accounts.factories import project_with_owner
from tests.live import wait_until


@pytest.fixture
def committed(transactional_db):
    """Committed data; the scoring requests it enqueues are dropped afterwards (no worker needs them)."""
    yield
    redis.Redis.from_url(settings.REDIS_URL).delete("celery", PENDING_KEY)
    # live workers of an earlier test may be scoring these leads: let their transactions end before the flush
    wait_until(_no_other_transactions, timeout=30, message="other transactions on the test database to end")


def _no_other_transactions() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND xact_start IS NOT NULL"
        )
        return cursor.fetchone()[0] == 0


def post_batch(key: str, events: list[dict], start: threading.Barrier) -> tuple[int, str]:
    try:
        start.wait()
        response = Client(raise_request_exception=False).post(
            "/api/events/batch", json.dumps({"events": events}), content_type="application/json", HTTP_X_API_KEY=key
        )
        return response.status_code, response.content.decode()[:300]
    finally:
        connection.close()


def test_concurrent_batches_creating_the_same_new_leads_all_succeed_and_store_every_event_once(committed):
    # given: 8 clients, each with 500 events over 4,000 lead ids no one has seen, in its own random order
    project, _owner, key = project_with_owner(name="Races")
    rng = random.Random(11)
    lead_ids = [f"lead-{n:04d}" for n in range(4000)]
    rounds, clients, size = 2, 8, 500
    batches = [
        [
            {"eventType": "page_view", "leadId": lead, "eventId": f"r{r}-c{c}-{i:03d}"}
            for i, lead in enumerate(rng.sample(lead_ids[: 4000 // (rounds - r)], size))
        ]
        for r in range(rounds)
        for c in range(clients)
    ]

    # when: each round's 8 batches are posted at the same moment
    answers: list[tuple[int, str]] = []
    for r in range(rounds):
        start = threading.Barrier(clients)
        with ThreadPoolExecutor(max_workers=clients) as pool:
            answers += pool.map(
                lambda events, start=start: post_batch(key, events, start),
                batches[r * clients : (r + 1) * clients],
            )

    # then: no batch failed, every event is stored exactly once on the lead it names
    failed = [answer for answer in answers if answer[0] != 202]
    assert not failed, f"{len(failed)} of {len(answers)} batches failed, e.g. {failed[0]}"
    assert all(json.loads(body)["accepted"] == size for _, body in answers)
    sent = {event["eventId"]: event["leadId"] for batch in batches for event in batch}
    stored = dict(Event.objects.filter(project=project).values_list("event_id", "lead__anonymous_id"))
    assert stored == sent
    assert Event.objects.filter(project=project).count() == len(sent)
    assert Lead.objects.filter(project=project).count() == len(set(sent.values()))


def test_a_deadlock_victim_is_retried_inside_the_server(committed, caplog):
    # given: another transaction holds new lead "b" and will want lead "a" next
    project, _owner, key = project_with_owner(name="Victim")
    db = settings.DATABASES["default"]
    watcher = psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True)
    events = [{"eventType": "signup", "leadId": lead, "eventId": f"e-{lead}"} for lead in ("a", "b")]
    with ThreadPoolExecutor(max_workers=1) as pool, transaction.atomic():
        Lead.objects.create(project=project, anonymous_id="b", name="other")
        holder = connection.cursor().connection.info.backend_pid

        # when: the batch creates "a", then waits for "b"; the other transaction then asks for "a"
        response = pool.submit(post_batch, key, events, threading.Barrier(1))

        def batch_waits_for_holder() -> bool:
            query = "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))"
            return watcher.execute(query, [holder]).fetchone()[0] > 0

        wait_until(batch_waits_for_holder, timeout=30, interval=0.05, message="the batch to wait for lead b")
        Lead.objects.create(project=project, anonymous_id="a", name="other")  # PostgreSQL breaks the cycle
    watcher.close()

    # then: the batch (the victim: it waited first) ran again and stored both events
    status, body = response.result(timeout=60)
    assert status == 202, body
    assert "ingest transaction retried" in caplog.text
    stored = dict(Event.objects.filter(project=project).values_list("event_id", "lead__anonymous_id"))
    assert stored == {"e-a": "a", "e-b": "b"}
    assert set(Lead.objects.filter(project=project).values_list("anonymous_id", "name")) == {
        ("a", "other"),
        ("b", "other"),
    }
