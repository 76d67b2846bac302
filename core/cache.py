"""Django's Redis cache, with one Redis client per process and one round trip per `incr`.

Django keeps a cache object per context, and under ASGI every request runs in a context of
its own: with the stock backend each request built its own connection pool and so opened a
new connection to Redis (a TCP handshake, then redis-py's `CLIENT SETINFO` calls) before its
first command. Here every cache object of a process with the same servers and options
shares one client, whose pool keeps its connections (redis-py re-creates them after a fork).
"""

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient
from django.utils.functional import cached_property

from .groups import GroupCommit

# Increment a key that exists, atomically; nil when it does not (Django's incr raises ValueError then).
INCR_EXISTING = """
if redis.call('EXISTS', KEYS[1]) == 1 then
    return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return false
"""

# Spend ARGV[1] of a fixed window's allowance ARGV[2]: the count it reaches, given back when over.
SPEND = """
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
if count == tonumber(ARGV[1]) then
    redis.call('EXPIRE', KEYS[1], ARGV[3])
end
if count > tonumber(ARGV[2]) then
    redis.call('DECRBY', KEYS[1], ARGV[1])
end
return count
"""

# Count one more in a fixed window of ARGV[1] seconds: the count it reaches.
COUNT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""

# Admit ingest requests in one round trip, each as if alone and in order. Per request, 3 KEYS: the client IP's
# window, the write key's entry, the project's window; 6 ARGV: IP limit (-1: none), IP window seconds, the
# entry's bytes as the caller knows them ("" when it knows none), events to spend, the project's limit, its
# window seconds. Spends one request of the IP's allowance; unless that is past its limit, reads the entry
# and, when it still holds exactly the bytes the caller knows, spends the events of the project's allowance
# (given back when over, as SPEND does). Returns, per request, {IP count, 1 when the entry matched else 0,
# project count (0: nothing spent), the entry's bytes when it did not match}.
ADMIT = """
local function admit(k, a)
    local ip = 0
    if tonumber(ARGV[a + 1]) >= 0 then
        ip = redis.call('INCR', KEYS[k + 1])
        if ip == 1 then
            redis.call('EXPIRE', KEYS[k + 1], ARGV[a + 2])
        end
        if ip > tonumber(ARGV[a + 1]) then
            return {ip, 0, 0, false}
        end
    end
    local entry = redis.call('GET', KEYS[k + 2])
    if ARGV[a + 3] == '' or entry ~= ARGV[a + 3] then
        return {ip, 0, 0, entry}
    end
    local amount = tonumber(ARGV[a + 4])
    if amount <= 0 then
        return {ip, 1, 0, false}
    end
    local count = redis.call('INCRBY', KEYS[k + 3], amount)
    if count == amount then
        redis.call('EXPIRE', KEYS[k + 3], ARGV[a + 6])
    end
    if count > tonumber(ARGV[a + 5]) then
        redis.call('DECRBY', KEYS[k + 3], amount)
    end
    return {ip, 1, count, false}
end
local results = {}
for i = 0, #KEYS / 3 - 1 do
    results[i + 1] = admit(i * 3, i * 6)
end
return results
"""


@dataclass(frozen=True)
class Admission:
    """What `RedisCache.admit` found: the IP's count, whether the entry matched, the project's count."""

    ip_count: int
    matched: bool
    key_count: int  # 0 when nothing was spent
    entry: bytes | None  # the entry's bytes when they did not match (None: no entry)


