"""The Redis cache backend (core.cache): one client per process, one round trip per incr."""

import contextvars

import pytest
from django.core.cache import cache, caches

from core.cache import window_spend


def test_every_request_context_shares_one_redis_connection_pool():
    # given the contexts ASGI requests run in: Django keeps one cache object per context
    backends = [contextvars.Context().run(lambda: caches["default"]) for _ in range(5)]
    assert len({id(backend) for backend in backends}) == 5

    # then they all send through one pool, so no request opens a connection of its own
    pools = {id(backend._cache.get_client(write=True).connection_pool) for backend in backends}
    assert len(pools) == 1


def test_a_fresh_context_sends_its_first_command_without_connecting_again(redis_round_trips):
    cache.set("warm", 1)  # this process's pool has a connection now
    redis_round_trips[0] = 0

    assert contextvars.Context().run(lambda: caches["default"].get("warm")) == 1

    assert redis_round_trips[0] == 1  # GET only: no new connection's handshake (CLIENT SETINFO …)


def test_incr_is_one_round_trip_and_keeps_djangos_semantics(redis_round_trips):
    cache.set("counter", 1)
    cache.incr("counter")  # loads the script once
    redis_round_trips[0] = 0

    assert cache.incr("counter", 5) == 7
    assert redis_round_trips[0] == 1
    assert cache.get("counter") == 7

    with pytest.raises(ValueError, match="not found"):
        cache.incr("missing")
    assert cache.get("missing") is None  # not created by the failed increment


def test_window_spend_counts_in_one_round_trip_and_gives_back_what_passes_the_limit(redis_round_trips):
    window_spend("window", 1, limit=5, timeout=60)  # loads the script once
    redis_round_trips[0] = 0

    assert window_spend("window", 3, limit=5, timeout=60) == 4
    assert redis_round_trips[0] == 1
    assert window_spend("window", 2, limit=5, timeout=60) == 6  # over: refused, and given back
    assert window_spend("window", 1, limit=5, timeout=60) == 5
    assert cache.get("window") == 5
    assert 0 < cache._cache.get_client().ttl(cache.make_key("window")) <= 60


def test_window_spend_works_on_other_caches_too(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

    assert window_spend("window", 3, limit=5, timeout=60) == 3
    assert window_spend("window", 3, limit=5, timeout=60) == 6
    assert window_spend("window", 2, limit=5, timeout=60) == 5


def test_concurrent_admissions_share_one_round_trip_each_as_if_alone(redis_round_trips):
    """Ingest admissions of a process's threads (core.groups.GroupCommit over the ADMIT script): while one is under
    way, the others queue and then go in one round trip, each spending as it would alone, in order."""
    import threading
    import time

    from core.metrics import GROUPED_ITEMS

    client = cache._cache.get_client(write=True)
    cache.set("entry", "known")
    entry = client.get(cache.make_key("entry"))

    def admit(ip: str, events: int):
        return cache.admit(ip_window=(ip, 5, 60), entry_key="entry", known=entry, key_window=("project", events, 8, 60))

    admit("warm-up", 0)  # the script is loaded
    redis_round_trips[0], before = 0, GROUPED_ITEMS.labels(group="ingest-admission")._value.get()
    results: dict = {}
    # Redis holds writes back for 300 ms: the first admission's round trip is under way for that long
    client.execute_command("CLIENT", "PAUSE", 300, "WRITE")
    first = threading.Thread(target=lambda: results.__setitem__(0, admit("ip", 1)))
    first.start()
    time.sleep(0.1)
    others = [threading.Thread(target=lambda i=i: results.__setitem__(i, admit("ip", 2))) for i in range(1, 7)]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(5)

    assert redis_round_trips[0] == 3  # the pause, the first admission, the six others together
    assert GROUPED_ITEMS.labels(group="ingest-admission")._value.get() - before == 6
    # the IP's 6th and 7th requests are refused (limit 5) without spending; the project's 8 events allow
    # the first admission's 1 and three more of 2: the fourth is refused and gives its 2 back
    ip_counts = sorted(result.ip_count for result in results.values())
    assert ip_counts == [1, 2, 3, 4, 5, 6, 7]
    admitted = [result for result in results.values() if result.ip_count <= 5]
    assert all(result.matched for result in admitted)
    assert sorted(result.key_count for result in admitted) == [1, 3, 5, 7, 9]
    assert [result.key_count for result in results.values() if result.ip_count > 5] == [0, 0]
    assert cache.get("project") == 7
