"""Scoring in batches: claim many pending leads at once, fold each in the engine, write in bulk."""

import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from core import metrics, pipeline
from core.sql import ids_in, int_array
from ingest.models import Event, Lead
from ingest.services import IDENTITY_CALLS

from .. import engine
from ..models import ScoringModel, ScoringRule
from .fold import (
    Materialiseds,
    Scored,
    checkpoints_agree,
    engine_models,
    evaluations_save,
    lead_profile,
    lead_refold,
    leads_decay_evaluate,
    leads_materialised,
    log_pages,
    quoted_columns,
)
from .identity import lead_identify

logger = logging.getLogger(__name__)

FACT_FIELDS = ("id", "lead_id", "event_id", "name", "timestamp", "properties", "context", "type", "processed_at")
PENDING_FIELDS = (*FACT_FIELDS, "user_id")


@dataclass
class BatchResult:
    """What one batch did: leads scored, events folded, and leads left for a later batch."""

    scored: int = 0
    events: int = 0
    busy: set[int] = field(default_factory=set)  # locked by another worker: try again a moment later
    more: set[int] = field(default_factory=set)  # a chunk folded, more events pending: carry on


# Compiled models per project, keyed by the models' and active rules' (id, updated_at): a model or
# rule created, changed, deactivated or deleted changes the key, so the cache never serves stale rules.
_models_cache: dict[int, tuple[tuple, list[engine.Model]]] = {}


def projects_models(*, project_ids: Iterable[int]) -> dict[int, list[engine.Model]]:
    """Each project's scoring models (primary first) with their active rules: one small statement reads their
    versions, and they are compiled (two queries) once per version."""
    ids = sorted(set(project_ids))
    versions: dict[int, list[tuple]] = {pid: [("rows", settings.LEADPULSE_HISTORY_ALL_MODELS)] for pid in ids}
    for project_id, *key in _models_versions(ids):
        versions[project_id].append(tuple(key))
    stale = [pid for pid in ids if pid not in _models_cache or _models_cache[pid][0] != tuple(versions[pid])]
    if stale:
        models = ScoringModel.objects.filter(project_id__in=stale).order_by("project_id", "id")
        active = ScoringRule.objects.filter(project_id__in=stale, is_active=True).order_by("project_id", "id")
        rows: dict[int, list[ScoringRule]] = defaultdict(list)
        for row in active:
            rows[row.project_id].append(row)
        by_project: dict[int, list[ScoringModel]] = defaultdict(list)
        for model in models:
            by_project[model.project_id].append(model)
        for pid in stale:
            # keyed by the first query's versions: a change in between only costs a recompile next batch
            _models_cache[pid] = (tuple(versions[pid]), engine_models(by_project[pid], rows[pid]))
    return {pid: _models_cache[pid][1] for pid in ids}


def _models_versions(project_ids: list[int]) -> list[tuple]:
    """(project id, "model", id, primary, version, updated at) of the projects' models and (project id, "rule", id,
    updated at) of their active rules, in order: one hand-written statement, as every batch asks (the ORM took
    longer to build the two queries than PostgreSQL to answer them)."""
    if not project_ids:
        return []
    model, rule = (connection.ops.quote_name(m._meta.db_table) for m in (ScoringModel, ScoringRule))
    model_project, model_id, primary, version, model_updated = quoted_columns(
        ScoringModel, ("project", "id", "is_primary", "version", "updated_at")
    )
    rule_project, rule_id, active, rule_updated = quoted_columns(
        ScoringRule, ("project", "id", "is_active", "updated_at")
    )
    models_of, models_params = ids_in(model_project, project_ids, connection.vendor)
    rules_of, rules_params = ids_in(rule_project, project_ids, connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {model_project}, 'model', {model_id}, {primary}, {version}, {model_updated}"  # noqa: S608
            f" FROM {model} WHERE {models_of}"
            f" UNION ALL SELECT {rule_project}, 'rule', {rule_id}, NULL, NULL, {rule_updated}"
            f" FROM {rule} WHERE {rules_of} AND {active}"
            " ORDER BY 1, 2, 3",
            [*models_params, *rules_params],
        )
        return cursor.fetchall()


