"""The queue between ingest and scoring: it only wakes workers up.

Ingest adds the leads it touched to a set of pending lead ids (Redis; in embedded mode
a set in the one process) and wakes the scoring task, deduplicated while a wake-up is
queued. A scoring task takes up to a batch of lead ids at a time, holding the wake-up
while it drains (requests meanwhile send no task: it takes their leads at its next turn),
paces its turns so that steady traffic is scored in batches, not a task and a batch per
event (`scoring.services.leads_score_drain`), and wakes a second worker whenever a batch
comes back full.
The database stays the source of truth: a lost message or set only delays scoring
until the reconciler requests the leads again.
"""

import logging
import os
import threading
import uuid
from collections.abc import Iterable
from dataclasses import replace
from functools import partial
from typing import Any

import redis
from celery import current_app as app
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils.module_loading import import_string

from . import metrics
from .contracts import (
    COMPANY_CHANGES_TASK,
    COMPANY_LEAD_CHANGES_TASK,
    LEAD_CHANGED_TASK,
    LEAD_CHANGES_FANOUT_TASK,
    LEAD_CHANGES_TASK,
    LEADS_SCORE_TASK,
    PREDICTION_LEAD_CHANGES_TASK,
    CompanyChange,
    LeadChange,
)

logger = logging.getLogger(__name__)

PENDING_KEY = "lp:score-pending"
WAKE_KEY = "lp:score-wake"
WAKE_LATER_KEY = "lp:score-wake-later"
SHARE_KEY = "lp:score-share"
# A draining task holds the wake-up this long at each turn (`lead_score_pending_take`): longer than a batch takes.
HOLD_SECONDS = 2
# Leads requested without a wake-up still get one this much later (at most one such task per period).
WAKE_LATER_SECONDS = 1

_local_lock = threading.Lock()
_local_pending: set[int] = set()  # embedded mode: web, worker and beat share one process
_redis: tuple[str, redis.Redis] | None = None


def _client() -> redis.Redis:
    """The process's client of the pending set and the wake-up marker (REDIS_URL's database)."""
    global _redis
    if _redis is None or _redis[0] != settings.REDIS_URL:  # redis-py re-creates its connections after a fork
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        _redis = (settings.REDIS_URL, client)
    return _redis[1]


def lead_score_pending_pop(*, count: int) -> list[int]:
    """Take up to `count` pending lead ids; each is handed to one caller only."""
    if settings.EMBEDDED:
        with _local_lock:
            return [_local_pending.pop() for _ in range(min(count, len(_local_pending)))]
    return sorted(int(lead_id) for lead_id in _client().spop(PENDING_KEY, count) or [])


def lead_score_pending_take(*, count: int) -> list[int]:
    """Take up to `count` pending lead ids as a draining task, holding the wake-up for `HOLD_SECONDS`.

    While it is held, requests add their leads to the set and send no task: the drain takes them
    at its next turn, in one batch instead of a task each. One round trip: the marker is (re)set
    and the ids popped in one pipeline. A drain that dies holding it stops holding it when the
    marker expires; its leads are in the set still, for the next wake-up or the reconciler.
    """
    if settings.EMBEDDED:
        cache.set(WAKE_KEY, 1, timeout=HOLD_SECONDS)
        return lead_score_pending_pop(count=count)
    pipe = _client().pipeline(transaction=False)
    pipe.set(WAKE_KEY, 1, px=int(HOLD_SECONDS * 1000))
    pipe.spop(PENDING_KEY, count)
    return sorted(int(lead_id) for lead_id in pipe.execute()[1] or [])


def lead_score_share() -> None:
    """Wake one more worker to share a backlog with the draining ones, unless one is woken already and has not
    started (`lead_score_share_claim`): a backlog brings in as many workers as its full batches find idle."""
    timeout = settings.LEADPULSE_SCORE_PENDING_SECONDS
    if settings.EMBEDDED:
        shared = cache.add(SHARE_KEY, 1, timeout=timeout)
    else:
        shared = bool(_client().set(SHARE_KEY, 1, nx=True, ex=timeout))
    if shared:
        app.send_task(LEADS_SCORE_TASK)


