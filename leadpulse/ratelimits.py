"""Request rate limits, counted in fixed windows in the default cache (Redis in production).

Views call `rate_limit` before they write anything; past the limit it raises `RateLimited`,
which the API's exception handler renders as 429 `rate_limited` with a `Retry-After` header.
A rate is a django-ratelimit string ("1000/s", "20/m", "100/5m"); an empty one disables the limit.
"""

import logging

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import get_usage
from rest_framework.exceptions import Throttled
from rest_framework.request import Request

from accounts.selectors import WriteKeyProject

logger = logging.getLogger(__name__)


class RateLimited(Throttled):
    default_detail = "Too many requests."
    default_code = "rate_limited"


def rate_limit(request: HttpRequest | Request, *, scope: str, rate: str, key: str | None = None) -> None:
    """Count the request against `scope` for `key` (default: the client IP); raise 429 past `rate`."""
    if not rate:
        return
    if key is None and not request.META.get("REMOTE_ADDR"):
        # no peer address (e.g. an ASGI server on a unix socket): such clients share one bucket
        key = "ip:unknown"
    try:
        usage = get_usage(
            request,
            group=f"leadpulse.{scope}",
            key="ip" if key is None else (lambda group, request: key),
            rate=rate,
            increment=True,
        )
    except Exception:  # the cache (Redis) is down: fail open rather than refuse every request
        logger.warning("rate limit %s not checked: cache unavailable", scope, exc_info=True)
        return
    if usage is not None and usage["should_limit"]:
        # The window of a per-second rate ends now; never tell a client to retry in 0 seconds.
        raise RateLimited(wait=max(usage["time_left"], 1))


def ingest_key_rate_limit(request: HttpRequest | Request, *, project: WriteKeyProject) -> None:
    """Count an authenticated ingest request (a batch counts once) against its project's write key."""
    per_second = project.ingest_rate_per_second
    rate = f"{per_second}/s" if per_second else settings.LEADPULSE_RATE_INGEST_KEY
    rate_limit(request, scope="ingest-key", key=f"project:{project.id}", rate=rate)