def _identity_pending(lead_ids: list[int]) -> dict[int, set[int]]:
    """The leads' unscored identity calls: lead id -> the events' pks (one hand-written statement, as every batch
    asks: an `identify`, `alias` or `group` call, or an event naming a user other than its lead's)."""
    if not lead_ids:
        return {}
    event, lead = (connection.ops.quote_name(m._meta.db_table) for m in (Event, Lead))
    pk, lead_id, kind, user_id, processed_at = quoted_columns(Event, ("id", "lead", "type", "user_id", "processed_at"))
    lead_pk, lead_user_id = quoted_columns(Lead, ("id", "user_id"))
    of_leads, leads_params = ids_in(f"e.{lead_id}", lead_ids, connection.vendor)
    calls_in = ", ".join(["%s"] * len(IDENTITY_CALLS))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT e.{lead_id}, e.{pk} FROM {event} e INNER JOIN {lead} l ON l.{lead_pk} = e.{lead_id}"  # noqa: S608
            f" WHERE {of_leads} AND e.{processed_at} IS NULL"
            f" AND (e.{kind} IN ({calls_in}) OR (e.{user_id} <> '' AND e.{user_id} <> l.{lead_user_id}))",
            [*leads_params, *IDENTITY_CALLS],
        )
        rows = cursor.fetchall()
    calls: dict[int, set[int]] = defaultdict(set)
    for lead, pk in rows:
        calls[lead].add(pk)
    return calls


def _leads_identify(lead_ids: list[int], resolved: set[int]) -> list[int]:
    """Apply the leads' pending identity calls (per lead: they are rare); return the leads to score.

    A lead may be promoted or merged away (its survivor is scored instead). The calls read
    here go into `resolved`: `lead_identify` reads the lead's calls again after this, so it
    applies every one of them (and any that arrived in between).
    """
    ids = set(lead_ids)
    for lead_id, calls in _identity_pending(lead_ids).items():
        resolved |= calls
        survivor = lead_identify(lead_id=lead_id)
        ids.discard(lead_id)
        if survivor is not None:
            ids.add(survivor)
    return sorted(ids)


def leads_claim(*, lead_ids: list[int]) -> list[Lead]:
    """Lock the leads no other worker holds, in one statement (inside a transaction).

    PostgreSQL: `FOR NO KEY UPDATE SKIP LOCKED` serialises scoring per lead across every
    worker and host without waits, and does not conflict with the `FOR KEY SHARE` lock
    ingest's foreign-key checks take. SQLite has no row locks: its IMMEDIATE transactions
    (settings) take the database's write lock at BEGIN, so claims are serialised anyway.
    """
    if not lead_ids:
        return []
    # hand-written: every batch claims, and the ORM took longer to build the statement than PostgreSQL to run it
    table = connection.ops.quote_name(Lead._meta.db_table)
    (pk,) = quoted_columns(Lead, ("id",))
    lock = " FOR NO KEY UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    of_leads, params = ids_in(pk, lead_ids, connection.vendor)
    sql = f"SELECT * FROM {table} WHERE {of_leads} ORDER BY {pk}{lock}"  # noqa: S608
    return list(Lead.objects.raw(sql, params))


