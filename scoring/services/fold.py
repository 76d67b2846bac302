"""The fold's persistence: feed locked leads' events to `engine.lead_evaluate`, store what it returns."""

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache, partial
from itertools import islice
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, CharField, Count, Model, Q, QuerySet, Value, When
from django.db.models.functions import Concat
from django.utils import timezone

from accounts.models import Project
from core import metrics
from core.contracts import LeadChange
from core.pipeline import lead_changes
from core.realtime import project_broadcast
from core.sql import int_array
from ingest.models import Event, Lead
from ingest.services import LeadMove, events_mark_processed, lead_tallies_move

from .. import engine
from ..models import LeadScore, ScoreHistory, ScoringModel, ScoringRule

# Rows a refold rewrites (they chain: each old score is the previous new score), and the segments that stand for
# a non-primary model's `rule` rows (`engine.SEGMENT`). Merge and rescore rows are audit entries outside the chain
# and stay.
FOLDED_REASONS = (ScoreHistory.Reason.RULE, ScoreHistory.Reason.DECAY, ScoreHistory.Reason.FIT, engine.SEGMENT)


def model_policy(model: ScoringModel) -> engine.Policy:
    return engine.Policy(
        warm_threshold=model.warm_threshold,
        hot_threshold=model.hot_threshold,
        qualified_threshold=model.qualified_threshold,
        max_score=model.max_score,
        decay=engine.Decay(
            enabled=model.decay_enabled,
            rate_percent=model.decay_rate_percent,
            grace_days=model.decay_grace_days,
        ),
    )


def matrix_cell_sql(*, grade: str, engagement: str, policy: engine.Policy) -> Concat:
    """`engine.matrix_cell` in SQL, on a grade and an engagement column (or annotation)."""
    tier = Case(
        When(**{f"{engagement}__gte": policy.hot_threshold}, then=Value("1")),
        When(**{f"{engagement}__gte": policy.warm_threshold}, then=Value("2")),
        default=Value("3"),
    )
    return Concat(grade, tier, output_field=CharField())


def primary_model(project: Project) -> ScoringModel:
    """The model that drives the project's `current_score` and `lead_stage`."""
    return ScoringModel.objects.get(project=project, is_primary=True)


def project_policy(project: Project) -> engine.Policy:
    """The primary model's thresholds, score range and decay."""
    return model_policy(primary_model(project))


def rule_from_row(row: ScoringRule) -> engine.Rule:
    return engine.Rule(
        id=row.id,
        name=row.name,
        event_type=row.event_type,
        points=row.points,
        conditions=tuple(engine.compile_condition(c) for c in row.conditions),
        max_per_day=row.max_per_day,
        max_per_lead=row.max_per_lead,
        max_points=row.max_points,
        window=engine.Window(row.window_count, row.window_days) if row.window_count and row.window_days else None,
    )


def project_rules(project: Project) -> tuple[list[engine.Rule], list[engine.Rule]]:
    """The primary model's active (engagement, fit) rules as engine values."""
    engagement: list[engine.Rule] = []
    fit: list[engine.Rule] = []
    rows = ScoringRule.objects.filter(project=project, model__is_primary=True, is_active=True).order_by("id")
    for row in rows:
        (fit if row.kind == ScoringRule.Kind.FIT else engagement).append(rule_from_row(row))
    return engagement, fit


def engine_models(models: Iterable[ScoringModel], rules: Iterable[ScoringRule]) -> list[engine.Model]:
    """The models (primary first) with their active rules, compiled for the engine."""
    by_model: dict[int, tuple[list[engine.Rule], list[engine.Rule]]] = defaultdict(lambda: ([], []))
    for row in rules:
        engagement, fit = by_model[row.model_id]
        (fit if row.kind == ScoringRule.Kind.FIT else engagement).append(rule_from_row(row))
    return [
        engine.Model(
            id=model.id,
            key=model.key,
            rules=tuple(by_model[model.id][0]),
            fit_rules=tuple(by_model[model.id][1]),
            policy=model_policy(model),
            primary=model.is_primary,
            version=model.version,
            rule_rows=settings.LEADPULSE_HISTORY_ALL_MODELS,
        )
        for model in sorted(models, key=lambda m: (not m.is_primary, m.id))
    ]