def lead_score_share_claim() -> None:
    """A drain starts: a full batch from now on may wake one more worker."""
    try:
        if settings.EMBEDDED:
            cache.delete(SHARE_KEY)
        else:
            _client().delete(SHARE_KEY)
    except Exception:  # a stale marker only holds the next share back until it expires
        logger.warning("scoring share marker not cleared", exc_info=True)


def lead_score_request(*, lead_ids: Iterable[int], wake: bool = True) -> int:
    """Ask for the leads to be scored and wake a worker; return how many.

    `wake=False` (the caller drains the set itself, or found the leads locked by another
    worker): no task now, but one follows `WAKE_LATER_SECONDS` later, so leads put back in
    the set as a drain ends are not left for the reconciler. One round trip to Redis whatever
    the number of leads: the ids go into the pending set and the marker is set if absent, in
    one pipeline; a task is sent only when it was absent. Requests that threads of the process
    make while one such round trip is under way share the next one (`_coalesced`).
    """
    ids = sorted(set(lead_ids))
    if not ids:
        return 0
    if settings.EMBEDDED:
        try:
            with _local_lock:
                _local_pending.update(ids)
            if wake:
                lead_score_wake()
            elif cache.add(WAKE_LATER_KEY, 1, timeout=WAKE_LATER_SECONDS):
                app.send_task(LEADS_SCORE_TASK, countdown=WAKE_LATER_SECONDS)
        except Exception:
            _request_failed(len(ids))
            return 0
        return len(ids)
    if wake:
        return _coalesced.request(ids)
    return _request_send(ids, wake=False)


def _request_send(ids: Iterable[int], *, wake: bool) -> int:
    """`lead_score_request`'s round trip to Redis (and the task it sends); how many leads were requested (0: failed)."""
    ids = list(ids)
    try:
        pipe = _client().pipeline(transaction=False)
        pipe.sadd(PENDING_KEY, *ids)
        if wake:
            pipe.set(WAKE_KEY, 1, nx=True, ex=settings.LEADPULSE_SCORE_PENDING_SECONDS)
        else:
            pipe.set(WAKE_LATER_KEY, 1, nx=True, ex=WAKE_LATER_SECONDS)
        if pipe.execute()[1]:
            app.send_task(LEADS_SCORE_TASK, countdown=None if wake else WAKE_LATER_SECONDS)
    except Exception:
        _request_failed(len(ids))
        return 0
    return len(ids)


def _request_failed(count: int) -> None:
    # Redis (set or broker) is down. The events are stored; the reconciler requests them later.
    logger.warning("scoring of %d leads not requested; the reconciler will catch up", count, exc_info=True)