def _pending_facts(
    leads: dict[int, Lead], chunk: int
) -> tuple[dict[int, list[tuple[int, engine.EventFact]]], dict[int, set[int]]]:
    """The leads' unprocessed events in fold order, at most `chunk` per lead (a hot lead's backlog is
    folded a chunk at a time from its checkpoint), in one query; and the identity calls among them.

    PostgreSQL reads each lead's first `chunk` with a LATERAL … LIMIT on the (lead, timestamp,
    event_id) index, so a lead with a long backlog costs one chunk per batch, not its whole backlog
    (as a window over all of it would, which SQLite, without LATERAL, still does).
    """
    rows: Iterable[tuple]
    if connection.vendor == "postgresql":
        event = Event._meta
        quoted = quoted_columns(Event, PENDING_FIELDS)
        columns = ", ".join(f"e.{column}" for column in quoted)
        lead_id, timestamp, event_id, processed_at = (quoted[PENDING_FIELDS.index(name)] for name in
                                                      ("lead_id", "timestamp", "event_id", "processed_at"))  # fmt: skip
        # identifiers come from the model's metadata; the values are parameters
        sql = f"""
            SELECT {columns} FROM unnest(%s::bigint[]) AS l (id) CROSS JOIN LATERAL (
                SELECT * FROM {connection.ops.quote_name(event.db_table)} AS e
                WHERE e.{lead_id} = l.id AND e.{processed_at} IS NULL
                ORDER BY e.{timestamp}, e.{event_id} LIMIT %s
            ) AS e ORDER BY e.{lead_id}, e.{timestamp}, e.{event_id}
        """  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(sql, [list(leads), chunk])
            fetched = cursor.fetchall()
        # a plain cursor returns JSON columns as text (Django decodes them in from_db_value)
        props, ctx = PENDING_FIELDS.index("properties"), PENDING_FIELDS.index("context")
        loads = orjson.loads
        rows = [(*row[:props], loads(row[props]), loads(row[ctx]), *row[ctx + 1 :]) for row in fetched]
    else:
        position = Window(RowNumber(), partition_by=F("lead_id"), order_by=[F("timestamp").asc(), F("event_id").asc()])
        rows = (
            Event.objects.filter(lead_id__in=list(leads), processed_at__isnull=True)
            .annotate(position=position)
            .filter(position__lte=chunk)
            .order_by("lead_id", "timestamp", "event_id")
            .values_list(*PENDING_FIELDS)
        )
    by_lead: dict[int, list[tuple[int, engine.EventFact]]] = defaultdict(list)
    identity: dict[int, set[int]] = defaultdict(set)
    for pk, lead_id, event_id, name, ts, props, ctx, kind, _, user_id in rows:
        by_lead[lead_id].append((pk, engine.EventFact(event_id, name, ts, props, ctx, kind)))
        if kind in IDENTITY_CALLS or (user_id and user_id != leads[lead_id].user_id):
            identity[lead_id].add(pk)
    return by_lead, identity


# Rounds of identity resolution one batch makes while identity calls keep arriving.
IDENTITY_ROUNDS = 5


def leads_score(*, lead_ids: Iterable[int], now: datetime | None = None) -> BatchResult:
    """Score a batch of leads: identity first, then one claim, one events read, one bulk write.

    Leads another worker holds are skipped (they come back in `busy`); a lead with more
    pending events than one chunk folds a chunk from its checkpoint (and comes back in `more`).
    An identity call among the events a fold read that was not resolved before (ingest
    committed it meanwhile) holds its lead back: it is resolved in another round, up to
    IDENTITY_ROUNDS; a lead still getting new ones then comes back in `more`, unfolded.
    """
    result = BatchResult()
    ids = sorted(set(lead_ids))
    resolved: set[int] = set()  # pks of the identity calls lead_identify has applied
    for _ in range(IDENTITY_ROUNDS):
        if not ids:
            return result
        ids = _leads_identify(ids, resolved)
        ids = _leads_fold(ids, resolved=resolved, result=result, now=now)
    result.more |= set(ids)
    return result