def project_models(project: Project) -> list[engine.Model]:
    """Every scoring model of the project, primary first, with its active rules."""
    rules = ScoringRule.objects.filter(project=project, is_active=True).order_by("id")
    return engine_models(ScoringModel.objects.filter(project=project), rules)


def lead_profile(lead: Lead) -> dict[str, Any]:
    """The document fit rules look at: `email`, `name`, `company`, `userId`, `traits.x`."""
    return {
        "email": lead.email,
        "name": lead.name,
        "company": lead.company,
        "userId": lead.user_id,
        "traits": lead.traits,
    }


def facts(queryset: QuerySet[Event], *, limit: int | None = None) -> list[tuple[int, engine.EventFact]]:
    """The events in fold order (the first `limit` of them), as (pk, fact)."""
    rows = queryset.order_by("timestamp", "event_id").values_list(
        "id", "event_id", "name", "timestamp", "properties", "context", "type"
    )[:limit]
    return [(pk, engine.EventFact(eid, name, ts, props, ctx, kind)) for pk, eid, name, ts, props, ctx, kind in rows]


def lead_materialised(lead: Lead) -> engine.Materialised:
    """The lead's stored scores and fold checkpoint under its primary model, as the engine takes them."""
    return _materialised(lead.current_score, lead.engagement_score, lead.fit_score, lead.lead_stage, lead.fold_state)


def _score_materialised(row: LeadScore) -> engine.Materialised:
    return _materialised(row.score, row.engagement, row.fit, row.stage, row.fold_state)


def _materialised(score: int, engagement: int, fit: int, stage: str, fold_state: Any) -> engine.Materialised:
    """Stored results and a checkpoint (the fit rules that applied are kept beside the fold's state)."""
    return engine.Materialised(
        score=score,
        engagement=engagement,
        fit=fit,
        stage=stage,
        state=engine.FoldState.from_json(fold_state),
        fit_applied=tuple((int(r), int(p)) for r, p in (fold_state or {}).get("fit", [])),
    )


Materialiseds = dict[int, engine.Materialised]  # model id -> the lead as that model left it


def leads_materialised(leads: Sequence[Lead], models: dict[int, list[engine.Model]]) -> dict[int, Materialiseds]:
    """Each lead as each of its project's models left it: the primary's from the lead, the others' from
    their `LeadScore` rows (one query, none when no project has a second model)."""
    result = {lead.id: {models[lead.project_id][0].id: lead_materialised(lead)} for lead in leads}
    others = [model.id for project_models in models.values() for model in project_models[1:]]
    if others:
        rows = LeadScore.objects.filter(lead_id__in=list(result), model_id__in=others)
        for row in rows:
            result[row.lead_id][row.model_id] = _score_materialised(row)
    return result


def checkpoints_agree(materialised: Materialiseds, models: Sequence[engine.Model]) -> bool:
    """Every model has folded exactly the events the primary has (a model created since has not: refold)."""
    primary = materialised[models[0].id].state.key
    return all((materialised.get(model.id) or engine.Materialised()).state.key == primary for model in models[1:])


@dataclass
class Scored:
    """A locked lead, its evaluation under each model, and the stored events the evaluations folded or consumed."""

    lead: Lead
    evaluations: dict[int, engine.Evaluation]  # model id -> evaluation, the primary model's first
    event_pks: dict[str, int] = field(default_factory=dict)  # event_id -> pk of the events folded
    pending: list[int] = field(default_factory=list)  # pks of the events to mark processed
    models: Sequence[engine.Model] = ()

    @property
    def evaluation(self) -> engine.Evaluation:
        """The primary model's evaluation: the lead's own score columns."""
        return self.evaluations[self.models[0].id]

    @property
    def policy(self) -> engine.Policy:
        return self.models[0].policy

    @property
    def writes(self) -> bool:
        return any(evaluation.writes for evaluation in self.evaluations.values())


