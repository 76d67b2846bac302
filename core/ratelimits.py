"""Request rate limits, counted in fixed windows in the default cache (Redis in production).

Views call `rate_limit` before they write anything; past the limit it raises `RateLimited`,
which the API's exception handler renders as 429 `rate_limited` with a `Retry-After` header.
Every refusal is raised by `refuse`. `FailedKeyLookups` counts a client IP's failed key
lookups (random write keys, secret keys, forged JWTs) in a window of their own.
A rate is a django-ratelimit string ("1000/s", "20/m", "100/5m"); an empty one disables the limit.
"""

import logging
import re
import time
from typing import Any, NoReturn, Protocol

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import get_usage
from rest_framework.exceptions import Throttled
from rest_framework.request import Request

from core import metrics
from core.cache import window_spend

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
    per_second = project.ingest_rate_per_second
    rate = f"{per_second}/s" if per_second else settings.LEADPULSE_RATE_INGEST_KEY
    if not rate or events <= 0:
        return
    limit, period = parse_rate(rate)
    now = time.time()
    window_end = (int(now) // period + 1) * period
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
