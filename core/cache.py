"""Django's Redis cache, with one Redis client per process and one round trip per `incr`.

Django keeps a cache object per context, and under ASGI every request runs in a context of
its own: with the stock backend each request built its own connection pool and so opened a
new connection to Redis (a TCP handshake, then redis-py's `CLIENT SETINFO` calls) before its
first command. Here every cache object of a process with the same servers and options
shares one client, whose pool keeps its connections (redis-py re-creates them after a fork).
"""

import re
import threading
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient
from django.utils.functional import cached_property

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

    def _run(self, source: str, key: Any, *args: Any) -> Any:
        """Run a Lua script on `key` (loaded once per client, by its hash after that)."""
        client = self.get_client(key, write=True)
        script = self._scripts.get((id(client), source))
        if script is None:
            script = self._scripts[id(client), source] = client.register_script(source)
        return script(keys=[key], args=list(args))

    def incr(self, key: Any, delta: int) -> Any:
        """Django's `incr` (ValueError for a missing key) in one round trip instead of EXISTS, then INCRBY."""
        value = self._run(INCR_EXISTING, key, delta)
        if value is None:
            raise ValueError(f"Key '{key}' not found.")
        return value

    def spend(self, key: Any, amount: int, limit: int, timeout: int) -> int:
        return int(self._run(SPEND, key, amount, limit, timeout))


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

    def spend(self, key: str, amount: int, *, limit: int, timeout: int) -> int:
        """See `window_spend`: one round trip."""
        return self._cache.spend(self.make_and_validate_key(key), amount, limit, int(timeout))


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