def lead_fold_locked(
    *, lead: Lead, now: datetime, refold: bool = False, reason: str = "rule", event_ids: list[int] | None = None
) -> bool:
    """Fold the lead's unprocessed events (all of them when `refold`) under every model; the caller holds
    the row lock.

    Events after the newest scored one continue the fold; an older one (a late event,
    or events a merge moved here) restarts it from the lead's first event, rewriting
    the history, a chunk of events at a time (`lead_refold`). With nothing pending only
    the fit can move. Returns whether the primary score or stage changed. `event_ids`: fold
    only these of the unprocessed events (the ones the caller checked); ingest may commit
    more meanwhile, which wait for their own fold.
    """
    models = project_models(lead.project)
    unprocessed = Event.objects.filter(lead=lead, processed_at__isnull=True)
    if event_ids is not None:
        unprocessed = unprocessed.filter(id__in=event_ids)
    pending = facts(unprocessed)
    materialised = leads_materialised([lead], {lead.project_id: models})[lead.id]
    purpose = "rescore" if reason == ScoreHistory.Reason.RESCORE else "score"
    continues = materialised[models[0].id].state.continues_with([fact for _, fact in pending])
    if refold or not continues or not checkpoints_agree(materialised, models):
        consumed = [pk for pk, _ in pending]
        scored = lead_refold(
            lead=lead, log=log_pages(lead_id=lead.id, pending=consumed), pending=consumed, models=models,
            before=materialised, now=now, purpose=purpose,
        )  # fmt: skip
    else:
        evaluations = engine.models_evaluate(
            models=models, leads=materialised, events=[fact for _, fact in pending], profile=lead_profile(lead),
            now=now, purpose=purpose,
        )  # fmt: skip
        event_pks = {fact.event_id: pk for pk, fact in pending}
        scored = Scored(lead, evaluations, event_pks, [pk for pk, _ in pending], models)
    evaluations_save(scored=[scored], now=now)
    return scored.evaluation.changed


def log_pages(
    *,
    lead_id: int,
    pending: Collection[int] = (),
    head: list[tuple[int, engine.EventFact]] | None = None,
    start: tuple[datetime, str] | None = None,
) -> Iterator[tuple[int, engine.EventFact]]:
    """The lead's log to refold, in fold order, read a page of LEADPULSE_SCORE_CHUNK_EVENTS at a time
    (from the event with key `start` on, when given).

    The log is the events folded before and the `pending` ones the caller read; not one
    committed since (it is not marked processed by this fold, so it must not be folded here
    either: its own fold would count it again, and an identity call would never be resolved).
    `head`: the log's first page when the caller read it already (with other leads' logs).
    """
    size = settings.LEADPULSE_SCORE_CHUNK_EVENTS
    if head is not None:
        yield from head
        if len(head) < size:
            return  # the whole log: no query
    log = Event.objects.filter(lead_id=lead_id).filter(Q(processed_at__isnull=False) | Q(id__in=list(pending)))
    if start is not None:
        log = log.filter(Q(timestamp__gt=start[0]) | Q(timestamp=start[0], event_id__gte=start[1]))
    page = head if head is not None else facts(log, limit=size)
    if head is None:
        yield from page
    while len(page) == size:
        last = page[-1][1]
        after = Q(timestamp__gt=last.timestamp) | Q(timestamp=last.timestamp, event_id__gt=last.event_id)
        page = facts(log.filter(after), limit=size)
        yield from page


