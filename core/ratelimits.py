"""Request rate limits, counted in fixed windows in the default cache (Redis in production).

Views call `rate_limit` before they write anything; past the limit it raises `RateLimited`,
which the API's exception handler renders as 429 `rate_limited` with a `Retry-After` header.
Every refusal is raised by `refuse`. `FailedKeyLookups` counts a client IP's failed key
lookups (random write keys, secret keys, forged JWTs) in a window of their own.
A rate is a django-ratelimit string ("1000/s", "20/m", "100/5m"); an empty one disables the limit.
"""

import functools
import logging
import re
import time
from typing import Any, NoReturn, Protocol

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest
from django_ratelimit.core import _get_ip, get_usage
from rest_framework.exceptions import Throttled
from rest_framework.request import Request

from core import metrics
from core.cache import Admission, RedisCache, window_count, window_spend

logger = logging.getLogger(__name__)


class KeyedProject(Protocol):
    """The project behind a write key, as its ingest limit needs it (accounts' `WriteKeyProject`)."""

    @property
    def id(self) -> int: ...

    @property
    def ingest_rate_per_second(self) -> int | None: ...


class RateLimited(Throttled):
    default_detail = "Too many requests."
    default_code = "rate_limited"


def refuse(*, scope: str, wait: float, detail: str | None = None) -> NoReturn:
    """Refuse a request over the `scope` limit: 429 `rate_limited`, retry after `wait` seconds (at least 1)."""
    metrics.rate_limited(scope=scope)
    # The window of a per-second rate ends now; never tell a client to retry in 0 seconds.
    raise RateLimited(detail=detail, wait=max(int(wait), 1))


def _usage(request: HttpRequest | Request, *, scope: str, rate: str, key: str | None, increment: bool) -> Any:
    """django-ratelimit's count of `scope` for `key` (default: the client IP); None when the cache is down."""
    if key is None and not request.META.get("REMOTE_ADDR"):
        # no peer address (e.g. an ASGI server on a unix socket): such clients share one bucket
        key = "ip:unknown"
    try:
        return get_usage(
            request,
            group=f"leadpulse.{scope}",
            key="ip" if key is None else (lambda group, request: key),
            rate=rate,
            increment=increment,
        )
    except Exception:  # the cache (Redis) is down: fail open rather than refuse every request
        logger.warning("rate limit %s not checked: cache unavailable", scope, exc_info=True)
        return None


def rate_limit(request: HttpRequest | Request, *, scope: str, rate: str, key: str | None = None) -> None:
    """Count the request against `scope` for `key` (default: the client IP); raise 429 past `rate`."""
    if not rate:
        return
    usage = _usage(request, scope=scope, rate=rate, key=key, increment=True)
    if usage is not None and usage["should_limit"]:
        refuse(scope=scope, wait=usage["time_left"])


class FailedKeyLookups:
    """A client IP's failed key lookups, counted against `rate` in a window of their own.

    Each random key costs a database lookup (and a short negative cache entry), so guessing is
    limited apart from, and far below, the IP's request rate. Key lookups call `check` before
    looking up a key that is not known good (cached as valid), and `failed` when it is no key:
    within the allowance a guess is a 401; past it, 429 without any lookup or new cache entry.
    Known-good keys skip `check`, so valid keys keep working from an IP that floods bad ones.
    """

    def __init__(self, request: HttpRequest | Request, *, scope: str, rate: str) -> None:
        self.request, self.scope, self.rate = request, scope, rate

    def check(self) -> None:
        """Refuse (429) when this IP has spent its allowance of failed lookups; counts nothing."""
        if not self.rate:
            return
        usage = _usage(self.request, scope=self.scope, rate=self.rate, key=None, increment=False)
        if usage is not None and usage["count"] >= usage["limit"]:
            refuse(scope=self.scope, wait=usage["time_left"], detail="Too many invalid keys from this address.")

    def failed(self) -> None:
        """Count one failed lookup; refuse (429) once past the allowance."""
        if not self.rate:
            return
        usage = _usage(self.request, scope=self.scope, rate=self.rate, key=None, increment=True)
        if usage is not None and usage["should_limit"]:
            refuse(scope=self.scope, wait=usage["time_left"], detail="Too many invalid keys from this address.")


RATE_RE = re.compile(r"^(\d+)/(\d*)([smhd])$")
PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@functools.lru_cache(maxsize=64)
def parse_rate(rate: str) -> tuple[int, int]:
    """django-ratelimit's grammar: "1000/s", "100/5m" → (count, period in seconds)."""
    match = RATE_RE.match(rate.strip())
    if match is None:
        raise ValueError(f"Not a rate: {rate!r}")
    count, multiplier, unit = match.groups()
    return int(count), int(multiplier or 1) * PERIOD_SECONDS[unit]