def _leads_fold(
    lead_ids: list[int], *, resolved: set[int], result: BatchResult, now: datetime | None, alone: bool = False
) -> list[int]:
    """Claim the leads and fold their pending events in one transaction, adding to `result`.

    Returns the leads held back: an identity call among the events read is not in `resolved`.
    The leads whose fold must start again from their first event (a late event, or events a
    merge moved here) are refolded after the batch, together in a transaction of their own
    (`alone`): a long log does not hold the batch's other leads.
    """
    chunk = settings.LEADPULSE_SCORE_CHUNK_EVENTS
    with transaction.atomic():
        leads = leads_claim(lead_ids=lead_ids)
        claimed = {lead.id for lead in leads}
        skipped = set(lead_ids) - claimed
        if skipped:  # locked by another worker (or erased): the live ones are tried again later
            result.busy |= set(Lead.objects.filter(id__in=skipped).values_list("id", flat=True))
        live, handed_on = _merged_handed_on(leads)
        pending, identity = _pending_facts({lead.id: lead for lead in live}, chunk)
        # an identity call committed after lead_identify looked: resolve it first, or it would be
        # folded as a plain event and the lead would never learn who it is
        unresolved = {lead_id for lead_id, calls in identity.items() if not calls <= resolved}
        live = [lead for lead in live if lead.id not in unresolved]
        models = projects_models(project_ids={lead.project_id for lead in live})
        materialised = leads_materialised(live, models)
        now = now or timezone.now()
        batch: list[Scored] = []
        deferred: list[int] = []
        for lead in live:
            own = pending.get(lead.id, [])
            project_models = models[lead.project_id]
            lead_models = materialised[lead.id]
            continues = lead_models[project_models[0].id].state.continues_with([fact for _, fact in own])
            refold = not continues or not checkpoints_agree(lead_models, project_models)
            if refold and not alone:
                deferred.append(lead.id)
                continue
            consumed = [pk for pk, _ in own]
            if len(own) >= chunk:
                result.more.add(lead.id)  # maybe more: the next chunk continues from this checkpoint
            batch.append(_lead_scored(lead, lead_models, own, project_models, now=now, refold=refold))
            result.events += len(consumed)
        evaluations_save(scored=batch, now=now)
        result.scored += len(batch)
        if handed_on:
            transaction.on_commit(partial(pipeline.lead_score_request, lead_ids=handed_on))
    if deferred:
        unresolved |= set(_leads_fold(deferred, resolved=resolved, result=result, now=now, alone=True))
    return sorted(unresolved)


def _merged_handed_on(leads: list[Lead]) -> tuple[list[Lead], set[int]]:
    """The claimed leads not merged away, and the survivors that merged ones handed late events on to."""
    live: list[Lead] = []
    handed_on: set[int] = set()
    for lead in leads:
        if lead.merged_into_id:
            # events ingest attached just before the merge committed: hand them on
            if Event.objects.filter(lead=lead, processed_at__isnull=True).update(lead_id=lead.merged_into_id):
                handed_on.add(lead.merged_into_id)
        else:
            live.append(lead)
    return live, handed_on


def _lead_scored(
    lead: Lead,
    materialised: Materialiseds,
    own: list[tuple[int, engine.EventFact]],
    models: list[engine.Model],
    *,
    now: datetime,
    refold: bool,
) -> Scored:
    """A locked lead's evaluations: its pending events folded on from its checkpoint, or its whole log again."""
    consumed = [pk for pk, _ in own]
    if refold:  # a late event (or events a merge moved here, or a new model): fold the whole log again
        log = log_pages(lead_id=lead.id, pending=consumed)
        return lead_refold(lead=lead, log=log, pending=consumed, models=models, before=materialised, now=now)
    evaluations = engine.models_evaluate(
        models=models, leads=materialised, events=[fact for _, fact in own], profile=lead_profile(lead), now=now
    )
    return Scored(lead, evaluations, {fact.event_id: pk for pk, fact in own}, consumed, models)