def lead_refold(
    *,
    lead: Lead,
    log: Iterable[tuple[int, engine.EventFact]],
    pending: Collection[int],
    models: Sequence[engine.Model],
    before: Materialiseds,
    now: datetime,
    purpose: str = "score",
) -> Scored:
    """Refold the locked lead's whole `log` (in fold order) from nothing under every model, a chunk of
    events at a time.

    However long the log, memory holds one chunk (LEADPULSE_SCORE_CHUNK_EVENTS): every chunk
    but the last is evaluated with `final=False` and its history is written at once; the last
    one's evaluations, compared with the lead as it was (`before`, per model), are returned for
    the caller to save with its batch. `pending`: the unprocessed events in the log, marked
    processed with their chunk.
    """
    size = settings.LEADPULSE_SCORE_CHUNK_EVENTS
    pending = set(pending)
    profile = lead_profile(lead)
    events = iter(log)
    chunk = list(islice(events, size))
    current, first, first_timestamp = before, True, None
    while True:
        following = list(islice(events, size))
        evaluations = engine.models_evaluate(
            models=models, leads=current, events=[fact for _, fact in chunk], profile=profile, now=now,
            refold=first, purpose=purpose, final=not following, before=before,
        )  # fmt: skip
        event_pks = {fact.event_id: pk for pk, fact in chunk}
        scored = Scored(lead, evaluations, event_pks, [pk for pk, _ in chunk if pk in pending], models)
        if not following:
            break
        if first:
            ScoreHistory.objects.filter(lead_id=lead.id, reason__in=FOLDED_REASONS).delete()
            first_timestamp = scored.evaluation.first_timestamp
        _history_insert([scored])
        _events_consume([scored], now=now)
        current = {
            model_id: engine.Materialised(
                score=evaluation.score,
                engagement=evaluation.engagement,
                fit=evaluation.fit,
                stage=evaluation.stage,
                state=evaluation.state,
                fit_applied=evaluation.fit_applied,
            )
            for model_id, evaluation in evaluations.items()
        }
        first, chunk = False, following
    if first:
        return scored  # one chunk: a plain refold
    # the history before the last chunk is written already: what is left to save is the last
    # chunk's rows and the lead, changed from what it was before the first chunk
    whole = {
        model_id: replace(
            evaluation,
            refolded=False,
            path=((before.get(model_id) or engine.Materialised()).score, evaluation.score),
            first_timestamp=first_timestamp,
        )
        for model_id, evaluation in scored.evaluations.items()
    }
    return replace(scored, evaluations=whole)


def lead_decay_locked(*, lead: Lead, now: datetime) -> bool:
    """Materialise decay up to `now` as `decay` history rows; a second run the same day changes nothing."""
    models = project_models(lead.project)
    scored = leads_decay_evaluate(leads=[lead], models={lead.project_id: models}, now=now)
    evaluations_save(scored=scored, now=now)
    return scored[0].evaluation.changed


def leads_decay_evaluate(
    *, leads: Sequence[Lead], models: dict[int, list[engine.Model]], now: datetime
) -> list[Scored]:
    """Each lead's decay up to `now` under each of its project's models."""
    materialised = leads_materialised(leads, models)
    return [
        Scored(
            lead,
            engine.models_evaluate(
                models=models[lead.project_id],
                leads=materialised[lead.id],
                events=(),
                profile={},
                now=now,
                purpose="decay",
            ),
            models=models[lead.project_id],
        )
        for lead in leads
    ]


LEAD_SCORE_FIELDS = [
    "current_score",
    "engagement_score",
    "fit_score",
    "fit_grade",
    "lead_stage",
    "matrix_cell",
    "fold_state",
    "last_event_at",
    "first_seen_at",
    "events_last_24h",
    "velocity_score",
    "last_scored_at",
    "updated_at",
]


