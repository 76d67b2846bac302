"""Scoring requests of concurrent threads share round trips to Redis (core.pipeline.CoalescedRequests), against the
real Redis: while one thread's round trip is under way, what the others ask for goes in the next one."""

import threading
import time

import pytest
import redis
from django.conf import settings

from core import pipeline
from core.metrics import SCORING_REQUESTS_SHARED


@pytest.fixture
def pending():
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(pipeline.PENDING_KEY, pipeline.WAKE_KEY)
    # a wake-up is "queued" already: no task is sent (nothing consumes them here)
    client.set(pipeline.WAKE_KEY, 1, ex=60)
    yield client
    client.delete(pipeline.PENDING_KEY, pipeline.WAKE_KEY)


def shared() -> float:
    return SCORING_REQUESTS_SHARED._value.get()


def test_requests_made_during_a_round_trip_share_the_next_one(pending, redis_round_trips):
    pending.ping()
    pipeline.lead_score_request(lead_ids=[1])  # the process's connection is open
    before, redis_round_trips[0] = shared(), 0
    # Redis holds writes back for 300 ms: the first thread's round trip is under way for that long
    pending.execute_command("CLIENT", "PAUSE", 300, "WRITE")
    first = threading.Thread(target=pipeline.lead_score_request, kwargs={"lead_ids": [1]})
    first.start()
    time.sleep(0.1)
    others = [
        threading.Thread(target=pipeline.lead_score_request, kwargs={"lead_ids": [i, i + 100]}) for i in range(2, 12)
    ]
    started = time.monotonic()
    for thread in others:
        thread.start()
    for thread in others:
        thread.join()
    returned = time.monotonic() - started
    first.join()
    sent = redis_round_trips[0]

    # the others returned at once, their leads handed to the first thread's next round trip
    assert returned < 0.15
    assert sorted(int(i) for i in pending.smembers(pipeline.PENDING_KEY)) == sorted(
        [1, *range(2, 12), *range(102, 112)]
    )
    assert sent == 3  # the pause, the first thread's round trip and the others' one
    assert shared() - before == 20


def test_a_lone_request_is_sent_before_it_returns_and_a_failed_one_does_not_stop_the_next(pending, monkeypatch):
    assert pipeline.lead_score_request(lead_ids=[7, 8]) == 2
    assert sorted(int(i) for i in pending.smembers(pipeline.PENDING_KEY)) == [7, 8]

    # Redis unreachable: logged, nothing raised (the reconciler catches up), and the next request is sent
    monkeypatch.setattr(settings, "REDIS_URL", "redis://127.0.0.1:1/0")
    assert pipeline.lead_score_request(lead_ids=[9]) == 0
    monkeypatch.undo()
    assert pipeline.lead_score_request(lead_ids=[10]) == 1
    assert sorted(int(i) for i in pending.smembers(pipeline.PENDING_KEY)) == [7, 8, 10]
