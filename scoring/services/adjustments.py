"""Manual adjustments: a person's (or key's) change of a lead's score, appended to the lead's log.

An adjustment is an event (`type` adjustment, named `$adjustment`) of the lead, so every fold,
refold, re-score and version score replays it (`engine.adjustment_of`). It is scored at once, in
the request, by the same service the worker uses; when a worker holds the lead right then, the
lead is queued and the worker folds it moments later.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
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
) -> Event:
    """Store a checked manual adjustment of `model` in the lead's log at `now`, pending: the next fold applies it.

    The model is stored by key as it is now, so the log replays the same adjustment whatever
    becomes primary later.
    """
    change = _checked(points=points, set_to=set_to, reason=reason)
    if model.project_id != lead.project_id:
        raise ApplicationError("No scoring model of this project has this key.", field="model")
    now = now or timezone.now()
    return Event.objects.create(
        project_id=lead.project_id,
        lead=lead,
        event_id=f"{engine.ADJUSTMENT_NAME}:{uuid.uuid4()}",
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
) -> Adjusted:
    """Append a manual adjustment of `model` (the primary one by default) to the lead's log, then score the lead.

    `points` adds to the engagement score, `setTo` sets it (the fit still adds); exactly one of the two.
    """
    model = model or primary_model(lead.project)
    event = adjustment_append(lead=lead, reason=reason, author=author, points=points, set_to=set_to, model=model,
                              now=now)  # fmt: skip
    # the worker's path: lock the lead, fold its pending events (this one among them), write, broadcast
    scored = lead_score(lead_id=lead.id) or lead
    event.refresh_from_db(fields=["processed_at", "lead"])
    rows = ScoreHistory.objects.filter(lead_id=event.lead_id, model=model)
    history = next(iter(rows_of_events(lead=scored, rows=rows, event_ids=[event.id])), None)
    return Adjusted(event=event, lead=scored, model=model, history=history)
