"""The queue between ingest and scoring: it only wakes workers up.

Ingest asks for a lead to be scored; the scoring task claims the request before it
reads the lead's events. A cache key marks a lead as pending so a burst of events
enqueues one task, not one per event. The database stays the source of truth: a
lost message or key only delays scoring until the reconciler re-enqueues the lead.
"""

import logging
import uuid
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils.module_loading import import_string

from leadpulse.celery import app

logger = logging.getLogger(__name__)

LEAD_SCORE_TASK = "scoring.lead_score_task"


def _pending_key(lead_id: int) -> str:
    return f"lp:score-pending:{lead_id}"


def lead_score_request(*, lead_ids: Iterable[int]) -> int:
    """Enqueue one scoring task per lead that has none pending; return how many were sent."""
    sent = 0
    try:
        for lead_id in sorted(set(lead_ids)):
            if cache.add(_pending_key(lead_id), 1, timeout=settings.LEADPULSE_SCORE_PENDING_SECONDS):
                app.send_task(LEAD_SCORE_TASK, kwargs={"lead_id": lead_id})
                sent += 1
    except Exception:
        # Redis (cache or broker) is down. The events are stored; the reconciler enqueues them later.
        logger.warning("scoring not enqueued (%d sent); the reconciler will catch up", sent, exc_info=True)
    return sent


def lead_score_claim(*, lead_id: int) -> None:
    """Mark the lead's request as taken: events committed from now on enqueue a new task."""
    try:
        cache.delete(_pending_key(lead_id))
    except Exception:  # a stale marker only delays the next enqueue until it expires
        logger.warning("pending marker of lead %s not cleared", lead_id, exc_info=True)


LEAD_CHANGED_TASK = "automations.lead_changed_task"
LEAD_CHANGES_TASK = "automations.lead_changes_task"


def _listeners_key(project_id: int) -> str:
    return f"lp:lead-listeners:{project_id}"


def project_listens(*, project_id: int) -> bool:
    """Whether anything (an automation rule, a webhook subscription) wants the project's lead changes.

    Asked through the `LEADPULSE_LEAD_LISTENERS` hook (so scoring never imports automations)
    and cached; automations call `lead_listeners_changed` when theirs change.
    """

    def ask() -> bool:
        return bool(import_string(settings.LEADPULSE_LEAD_LISTENERS)(project_id=project_id))

    # short-lived: bounds the window in which a just-saved rule could be missed
    try:
        return bool(cache.get_or_set(_listeners_key(project_id), ask, timeout=30))
    except Exception:  # the cache is down: ask the database directly
        return ask()


def lead_listeners_changed(*, project_id: int) -> None:
    transaction.on_commit(lambda: cache.delete(_listeners_key(project_id)), robust=True)


def lead_changed(*, change: dict) -> None:
    """After commit, hand a lead's change (scored, merged, identified) to automations and webhooks.

    `change`: {"kind", "projectId", "leadId", "oldScore", "newScore", "oldStage", "newStage",
    "velocity", "eventIds", "path", "mergedLeadId"?}; "changeId" is added here.
    """
    lead_changes(changes=[change])


def lead_changes(*, changes: list[dict]) -> None:
    """After commit, hand a batch's lead changes to automations and webhooks in one message.

    Each change keeps the shape `lead_changed` documents and gets its own "changeId". Sent
    by name, and only for projects with listeners: most folds of most projects cost no task.
    """
    listening: dict[int, bool] = {}
    wanted = []
    for change in changes:
        project_id = change["projectId"]
        if project_id not in listening:
            listening[project_id] = project_listens(project_id=project_id)
        if listening[project_id]:
            # The id travels with the task: a redelivered message is the same change, not a new one.
            wanted.append({**change, "changeId": uuid.uuid4().hex})
    if len(wanted) == 1:
        change = wanted[0]
        transaction.on_commit(lambda: app.send_task(LEAD_CHANGED_TASK, kwargs={"change": change}), robust=True)
    elif wanted:
        transaction.on_commit(lambda: app.send_task(LEAD_CHANGES_TASK, kwargs={"changes": wanted}), robust=True)