def leads_score_drain(
    *, batch_size: int | None = None, seconds: float | None = None, linger: float | None = None
) -> int:
    """Score pending leads batch after batch until none is left (or time is up); return events folded.

    Each turn takes a batch holding the wake-up (`pipeline.lead_score_pending_take`), so leads
    requested while this drains are its next batch rather than new tasks. Turns are paced: after a
    batch that was not full (and left no lead with more to fold), the next is taken `linger` seconds
    (`LEADPULSE_SCORE_LINGER_SECONDS`) after the previous one, so steady traffic is scored in batches
    of what arrives in that time, not in as many small batches as the worker can run (a batch costs
    about as much as its leads, whatever their number). The first event after a quiet spell is scored
    at once; a backlog is taken without pauses. A turn that finds the set empty is followed by one
    more; when that one finds it empty too, the drain releases the wake-up and looks a last time (a
    lead requested between its look and the release woke no one). When a batch comes back full,
    another worker is woken to share the backlog.
    """
    batch_size = batch_size or settings.LEADPULSE_SCORE_BATCH
    linger = settings.LEADPULSE_SCORE_LINGER_SECONDS if linger is None else linger
    deadline = time.monotonic() + (seconds or settings.LEADPULSE_SCORE_DRAIN_SECONDS)
    folded, empty, paced = 0, 0, False
    taken_at = -math.inf
    pipeline.lead_score_share_claim()
    while True:
        wait = taken_at + linger - time.monotonic()
        if paced and wait > 0 and time.monotonic() + wait < deadline:
            time.sleep(wait)
        taken_at = time.monotonic()
        lead_ids = pipeline.lead_score_pending_take(count=batch_size)
        if not lead_ids and linger > 0 and not empty and time.monotonic() + linger < deadline:
            empty, paced = 1, True
            continue  # one more look, a linger later
        if not lead_ids:
            pipeline.lead_score_wake_claim()  # released: requests from now on wake a worker
            lead_ids = pipeline.lead_score_pending_pop(count=batch_size)
            if not lead_ids:
                return folded
        empty = 0
        metrics.scoring_batch(leads=len(lead_ids))
        if len(lead_ids) == batch_size:
            pipeline.lead_score_share()  # more work than one batch: let another worker share it
        try:
            result = leads_score(lead_ids=lead_ids)
        except BaseException:
            pipeline.lead_score_wake_claim()  # released, so the request below wakes a worker
            pipeline.lead_score_request(lead_ids=lead_ids)  # not scored: back in the set for a retry
            raise
        folded += result.events
        paced = len(lead_ids) < batch_size and not result.more
        if result.more:
            pipeline.lead_score_request(lead_ids=result.more)
        if result.busy:
            # Held by another worker right now: back in the set without a wake-up. A scoring
            # holder drains the set again after its commit; any other holder (a merge, an edit)
            # leaves them to the next wake-up or the reconciler's.
            pipeline.lead_score_request(lead_ids=result.busy, wake=False)
            if not result.scored:
                pipeline.lead_score_wake_claim()
                return folded  # only busy leads left: do not spin on them
        if time.monotonic() > deadline:
            pipeline.lead_score_wake_claim()
            pipeline.lead_score_wake()  # yield the worker to other tasks; a new task carries on
            return folded


