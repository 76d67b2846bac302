"""Pure decisions of the automations app: does a change trigger a rule, how is a delivery signed."""

import errno
import hashlib
import hmac
import os
import re
import ssl
import unicodedata
from http import HTTPStatus
from typing import Any

import httpx
from django.core import signing

from core.contracts import CompanyChange, LeadChange
from scoring import contracts as scoring_engine

from . import triggers


def trigger_fires(
    trigger: str, config: dict[str, Any], change: LeadChange, events: list[scoring_engine.EventFact]
) -> dict[str, Any] | None:
    """What fired (for the execution log), or None: the registered lead trigger's decision on this lead change."""
    found = triggers.registry.get(trigger)
    if found is None or found.subject != "lead":
        return None
    # a rule watches one scoring model's score and stage: the one it names, else the primary one
    if (change.model != config["model"]) if config.get("model") else not change.primary:
        return None
    return found.fires(config, change, events)


def company_trigger_fires(trigger: str, config: dict[str, Any], change: CompanyChange) -> dict[str, Any] | None:
    """What fired, or None: the registered company trigger's decision on this company change."""
    found = triggers.registry.get(trigger)
    if found is None or found.subject != "company":
        return None
    if (change.model != config["model"]) if config.get("model") else not change.primary:
        return None
    return found.company_fires(config, change)


def lead_conditions_hold(conditions: dict[str, Any], lead: dict[str, Any]) -> bool:
    """Optional extra filters on the lead: stages, score range, fit grades, trait conditions."""
    if conditions.get("stages") and lead["stage"] not in conditions["stages"]:
        return False
    if conditions.get("minScore") is not None and lead["score"] < conditions["minScore"]:
        return False
    if conditions.get("maxScore") is not None and lead["score"] > conditions["maxScore"]:
        return False
    if conditions.get("grades") and lead["grade"] not in conditions["grades"]:
        return False
    traits = [scoring_engine.compile_condition(c) for c in conditions.get("traits", [])]
    return all(condition.holds(lead["profile"]) for condition in traits)


def signature_header(*, secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`, as Stripe-style receivers verify it."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def signature_verify(*, secret: str, header: str, body: bytes, now: int, tolerance: int = 300) -> bool:
    """The check a receiver runs (used by our tests and shown in the README)."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature_header(secret=secret, timestamp=timestamp, body=body).split("v1=")[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


# --- Why a delivery failed: a short line of our own words, never the receiver's body --------

REASON_LIMIT = 200


def one_line(text: str, *, limit: int = REASON_LIMIT) -> str:
    """One printable line of at most `limit` characters (control and format characters become spaces)."""
    printable = "".join(" " if unicodedata.category(c)[0] in "CZ" and c != " " else c for c in text)
    line = re.sub(r" {2,}", " ", printable).strip()
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def status_reason(code: int) -> str:
    """`HTTP 500 Internal Server Error`: the standard phrase, not the one the receiver sent."""
    try:
        return f"HTTP {code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"HTTP {code}"


def _os_error(exc: BaseException | None) -> OSError | None:
    seen = 0
    while exc is not None and seen < 10:  # httpx wraps httpcore, which wraps the socket's error
        if isinstance(exc, OSError):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def error_reason(exc: httpx.HTTPError, *, timeout: float) -> str:
    """`timeout after 10 s`, `connection refused`, `TLS certificate not trusted`…: what went wrong, in our words."""
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout after {timeout:g} s"
    cause = _os_error(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return "TLS certificate not trusted"
    if isinstance(cause, ssl.SSLError):
        return "TLS handshake failed"
    if isinstance(exc, httpx.ConnectError):
        if cause is not None and cause.errno == errno.ECONNREFUSED:
            return "connection refused"
        return (
            f"connection failed: {os.strerror(cause.errno).lower()}" if cause and cause.errno else "connection failed"
        )
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the receiver's response was not valid HTTP"
    return f"request failed ({type(exc).__name__})"


# --- Email recipients' confirmation links ------------------------------------------------------

RECIPIENT_TOKEN_SALT = "automations.recipient"  # noqa: S105 (a signing namespace, not a password)
RECIPIENT_TOKEN_MAX_AGE = 7 * 86400


def recipient_token_make(*, recipient_id: int, nonce: str) -> str:
    """A signed token naming the recipient; the nonce makes each request's link a new one."""
    return signing.dumps({"r": recipient_id, "n": nonce}, salt=RECIPIENT_TOKEN_SALT)


def recipient_token_read(token: str) -> int | None:
    """The recipient a token names, or None when it is forged, malformed or older than a week."""
    try:
        data = signing.loads(token, salt=RECIPIENT_TOKEN_SALT, max_age=RECIPIENT_TOKEN_MAX_AGE)
    except signing.BadSignature:
        return None
    recipient_id = data.get("r") if isinstance(data, dict) else None
    return recipient_id if isinstance(recipient_id, int) else None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