def evaluations_save(*, scored: Sequence[Scored], now: datetime) -> None:
    """Persist evaluations of locked leads in a few bulk statements, then tell listeners on commit.

    Refolded leads lose their folded history first (merge and rescore rows are audit
    entries outside the chain and stay); every history row goes in one INSERT, every
    consumed event is marked in one UPDATE, and the leads are updated in one statement.
    """
    scored = [item for item in scored if item.writes or item.pending]
    if not scored:
        return
    refolded = [item.lead.id for item in scored if item.evaluation.refolded]
    if refolded:
        ScoreHistory.objects.filter(lead_id__in=refolded, reason__in=FOLDED_REASONS).delete()
    _history_insert(scored)
    _events_consume(scored, now=now)
    folded = [item.lead.id for item in scored if item.evaluation.folded or item.evaluation.refolded]
    recent: dict[int, int] = {}
    if folded:
        counts = (
            Event.objects.filter(lead_id__in=folded, timestamp__gte=now - timedelta(hours=24))
            .exclude(type=engine.ADJUSTMENT)  # a manual adjustment is not the lead's activity
            .values("lead_id")
            .annotate(n=Count("id"))
            .order_by()
        )
        recent = {row["lead_id"]: row["n"] for row in counts}
    changes: list[LeadChange] = []
    model_changes: list[LeadChange] = []  # of the other models: automations may watch any model
    broadcasts: dict[int, list[dict[str, Any]]] = defaultdict(list)
    moves: list[LeadMove] = []
    for item in scored:
        lead, evaluation = item.lead, item.evaluation
        old_score, old_stage, old_cell = lead.current_score, lead.lead_stage, lead.matrix_cell
        lead.current_score = evaluation.score
        lead.engagement_score = evaluation.engagement
        lead.fit_score = evaluation.fit
        lead.fit_grade = evaluation.grade
        lead.lead_stage = evaluation.stage
        lead.matrix_cell = engine.matrix_cell(evaluation.grade, evaluation.engagement, item.policy)
        if not lead.merged_into_id:
            old, new = (old_stage, old_score, old_cell), (lead.lead_stage, lead.current_score, lead.matrix_cell)
            moves.append(LeadMove(lead.project_id, old, new))
        # the fit rules that applied are kept beside the fold, so the breakdown explains the stored fit
        lead.fold_state = {**evaluation.state.to_json(), "fit": [list(applied) for applied in evaluation.fit_applied]}
        if lead.id in folded:
            lead.last_event_at = evaluation.state.active_at
            if evaluation.first_timestamp is not None:
                lead.first_seen_at = min(lead.first_seen_at or evaluation.first_timestamp, evaluation.first_timestamp)
            lead.events_last_24h = recent.get(lead.id, 0)
            lead.velocity_score = engine.velocity_score(lead.events_last_24h)
            lead.last_scored_at = now
        lead.updated_at = now
        broadcasts[lead.project_id].append(
            {
                "id": lead.id,
                "anonymousId": lead.anonymous_id,
                "email": lead.email,
                "currentScore": lead.current_score,
                "previousScore": old_score,
                "leadStage": lead.lead_stage,
                "previousStage": old_stage,
                "eventsScored": len(item.pending),
                "matrixCell": lead.matrix_cell,
                "scores": {model.key: _model_shown(item.evaluations[model.id], model) for model in item.models},
            }
        )  # fmt: skip
        model_changes += _model_changes(item)
        changes.append(
            LeadChange(
                kind="scored",
                project_id=lead.project_id,
                lead_id=lead.id,
                old_score=old_score,
                new_score=lead.current_score,
                old_stage=old_stage,
                new_stage=lead.lead_stage,
                velocity=lead.events_last_24h,
                event_ids=tuple(item.pending[:500]),
                path=tuple((score, engine.stage_for(score, item.policy)) for score in _squeeze(list(evaluation.path))),
                model=item.models[0].key,
            )
        )
    _leads_update([item.lead for item in scored])
    _lead_scores_save(scored, now=now)
    # the project's stage and cell counts move in the same transaction, one statement for the batch
    lead_tallies_move(moves=moves)
    _leads_updated(broadcasts=broadcasts, changes=[*changes, *model_changes])