def _log_heads(
    lead_ids: list[int], size: int, *, documents: bool = True
) -> dict[int, list[tuple[int, engine.EventFact]]]:
    """The first `size` folded events of each lead's log, in fold order, in one query.

    `documents=False`: no rule looks at an event's properties or context (none has conditions), so
    they are not read (an empty document each): decoding them was most of a re-score's read. A manual
    adjustment's properties are read all the same: they are what the fold applies.
    PostgreSQL reads each lead's first `size` with a LATERAL … LIMIT on the (lead, timestamp,
    event_id) index, rows as plain tuples; SQLite, without LATERAL, numbers the rows in a window.
    """
    heads: dict[int, list[tuple[int, engine.EventFact]]] = defaultdict(list)
    if connection.vendor != "postgresql":
        position = Window(RowNumber(), partition_by=F("lead_id"), order_by=[F("timestamp").asc(), F("event_id").asc()])
        rows = (
            Event.objects.filter(lead_id__in=lead_ids, processed_at__isnull=False)
            .annotate(position=position)
            .filter(position__lte=size)
            .order_by("lead_id", "timestamp", "event_id")
            .values_list(*FACT_FIELDS[:-1])
        )
        for pk, lead_id, event_id, name, ts, props, ctx, kind in rows:
            heads[lead_id].append((pk, engine.EventFact(event_id, name, ts, props, ctx, kind)))
        return heads
    quoted = quoted_columns(Event, FACT_FIELDS)
    pk, lead_id, event_id, name, timestamp, props, ctx, kind, processed_at = quoted
    selected = [f"e.{column}" for column in (pk, lead_id, event_id, name, timestamp, kind)]
    selected += [f"e.{props}", f"e.{ctx}"] if documents else [f"CASE WHEN e.{kind} = %s THEN e.{props} END"]
    # identifiers come from the model's metadata; the values are parameters
    sql = f"""
        SELECT {", ".join(selected)}
        FROM unnest(%s::bigint[]) AS l (id) CROSS JOIN LATERAL (
            SELECT * FROM {connection.ops.quote_name(Event._meta.db_table)} AS e
            WHERE e.{lead_id} = l.id AND e.{processed_at} IS NOT NULL
            ORDER BY e.{timestamp}, e.{event_id} LIMIT %s
        ) AS e ORDER BY e.{lead_id}, e.{timestamp}, e.{event_id}
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [*([] if documents else [engine.ADJUSTMENT]), int_array(lead_ids), size])
        fetched = cursor.fetchall()
    # a plain cursor returns JSON columns as text (Django decodes them in from_db_value)
    loads = orjson.loads
    if documents:
        for row_pk, row_lead, row_event, row_name, ts, row_kind, row_props, row_ctx in fetched:
            fact = engine.EventFact(row_event, row_name, ts, loads(row_props), loads(row_ctx), row_kind)
            heads[row_lead].append((row_pk, fact))
    else:
        for row_pk, row_lead, row_event, row_name, ts, row_kind, row_props in fetched:
            fact = engine.EventFact(row_event, row_name, ts, loads(row_props) if row_props else {}, {}, row_kind)
            heads[row_lead].append((row_pk, fact))
    return heads


def leads_refold_locked(*, leads: Sequence[Lead], now: datetime) -> int:
    """Re-score locked leads: refold each log from nothing under its project's rules of now.

    One read for all their logs (a hot lead's goes on a page at a time), one bulk write per
    LEADPULSE_SCORE_CHUNK_EVENTS history rows. Only the events folded before are refolded: a
    pending one waits for its own fold (an identity call among them is resolved first), which
    continues from the new checkpoint or refolds again. Returns the leads whose score or stage moved.
    """
    size = settings.LEADPULSE_SCORE_CHUNK_EVENTS
    live = [lead for lead in leads if not lead.merged_into_id]
    models = projects_models(project_ids={lead.project_id for lead in live})
    documents = any(rule.conditions for project in models.values() for model in project for rule in model.rules)
    heads = _log_heads([lead.id for lead in live], size, documents=documents)
    materialised = leads_materialised(live, models)
    batch: list[Scored] = []
    rows = changed = 0
    for lead in live:
        log = log_pages(lead_id=lead.id, head=heads.get(lead.id, []))
        scored = lead_refold(lead=lead, log=log, pending=(), models=models[lead.project_id],
                             before=materialised[lead.id], now=now, purpose="rescore")  # fmt: skip
        batch.append(scored)
        rows += sum(len(evaluation.history) for evaluation in scored.evaluations.values())
        changed += scored.evaluation.changed
        if rows >= size:
            evaluations_save(scored=batch, now=now)
            batch, rows = [], 0
    evaluations_save(scored=batch, now=now)
    return changed


def leads_decay(*, lead_ids: Sequence[int], now: datetime) -> int:
    """Materialise decay up to `now` for the leads no one else holds, in one transaction; return leads changed.

    A lead being scored right now is skipped: that fold decays it. Idempotent within a day.
    """
    if not lead_ids:
        return 0
    with transaction.atomic():
        leads = leads_claim(lead_ids=list(lead_ids))
        models = projects_models(project_ids={lead.project_id for lead in leads})
        batch = leads_decay_evaluate(leads=leads, models=models, now=now)
        evaluations_save(scored=batch, now=now)
    return sum(item.evaluation.changed for item in batch)