def ingest_key_rate_limit(request: HttpRequest | Request, *, project: KeyedProject, events: int = 1) -> None:
    """Spend `events` of the write key's allowance, which counts events (a batch of 500 is 500), not requests.

    django-ratelimit counts one per call, so this one window is counted here, in the same cache:
    a fixed window per project; a refused batch is given back, since it stores nothing (one round
    trip to Redis, `core.cache.window_spend`).
    """
    rate = _key_rate(project)
    if not rate or events <= 0:
        return
    now = time.time()
    limit, period, window_end = _window(rate, now)
    key = f"leadpulse.ingest-events:{project.id}:{period}:{window_end}"
    try:
        count = window_spend(key, events, limit=limit, timeout=period + 1)
    except Exception:  # the cache (Redis) is down: fail open, as rate_limit does
        logger.warning("rate limit ingest-key not checked: cache unavailable", exc_info=True)
        return
    if count > limit:
        refuse(
            scope="ingest-key",
            wait=window_end - now,
            detail=f"Over this write key's limit of {limit} events per {period} s.",
        )


def _window(rate: str, now: float) -> tuple[int, int, float]:
    """(limit, period, end of the current fixed window) of a rate at `now`."""
    limit, period = parse_rate(rate)
    return limit, period, (int(now) // period + 1) * period


def _key_rate(project: KeyedProject) -> str:
    per_second = project.ingest_rate_per_second
    return f"{per_second}/s" if per_second else settings.LEADPULSE_RATE_INGEST_KEY


def _ip_window_key(request: HttpRequest | Request, period: int, window_end: float) -> str:
    ip = _get_ip(request) if request.META.get("REMOTE_ADDR") or settings.RATELIMIT_IP_META_KEY else "unknown"
    return f"leadpulse.ingest-ip:{ip}:{period}:{window_end:.0f}"


def ingest_ip_rate_limit(request: HttpRequest | Request) -> None:
    """Count an ingest request against its client IP's allowance (`LEADPULSE_RATE_INGEST_IP`); 429 past it.

    The same fixed window `IngestAdmission` counts in, for the endpoints whose write key is in the
    body (so it is counted before the body is read).
    """
    rate = settings.LEADPULSE_RATE_INGEST_IP
    if not rate:
        return
    now = time.time()
    limit, period, window_end = _window(rate, now)
    try:
        count = window_count(_ip_window_key(request, period, window_end), timeout=period + 1)
    except Exception:  # the cache (Redis) is down: fail open, as rate_limit does
        logger.warning("rate limit ingest-ip not checked: cache unavailable", exc_info=True)
        return
    if count > limit:
        refuse(scope="ingest-ip", wait=window_end - now)


class IngestAdmission:
    """An ingest request's limits, checked with the write key's cache entry in one round trip to Redis.

    `admit` spends a request of the client IP's allowance (`count_ip`), reads the write key's entry and,
    when it still holds the bytes the caller knows for a valid key, spends `events` of its project's
    allowance: 429 past either. When the entry was not the one known, the caller resolves the key
    itself and calls `spend`. Without Redis (embedded mode), or when it fails, `admit` answers None
    and the caller goes the long way (the IP was counted or, Redis failing, not: limits fail open).
    """

    def __init__(self, request: HttpRequest | Request, *, count_ip: bool, events: int) -> None:
        self.request, self.count_ip, self.events = request, count_ip, events
        self.ip_counted = False

    def admit(self, *, entry_key: str, known: tuple[bytes, KeyedProject] | None) -> Admission | None:
        backend = caches["default"]
        ip_rate = settings.LEADPULSE_RATE_INGEST_IP if self.count_ip else ""
        if not isinstance(backend, RedisCache):
            if ip_rate:
                ingest_ip_rate_limit(self.request)
            self.ip_counted = True
            return None
        now = time.time()
        ip_window = key_window = None
        if ip_rate:
            ip_limit, ip_period, ip_end = _window(ip_rate, now)
            ip_window = (_ip_window_key(self.request, ip_period, ip_end), ip_limit, ip_period + 1)
        if known is not None and self.events > 0 and (key_rate := _key_rate(known[1])):
            limit, period, window_end = _window(key_rate, now)
            key = f"leadpulse.ingest-events:{known[1].id}:{period}:{window_end}"
            key_window = (key, self.events, limit, period + 1)
        try:
            admission = backend.admit(
                ip_window=ip_window, entry_key=entry_key, known=known[0] if known else None, key_window=key_window
            )
        except Exception:  # the cache (Redis) is down: fail open, as rate_limit does
            logger.warning("ingest rate limits not checked: cache unavailable", exc_info=True)
            self.ip_counted = True
            return None
        self.ip_counted = True
        if ip_window is not None and admission.ip_count > ip_window[1]:
            refuse(scope="ingest-ip", wait=ip_end - now)
        if key_window is not None and admission.key_count > key_window[2]:
            refuse(
                scope="ingest-key",
                wait=window_end - now,
                detail=f"Over this write key's limit of {limit} events per {period} s.",
            )
        return admission

    def entry_value(self, raw: bytes) -> Any:
        """The value of an entry's bytes that `admit` returned."""
        backend = caches["default"]
        assert isinstance(backend, RedisCache)
        return backend.entry_value(raw)

    def spend(self, project: KeyedProject) -> None:
        """Spend the events of a project the entry did not vouch for (one more round trip)."""
        ingest_key_rate_limit(self.request, project=project, events=self.events)
