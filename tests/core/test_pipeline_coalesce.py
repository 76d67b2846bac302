"""Scoring requests of concurrent threads share round trips to Redis (core.pipeline.CoalescedRequests), against the
real Redis: while one thread's round trip is under way, what the others ask for goes in the next one."""

import threading
import time

import pytest
import redis
from django.conf import settings

from core import pipeline
from core.metrics import SCORING_REQUESTS_SHARED
from tests.live import wait_until


@pytest.fixture
def pending():
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(pipeline.PENDING_KEY, pipeline.WAKE_KEY)
    # a wake-up is "queued" already: no task is sent (nothing consumes them here)
    client.set(pipeline.WAKE_KEY, 1, ex=60)
    yield client
    client.delete(pipeline.PENDING_KEY, pipeline.WAKE_KEY)


# Keep Redis busy for ARGV[1] microseconds (a script holds the server: every other command waits).
BUSY = """
local start = redis.call('TIME')
repeat
    local now = redis.call('TIME')
until (now[1] - start[1]) * 1000000 + (now[2] - start[2]) >= tonumber(ARGV[1])
"""


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


def test_a_request_sends_a_few_rounds_of_others_leads_and_a_thread_of_its_own_the_rest(pending):
    pipeline.lead_score_request(lead_ids=[1])  # the process's connection is open
    feeding, asked, took = threading.Event(), [], []
    feeding.set()

    def busy():  # Redis runs a 20 ms script after another: each round trip waits for the one under way
        admin = redis.Redis.from_url(settings.REDIS_URL)
        while feeding.is_set():
            admin.eval(BUSY, 0, 20_000)

    def feed(first: int) -> None:  # steady load: threads ask for a lead each, one after another
        lead = first
        while feeding.is_set():
            started = time.monotonic()
            pipeline.lead_score_request(lead_ids=[lead])
            took.append(time.monotonic() - started)
            asked.append(lead)
            lead += 1
            time.sleep(0.0002)

    threads = [threading.Thread(target=feed, args=(first,)) for first in (1000, 200_000, 400_000)]
    busy_thread = threading.Thread(target=busy)
    busy_thread.start()
    time.sleep(0.05)  # Redis busy first
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(0.75)
    # under steady load, what others ask for goes on in a thread of the process's own
    sender = [thread for thread in threading.enumerate() if thread.name == "scoring-requests"]
    time.sleep(0.75)
    feeding.clear()
    for thread in [*threads, busy_thread]:
        thread.join()

    # whichever request led a round trip came back after its own and a few of others' (each waiting up to 20 ms
    # for the script under way), not after the 1.5 s of steady load
    assert time.monotonic() - started > 1.5
    assert max(took) < 0.4, sorted(took)[-5:]
    # and every lead asked for reached the set: the rest went on in a thread of its own
    wait_until(lambda: {1, *asked} <= {int(i) for i in pending.smembers(pipeline.PENDING_KEY)}, timeout=10)
    # which ended once nothing was left, handing the sending back: a lone request is sent before it returns again
    assert len(sender) == 1
    sender[0].join(timeout=10)
    assert not sender[0].is_alive()
    assert pipeline.lead_score_request(lead_ids=[9999]) == 1
    assert pending.sismember(pipeline.PENDING_KEY, 9999)
