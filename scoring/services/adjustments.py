"""Manual adjustments: a person's (or key's) change of a lead's score, appended to the lead's log.

An adjustment is an event (`type` adjustment, named `$adjustment`) of the lead, so every fold,
refold, re-score and version score replays it (`engine.adjustment_of`). It is scored at once, in
the request, by the same service the worker uses; when a worker holds the lead right then, the
lead is queued and the worker folds it moments later.
"""

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import ApiKey, User
from core.errors import ApplicationError
from ingest.models import Event, Lead

from .. import engine
from ..models import ScoreHistory, ScoringModel
from .fold import primary_model
from .history import rows_of_events
from .leads import lead_score

ADJUSTMENT_POINTS_MAX = 10000  # the largest score range a model may have: any more is a typo
REASON_MAX_LENGTH = 500
# A client's key for one adjustment (the `Idempotency-Key` header): a retry with it is the same adjustment.
IDEMPOTENCY_KEY = re.compile(r"[!-~]{8,100}")
IDEMPOTENCY_FIELD = "Idempotency-Key"


@dataclass(frozen=True)
class Author:
    """Who made an adjustment, as the log keeps it: a person (`user`) or a secret key (`key`)."""

    type: str
    id: int
    label: str  # the person's email, or the key's name (its prefix)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "id": self.id, "label": self.label}


def adjustment_author(*, user: User | None = None, api_key: ApiKey | None = None) -> Author:
    """The author of an adjustment made by `user` or, without one, by `api_key`."""
    if user is not None:
        return Author(type="user", id=user.id, label=user.email)
    if api_key is None:
        raise ValueError("an adjustment has an author")
    return Author(type="key", id=api_key.id, label=f"secret key {api_key.prefix}…")


def _checked(*, points: int | None, set_to: int | None, reason: str) -> dict[str, Any]:
    """The adjustment's change and reason, or a 400 naming the field that is wrong."""
    if (points is None) == (set_to is None):
        raise ApplicationError("Give exactly one of points and setTo.", field="points" if points is None else "setTo")
    if points is not None:
        if points == 0 or abs(points) > ADJUSTMENT_POINTS_MAX:
            raise ApplicationError(f"Must be a non-zero number from -{ADJUSTMENT_POINTS_MAX} to "
                                   f"{ADJUSTMENT_POINTS_MAX}.", field="points")  # fmt: skip
        change: dict[str, Any] = {"points": points}
    else:
        assert set_to is not None
        if not 0 <= set_to <= ADJUSTMENT_POINTS_MAX:
            raise ApplicationError(f"Must be a number from 0 to {ADJUSTMENT_POINTS_MAX}.", field="setTo")
        change = {"setTo": set_to}
    reason = reason.strip()
    if not reason or len(reason) > REASON_MAX_LENGTH or "\x00" in reason:
        raise ApplicationError(f"Say why, in at most {REASON_MAX_LENGTH} characters.", field="reason")
    return {**change, "reason": reason}


@dataclass(frozen=True)
class Adjusted:
    """An adjustment made: its event, the lead after it, and whether it is scored yet."""

    event: Event
    lead: Lead
    model: ScoringModel
    history: ScoreHistory | None  # the model's history row of it; None until scored
    replayed: bool = False  # made before, by a request with the same idempotency key

    @property
    def scored(self) -> bool:
        """False when a worker held the lead: it folds the adjustment moments later."""
        return self.event.processed_at is not None


@transaction.atomic
def adjustment_append(
    *,
    lead: Lead,
    reason: str,
    author: Author,
    model: ScoringModel,
    points: int | None = None,
    set_to: int | None = None,
    now: datetime | None = None,
    idempotency_key: str | None = None,
) -> Event:
    """Store a checked manual adjustment of `model` in the lead's log at `now`, pending: the next fold applies it.

    The model is stored by key as it is now, so the log replays the same adjustment whatever
    becomes primary later. With an idempotency key the event's id is made of it, so the log holds
    one adjustment per key (the project's unique event ids refuse a second).
    """
    change = _checked(points=points, set_to=set_to, reason=reason)
    if model.project_id != lead.project_id:
        raise ApplicationError("No scoring model of this project has this key.", field="model")
    now = now or timezone.now()
    return Event.objects.create(
        project_id=lead.project_id,
        lead=lead,
        event_id=f"{engine.ADJUSTMENT_NAME}:{idempotency_key or uuid.uuid4()}",
        type=Event.Type.ADJUSTMENT,
        name=engine.ADJUSTMENT_NAME,
        anonymous_id=lead.anonymous_id,
        properties={**change, "model": model.key, "author": author.to_json()},
        timestamp=now,
        received_at=now,
    )


def lead_adjust(
    *,
    lead: Lead,
    reason: str,
    author: Author,
    points: int | None = None,
    set_to: int | None = None,
    model: ScoringModel | None = None,
    now: datetime | None = None,
    idempotency_key: str | None = None,
) -> Adjusted:
    """Append a manual adjustment of `model` (the primary one by default) to the lead's log, then score the lead.

    `points` adds to the engagement score, `setTo` sets it (the fit still adds); exactly one of the two.
    A retry with the same `idempotency_key` answers with the adjustment made the first time (`replayed`);
    the same key with another change, lead or model is a 409.
    """
    model = model or primary_model(lead.project)
    if idempotency_key is not None and not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise ApplicationError("Must be 8 to 100 printable ASCII characters, no spaces.", field=IDEMPOTENCY_FIELD)
    try:
        with transaction.atomic():
            event = adjustment_append(lead=lead, reason=reason, author=author, points=points, set_to=set_to,
                                      model=model, now=now, idempotency_key=idempotency_key)  # fmt: skip
    except IntegrityError:
        if idempotency_key is None:
            raise
        return _adjustment_replayed(lead=lead, model=model, key=idempotency_key,
                                    change=_checked(points=points, set_to=set_to, reason=reason))  # fmt: skip
    # the worker's path: lock the lead, fold its pending events (this one among them), write, broadcast
    scored = lead_score(lead_id=lead.id) or lead
    event.refresh_from_db(fields=["processed_at", "lead"])
    rows = ScoreHistory.objects.filter(lead_id=event.lead_id, model=model)
    history = next(iter(rows_of_events(lead=scored, rows=rows, event_ids=[event.id])), None)
    return Adjusted(event=event, lead=scored, model=model, history=history)


def _adjustment_replayed(*, lead: Lead, model: ScoringModel, key: str, change: dict[str, Any]) -> Adjusted:
    """The adjustment an earlier request with this idempotency key made, when it asked for the same change."""
    event = Event.objects.get(project_id=lead.project_id, event_id=f"{engine.ADJUSTMENT_NAME}:{key}")
    made = {name: event.properties.get(name) for name in ("points", "setTo", "reason", "model")}
    wanted = {"points": None, "setTo": None, **change, "model": model.key}
    # a merge moves the event to the survivor: the lead the request names answers with its survivor
    survivor = Lead.objects.get(id=event.lead_id)
    if made != wanted or survivor.id not in (lead.id, lead.merged_into_id):
        raise ApplicationError(
            "This idempotency key was used for another adjustment.", field=IDEMPOTENCY_FIELD,
            code="idempotency_conflict", status_code=409,
        )  # fmt: skip
    history = ScoreHistory.objects.filter(event=event, model=model).first()
    return Adjusted(event=event, lead=survivor, model=model, history=history, replayed=True)