class CoalescedRequests:
    """Scoring requests of a process's threads, sent as a group commit sends: whoever finds no round trip under
    way sends its leads at once, and then, in one round trip each time, what other threads asked for meanwhile.

    A single-event request under load (a web process's threads storing an event each) would otherwise pay a
    round trip to Redis of its own after its commit. A thread whose leads another sends returns at once: they
    reach the set within that round trip. A request's thread sends at most `LEADER_ROUNDS` rounds of others'
    leads: under steady load there is always more, and its own client would wait for all of it. What is left
    then goes on in a thread of its own, so nothing asked for stays unsent. A process that dies in between
    loses only the requests, not the events (stored and committed): the reconciler requests their leads again.
    """

    LEADER_ROUNDS = 4

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # the parent's sender is not the child's

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._waiting: set[int] = set()
        self._sending = False

    def request(self, ids: list[int]) -> int:
        with self._lock:
            if self._sending:
                self._waiting.update(ids)
                return len(ids)
            self._sending = True
        try:
            sent = _request_send(ids, wake=True)
            self._send_waiting(rounds=self.LEADER_ROUNDS)
        except BaseException:
            with self._lock:
                self._sending = False
            raise
        return sent

    def _send_waiting(self, *, rounds: int | None) -> None:
        """Send what other threads asked for meanwhile, a round trip each time, until nothing waits; after
        `rounds` (None: no limit), hand what waits then on to a thread of its own."""
        done = 0
        while True:
            with self._lock:
                if not self._waiting:
                    self._sending = False
                    return
                if rounds is not None and done == rounds:
                    threading.Thread(target=self._send_rest, name="scoring-requests", daemon=True).start()
                    return  # still sending: the thread goes on
                waiting, self._waiting = self._waiting, set()
            metrics.scoring_requests_shared(leads=len(waiting))
            _request_send(sorted(waiting), wake=True)
            done += 1

    def _send_rest(self) -> None:
        try:
            self._send_waiting(rounds=None)
        except BaseException:
            with self._lock:
                self._sending = False
            raise


_coalesced = CoalescedRequests()


def lead_score_wake(*, force: bool = False) -> None:
    """Send a scoring task unless one is queued already (`force`: send one anyway).

    The reconciler forces one: a wake-up a killed worker had reserved is only redelivered
    after the broker's visibility timeout, and its marker would hold new ones back meanwhile.
    """
    timeout = settings.LEADPULSE_SCORE_PENDING_SECONDS
    if not settings.EMBEDDED:
        marked = bool(_client().set(WAKE_KEY, 1, nx=not force, ex=timeout))
    elif force:
        cache.set(WAKE_KEY, 1, timeout=timeout)
        marked = True
    else:
        marked = cache.add(WAKE_KEY, 1, timeout=timeout)
    if marked:
        app.send_task(LEADS_SCORE_TASK)


def lead_score_wake_claim() -> None:
    """Mark the queued wake-up as taken (or a drain's hold as released): leads requested from now on wake a
    worker again."""
    try:
        if settings.EMBEDDED:
            cache.delete(WAKE_KEY)
        else:
            _client().delete(WAKE_KEY)
    except Exception:  # a stale marker only delays the next wake-up until it expires
        logger.warning("scoring wake-up marker not cleared", exc_info=True)


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


def lead_changed(*, change: LeadChange) -> None:
    """After commit, hand a lead's change (scored, merged, identified) to automations and webhooks."""
    lead_changes(changes=[change])


def lead_changes(*, changes: list[LeadChange]) -> None:
    """After commit, hand a batch's lead changes to predictions, companies, and automations and webhooks: one message.

    Each consumer gets its own part (`_prediction_part`, `_company_part`, `_automation_part`): the
    parts travel together as one `LEAD_CHANGES_FANOUT_TASK` (a lone part as its own task), which runs them
    in that order, so a webhook sent for a change carries the probability and company the same batch gave
    the lead. A batch costs one message to send and one task to run, whatever the consumers.
    """
    parts = [
        part
        for part in (_prediction_part(changes=changes), _company_part(changes=changes),
                     _automation_part(changes=changes))
        if part is not None
    ]  # fmt: skip
    if len(parts) == 1:
        transaction.on_commit(partial(_changes_send, parts[0][0], **parts[0][1]), robust=True)
    elif parts:
        transaction.on_commit(partial(_changes_send, LEAD_CHANGES_FANOUT_TASK, parts=parts), robust=True)


Part = tuple[str, dict[str, Any]]  # (task name, its kwargs)


def _changes_send(task: str, **kwargs: Any) -> None:
    """Send a task carrying changes, summarised in its logged repr: Celery would write out every change (a
    batch's hundreds) in the message's `kwargsrepr`, and that costs more than sending it."""
    shown = {name: f"<{len(value)}>" if isinstance(value, list) else "<1>" for name, value in kwargs.items()}
    app.send_task(task, kwargs=kwargs, kwargsrepr=repr(shown))