def _model_shown(evaluation: engine.Evaluation, model: engine.Model) -> dict[str, Any]:
    """A model's result as pages show it live: score, stage and matrix cell (fit grade by engagement tier)."""
    cell = engine.matrix_cell(evaluation.grade, evaluation.engagement, model.policy)
    return {"score": evaluation.score, "stage": evaluation.stage, "cell": cell}


def _model_changes(item: Scored) -> list[LeadChange]:
    """The changes of the lead's other models whose score or stage moved."""
    changes = []
    for model in item.models[1:]:
        evaluation = item.evaluations[model.id]
        if not evaluation.changed:
            continue
        path = tuple((score, engine.stage_for(score, model.policy)) for score in _squeeze(list(evaluation.path)))
        changes.append(
            LeadChange(
                kind="scored", project_id=item.lead.project_id, lead_id=item.lead.id, old_score=path[0][0],
                new_score=evaluation.score, old_stage=path[0][1], new_stage=evaluation.stage,
                velocity=item.lead.events_last_24h, event_ids=tuple(item.pending[:500]), path=path, model=model.key,
                primary=False,
            )
        )  # fmt: skip
    return changes


def quoted_columns(model: type[Model], names: Sequence[str]) -> list[str]:
    """The quoted columns of the model's concrete fields `names` (by name or attname), for hand-written SQL."""
    return list(_quoted_columns(model, tuple(names), connection.vendor))


@cache
def _quoted_columns(model: type[Model], names: tuple[str, ...], vendor: str) -> tuple[str, ...]:
    fields = {key: f for f in model._meta.concrete_fields for key in (f.name, f.attname)}
    return tuple(connection.ops.quote_name(str(fields[name].column)) for name in names)


HISTORY_COLUMNS = ("project", "lead", "model", "version", "event", "reason", "old_score", "new_score", "delta",
                   "details", "occurred_at", "created_at")  # fmt: skip


def _history_rows(scored: Sequence[Scored], *, created: datetime, encode: Callable[[Any], Any]) -> Iterator[tuple]:
    """The evaluations' history rows as tuples of `HISTORY_COLUMNS`, their details passed through `encode`."""
    for item in scored:
        versions = {model.id: model.version for model in item.models}
        project_id, lead_id, event_pks = item.lead.project_id, item.lead.id, item.event_pks
        for model_id, evaluation in item.evaluations.items():
            version = versions[model_id]
            for step in evaluation.history:
                event = event_pks[step.event_id] if step.event_id is not None else None
                yield (project_id, lead_id, model_id, version, event, step.reason, step.old_score, step.new_score,
                       step.new_score - step.old_score, encode(step.details), step.occurred_at, created)  # fmt: skip


def _history_insert(scored: Sequence[Scored]) -> None:
    """The evaluations' history rows in one statement: `COPY … FROM STDIN` on PostgreSQL.

    A re-score rewrites every row of the log; Django's bulk_create spends more time preparing
    each value than the whole fold takes, COPY streams plain tuples (the values' types are
    known here: ints, text, a JSON document, timestamps), made as they are written.
    """
    created = timezone.now()
    if not any(evaluation.history for item in scored for evaluation in item.evaluations.values()):
        return
    if connection.vendor != "postgresql":
        by_name = {f.name: f.attname for f in ScoreHistory._meta.concrete_fields}
        fields = [by_name[name] for name in HISTORY_COLUMNS]
        rows = _history_rows(scored, created=created, encode=lambda details: details)
        ScoreHistory.objects.bulk_create([ScoreHistory(**dict(zip(fields, row, strict=True))) for row in rows],
                                         batch_size=2000)  # fmt: skip
        return
    table = connection.ops.quote_name(ScoreHistory._meta.db_table)
    columns = ", ".join(quoted_columns(ScoreHistory, HISTORY_COLUMNS))
    dumps = orjson.dumps  # a small document per row: several times faster than the json module's encoder
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in _history_rows(scored, created=created, encode=lambda details: dumps(details).decode()):
            copy.write_row(row)


