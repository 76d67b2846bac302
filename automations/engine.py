"""Pure decisions of the automations app: does a change trigger a rule, how is a delivery signed."""

import errno
import hashlib
import hmac
import itertools
import os
import re
import ssl
import unicodedata
from http import HTTPStatus
from typing import Any

import httpx
from django.core import signing

from scoring import contracts as scoring_engine

STAGE_ORDER = {stage: i for i, stage in enumerate(scoring_engine.STAGES)}


def trigger_fires(
    trigger: str, config: dict[str, Any], change: dict[str, Any], events: list[scoring_engine.EventFact]
) -> dict[str, Any] | None:
    """What fired (for the execution log), or None. Transitions only: entering, crossing."""
    kind = change["kind"]
    # every (score, stage) the lead went through in this change, however its events were batched
    steps = list(
        itertools.pairwise(
            change.get("path") or [[change["oldScore"], change["oldStage"]], [change["newScore"], change["newStage"]]]
        )
    )
    if trigger == "stage_entered":
        # into the stage, or past it on the way up ("tell me when a lead gets hot" includes
        # one that jumps straight to qualified); cold is entered by dropping into it
        stage = config.get("stage")
        rank = STAGE_ORDER.get(str(stage), -1)
        for (_, before), (_, after) in steps:
            if (rank > 0 and STAGE_ORDER[before] < rank <= STAGE_ORDER[after]) or (
                rank == 0 and after == stage and before != stage
            ):
                return {"trigger": trigger, "from": before, "to": after, "stage": stage}
    elif trigger in ("score_crossed_up", "score_crossed_down"):
        threshold = config.get("threshold", 0)
        for (before, _), (after, _) in steps:
            up = before < threshold <= after
            down = before >= threshold > after
            if (up and trigger == "score_crossed_up") or (down and trigger == "score_crossed_down"):
                return {"trigger": trigger, "threshold": threshold, "from": before, "to": after}
    elif trigger == "velocity_at_least":
        if kind == "scored" and change["velocity"] >= config.get("velocity", 1):
            return {"trigger": trigger, "velocity": change["velocity"]}
    elif trigger == "event_received":
        rule = scoring_engine.Rule(
            id=0,
            event_type=config.get("eventType", "*"),
            points=0,
            conditions=tuple(scoring_engine.compile_condition(c) for c in config.get("conditions", [])),
        )
        for event in events:
            if rule.event_type in ("*", event.name) and rule.matches(event.subject()):
                return {"trigger": trigger, "eventId": event.event_id, "eventType": event.name}
    elif trigger == "lead_merged" and kind == "merged":
        return {"trigger": trigger, "mergedLeadId": change.get("mergedLeadId")}
    elif trigger == "lead_identified" and kind == "identified":
        return {"trigger": trigger}
    return None


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


def slack_escape(text: Any) -> str:
    """Slack mrkdwn control characters: lead names come from public ingest (no <!channel> pings)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(*, rule_name: str, lead: dict[str, Any], trigger: dict[str, Any], lead_url: str) -> dict[str, Any]:
    who = slack_escape(lead["name"] or lead["email"] or lead["anonymousId"])
    rule_name = slack_escape(rule_name)
    contact = f" ({slack_escape(lead['email'])})" if lead["email"] and lead["name"] else ""
    text = (
        f":fire: *{rule_name}*: {who}{contact} is *{lead['stage']}* with a score of *{lead['score']}*"
        f" ({trigger['trigger'].replace('_', ' ')}). <{lead_url}|Open the lead>"
    )
    return {"text": text}


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


def email_subject(*, rule_name: str, who: str, stage: str, score: int) -> str:
    """One header line: a lead's name comes from public ingest, so no line break or control character survives."""
    return one_line(f"[LeadPulse] {rule_name}: {who} is {stage} ({score})")