def lead_changes_fanout(*, parts: list[Part]) -> None:
    """Run the parts of a batch's lead changes in turn, in this process, each its task's work (by name).

    A part that fails is sent as a task of its own, which retries it as that task does; the parts
    after it still run now. Each consumer is idempotent per change (a retry repeats no effect).
    """
    for name, kwargs in parts:
        try:
            app.tasks[name].run(**kwargs)
        except Exception:
            logger.warning(
                "lead changes for %s failed in the fan-out; sent as a task of their own", name, exc_info=True
            )
            _changes_send(name, **kwargs)


def company_changes(*, changes: list[LeadChange]) -> None:
    """After commit, hand companies these changes only (a lead's profile changed its company, not its score)."""
    part = _company_part(changes=changes)
    if part is not None:
        transaction.on_commit(partial(_changes_send, part[0], **part[1]), robust=True)


def _automation_part(*, changes: list[LeadChange]) -> Part | None:
    """Automations' and webhooks' part: every change, each with its own change id (a redelivered message is the
    same change, not a new one), for projects with listeners only: most folds of most projects cost them nothing."""
    listening: dict[int, bool] = {}
    wanted = []
    for change in changes:
        project_id = change.project_id
        if project_id not in listening:
            listening[project_id] = project_listens(project_id=project_id)
        if listening[project_id]:
            wanted.append(change.with_id(uuid.uuid4().hex).to_message())
    if len(wanted) == 1:
        return (LEAD_CHANGED_TASK, {"change": wanted[0]})
    return (LEAD_CHANGES_TASK, {"changes": wanted}) if wanted else None


def _company_part(*, changes: list[LeadChange]) -> Part | None:
    """Companies' part: one change per lead.

    Companies re-read the members' results and profiles, so the primary model's `scored` change of
    each lead is enough (every fold writes one, also after an identify or a merge), without its
    folded event ids and path.
    """
    wanted = {
        change.lead_id: replace(change, event_ids=(), path=()).to_message()
        for change in changes
        if change.kind == "scored" and change.primary
    }
    return (COMPANY_LEAD_CHANGES_TASK, {"changes": list(wanted.values())}) if wanted else None


def _prediction_part(*, changes: list[LeadChange]) -> Part | None:
    """Predictions' part: the batch's folded events and merges, one change per lead.

    Predictions look for the project's "won" event among the folded events (the primary model's change carries
    them, as every model folds the same ones), move a merged-away lead's outcome to its survivor, and recompute
    the probability of every lead the batch changed (decay and identify included: recency and traits are features).
    """
    wanted: dict[tuple[int, str], dict] = {}
    for change in changes:
        if change.kind in ("scored", "identified") and change.primary:
            wanted[change.lead_id, change.kind] = replace(change, path=()).to_message()
        elif change.kind == "merged":
            wanted[change.lead_id, "merged"] = replace(change, event_ids=(), path=()).to_message()
    return (PREDICTION_LEAD_CHANGES_TASK, {"changes": list(wanted.values())}) if wanted else None


def companies_changed(*, changes: list[CompanyChange]) -> None:
    """After commit, hand a recompute's company changes to automations: one message, for projects with listeners.

    Each change gets its own change id (a redelivered message is the same change) and travels as
    `CompanyChange.to_message()`, sent by name as lead changes are.
    """
    listening: dict[int, bool] = {}
    wanted = []
    for change in changes:
        project_id = change.project_id
        if project_id not in listening:
            listening[project_id] = project_listens(project_id=project_id)
        if listening[project_id]:
            wanted.append(change.with_id(uuid.uuid4().hex).to_message())
    if wanted:
        transaction.on_commit(partial(_changes_send, COMPANY_CHANGES_TASK, changes=wanted), robust=True)