def _events_consume(scored: Sequence[Scored], *, now: datetime) -> None:
    """Mark the events the evaluations consumed processed (and counted in the rollups), in one statement."""
    pending = [pk for item in scored for pk in item.pending]
    if pending:
        events_mark_processed(event_pks=pending, project_ids={i.lead.project_id for i in scored}, processed_at=now)
        waited = _seconds_waited(pending, now)  # read now, in the fold's transaction; observed once it commits
        metrics.events_scored_on_commit(waited=waited)


def _seconds_waited(event_pks: list[int], now: datetime) -> list[float]:
    """How long each event waited between its arrival and `now`, in seconds (one query; PostgreSQL computes
    them, so thousands of timestamps are not parsed here)."""
    if connection.vendor != "postgresql":
        received = Event.objects.filter(id__in=event_pks).values_list("received_at", flat=True)
        return [(now - at).total_seconds() for at in received]
    table = connection.ops.quote_name(Event._meta.db_table)
    pk, received_at = quoted_columns(Event, ["id", "received_at"])
    with connection.cursor() as cursor:
        # identifiers come from the model's metadata; the values are parameters
        cursor.execute(
            f"SELECT extract(epoch FROM %s - {received_at})::float8 FROM {table} WHERE {pk} = ANY(%s::bigint[])",  # noqa: S608
            [now, int_array(event_pks)],
        )
        return [row[0] for row in cursor.fetchall()]


def _leads_update(leads: list[Lead]) -> None:
    """Write the leads' score columns in one statement: `UPDATE … FROM jsonb_to_recordset(<one document>)`.

    Django's bulk_update builds a CASE per column and row, which costs more Python time
    than the whole fold of a batch; arrays of values (`unnest`) still cost the driver a
    conversion and an escape per value. One JSON document of the rows is encoded by orjson
    and sent as one string; elsewhere (SQLite) bulk_update is good enough.
    """
    if connection.vendor != "postgresql":
        Lead.objects.bulk_update(leads, LEAD_SCORE_FIELDS)
        return
    by_name = {f.name: f for f in Lead._meta.concrete_fields}
    fields = [by_name[name] for name in ["id", *LEAD_SCORE_FIELDS]]
    names = [str(f.column) for f in fields]
    quoted = [connection.ops.quote_name(name) for name in names]
    record = ", ".join(f"{column} {f.cast_db_type(connection)}" for column, f in zip(quoted, fields, strict=True))
    assignments = ", ".join(f"{column} = v.{column}" for column in quoted[1:])
    table = connection.ops.quote_name(Lead._meta.db_table)
    attnames = [f.attname for f in fields]
    rows = [dict(zip(names, [getattr(lead, attname) for attname in attnames], strict=True)) for lead in leads]
    # The ids again as an array, which PostgreSQL can count: it guesses 100 rows for any jsonb_to_recordset and,
    # on a leads table it thought small (a new one, or one without statistics yet), hash-joined a whole scan of it.
    # Identifiers and types come from the model's metadata; the values are two parameters.
    sql = (
        f"UPDATE {table} AS l SET {assignments} FROM jsonb_to_recordset(%s::jsonb) AS v ({record}) "  # noqa: S608
        "WHERE l.id = ANY(%s::bigint[]) AND l.id = v.id"
    )
    with connection.cursor() as cursor:
        # datetimes as ISO 8601 with their offset
        cursor.execute(sql, [orjson.dumps(rows).decode(), int_array(lead.id for lead in leads)])


