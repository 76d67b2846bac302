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