class RedisCacheClient(DjangoRedisCacheClient):
    """Keeps its redis-py clients (one per pool) instead of building one per command."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}
        self._scripts: dict[tuple[int, str], Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)  # type: ignore[attr-defined]  # Django's, not in the stubs
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = super().get_client(key, write=write)
        return client

    def _run(self, source: str, key: Any, *args: Any, keys: tuple[Any, ...] = ()) -> Any:
        """Run a Lua script on `key` (and `keys`), loaded once per client, by its hash after that."""
        client = self.get_client(key, write=True)
        script = self._scripts.get((id(client), source))
        if script is None:
            script = self._scripts[id(client), source] = client.register_script(source)
        return script(keys=[key, *keys], args=list(args))

    def incr(self, key: Any, delta: int) -> Any:
        """Django's `incr` (ValueError for a missing key) in one round trip instead of EXISTS, then INCRBY."""
        value = self._run(INCR_EXISTING, key, delta)
        if value is None:
            raise ValueError(f"Key '{key}' not found.")
        return value

    def spend(self, key: Any, amount: int, limit: int, timeout: int) -> int:
        return int(self._run(SPEND, key, amount, limit, timeout))

    def count(self, key: Any, timeout: int) -> int:
        return int(self._run(COUNT, key, timeout))

    def admit(self, keys: tuple[Any, Any, Any], args: tuple[Any, ...]) -> Admission:
        """One admission (the ADMIT script); concurrent threads' admissions share a round trip."""
        return self._admissions.submit((keys, args))

    @cached_property
    def _admissions(self) -> GroupCommit[tuple[tuple, tuple], Admission]:
        return GroupCommit("ingest-admission", self._admit_all)

    def _admit_all(self, requests: Sequence[tuple[tuple, tuple]]) -> list[Admission]:
        keys = [key for request_keys, _ in requests for key in request_keys]
        args = [arg for _, request_args in requests for arg in request_args]
        return [
            Admission(ip_count=int(ip_count), matched=bool(matched), key_count=int(key_count), entry=entry)
            for ip_count, matched, key_count, entry in self._run(ADMIT, keys[0], *args, keys=tuple(keys[1:]))
        ]

    def entry_value(self, raw: bytes) -> Any:
        return self._serializer.loads(raw)  # type: ignore[attr-defined]  # Django's, not in the stubs


_shared: dict[tuple, RedisCacheClient] = {}
_shared_lock = threading.Lock()


class RedisCache(DjangoRedisCache):
    """`django.core.cache.backends.redis.RedisCache` sharing one client per process (see the module)."""

    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        super().__init__(server, params)
        servers = re.split("[;,]", server) if isinstance(server, str) else list(server)
        self._client_args = (servers, params.get("OPTIONS", {}))

    @cached_property
    def _cache(self) -> RedisCacheClient:
        servers, options = self._client_args
        key = (tuple(servers), repr(sorted(options.items())))
        with _shared_lock:
            if key not in _shared:
                _shared[key] = RedisCacheClient(servers, **options)
            return _shared[key]

    def count(self, key: str, *, timeout: int) -> int:
        """See `window_count`: one round trip."""
        return self._cache.count(self.make_and_validate_key(key), int(timeout))

    def spend(self, key: str, amount: int, *, limit: int, timeout: int) -> int:
        """See `window_spend`: one round trip."""
        return self._cache.spend(self.make_and_validate_key(key), amount, limit, int(timeout))

    def admit(
        self,
        *,
        ip_window: tuple[str, int, int] | None,
        entry_key: str,
        known: bytes | None,
        key_window: tuple[str, int, int, int] | None,
    ) -> Admission:
        """One round trip (the ADMIT script): spend a request of `ip_window` (key, limit, seconds); unless
        refused, read the entry at `entry_key` and, when its bytes are `known`, spend `key_window`'s
        amount (key, amount, limit, seconds). Without `known` or `key_window` the entry is only read."""
        ip_key, ip_limit, ip_seconds = ip_window or ("", -1, 0)
        window_key, amount, limit, seconds = key_window or ("", 0, 0, 0)
        make = self.make_and_validate_key
        return self._cache.admit(
            (make(ip_key or "none"), make(entry_key), make(window_key or "none")),
            (ip_limit, ip_seconds, known or b"", amount, limit, seconds),
        )

    def entry_value(self, raw: bytes) -> Any:
        """The value an entry's bytes hold, as `get` would return it."""
        return self._cache.entry_value(raw)


def window_count(key: str, *, timeout: int) -> int:
    """Count one more in a fixed window (`timeout` seconds) of the default cache; the count it reaches.

    On Redis one atomic round trip; other caches (embedded mode's) add, then increment.
    """
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        return backend.count(key, timeout=timeout)
    backend.add(key, 0, timeout)
    return backend.incr(key)


def window_spend(key: str, amount: int, *, limit: int, timeout: int) -> int:
    """Spend `amount` of a fixed window's allowance `limit` in the default cache; the count it reaches.

    Past the limit the amount is given back (a refused request spends nothing). On Redis
    this is one atomic round trip; other caches (embedded mode's) add, increment, decrement.
    """
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        return backend.spend(key, amount, limit=limit, timeout=timeout)
    backend.add(key, 0, timeout)
    count = backend.incr(key, amount)
    if count > limit:
        backend.decr(key, amount)
    return count