def _lead_scores_save(scored: Sequence[Scored], *, now: datetime) -> None:
    """Upsert the non-primary models' results (`LeadScore`) in one statement.

    PostgreSQL: `INSERT … SELECT FROM jsonb_to_recordset(<one document>) ON CONFLICT DO UPDATE`, like
    `_leads_update`: the rows (fold states included) are one string from orjson.
    Arrays of values cost the driver an escape per value (the fold states were most of a five-model
    batch's Python time outside the folds); Django's bulk upsert prepares each value of each row.
    Elsewhere (SQLite) Django's.
    """
    rows = [
        (item.lead.project_id, item.lead.id, model_id, evaluation.score, evaluation.engagement, evaluation.fit,
         evaluation.grade, evaluation.stage,
         {**evaluation.state.to_json(), "fit": [list(applied) for applied in evaluation.fit_applied]})
        for item in scored
        for model_id, evaluation in item.evaluations.items()
        if model_id != item.models[0].id and evaluation.writes
    ]  # fmt: skip
    if not rows:
        return
    updated = ["score", "engagement", "fit", "grade", "stage", "fold_state", "updated_at"]
    names = ["project_id", "lead_id", "model_id", "score", "engagement", "fit", "grade", "stage", "fold_state"]
    if connection.vendor != "postgresql":
        objects = [LeadScore(**dict(zip(names, row, strict=True)), updated_at=now) for row in rows]
        LeadScore.objects.bulk_create(objects, update_conflicts=True, unique_fields=["lead", "model"],
                                      update_fields=updated, batch_size=1000)  # fmt: skip
        return
    by_name = {f.attname: f for f in LeadScore._meta.concrete_fields}
    fields = [by_name[name] for name in names]
    columns = [connection.ops.quote_name(str(f.column)) for f in fields]
    record = ", ".join(f"{column} {f.cast_db_type(connection)}" for column, f in zip(columns, fields, strict=True))
    lead, model = quoted_columns(LeadScore, ["lead", "model"])
    assignments = ", ".join(f"{column} = EXCLUDED.{column}" for column in quoted_columns(LeadScore, updated))
    table = connection.ops.quote_name(LeadScore._meta.db_table)
    updated_at = quoted_columns(LeadScore, ["updated_at"])[0]
    keys = [str(f.column) for f in fields]
    document = orjson.dumps([dict(zip(keys, row, strict=True)) for row in rows]).decode()
    # identifiers and types come from the model's metadata; the values are two parameters
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}, {updated_at}) "  # noqa: S608
        f"SELECT {', '.join(f'v.{column}' for column in columns)}, %s FROM jsonb_to_recordset(%s::jsonb) "
        f"AS v ({record}) ON CONFLICT ({lead}, {model}) DO UPDATE SET {assignments}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, document])


def _leads_updated(*, broadcasts: dict[int, list[dict[str, Any]]], changes: list[LeadChange]) -> None:
    """After commit: one `leads.updated` broadcast per project, one lead-changes message for automations."""
    for project_id, leads in broadcasts.items():
        transaction.on_commit(partial(project_broadcast, project_id=project_id, type="leads.updated",
                                      payload={"leads": leads}))  # fmt: skip
    lead_changes(changes=changes)


def _squeeze(path: list[int], limit: int = 500) -> list[int]:
    """The path's turning points: repeats dropped, each run in one direction kept as its two ends (at most
    `limit` points, ends kept).

    Every threshold a run crosses lies between its ends, so triggers see every crossing and every
    stage passed on the way (stages rise with the score), from far fewer points.
    """
    points: list[int] = []
    for score in path:
        if points and score == points[-1]:
            continue
        if len(points) >= 2 and (points[-2] < points[-1]) == (points[-1] < score):
            points[-1] = score  # the run goes on in the same direction
        else:
            points.append(score)
    if len(points) > limit:
        points = [*points[: limit - 1], points[-1]]
    return points


def lead_lock(*, lead_id: int, skip_locked: bool = False) -> Lead | None:
    """Lock the lead row for scoring (inside a transaction).

    `FOR NO KEY UPDATE` serialises scoring of one lead across every worker and host
    without conflicting with the `FOR KEY SHARE` lock that PostgreSQL's foreign-key
    check takes when ingest inserts an event for the lead: ingest never waits for
    scoring, and the two cannot deadlock. Only the lead row is locked, not its project.
    """
    leads = Lead.objects.select_for_update(no_key=True, of=("self",), skip_locked=skip_locked)
    return leads.select_related("project").filter(id=lead_id).first()
