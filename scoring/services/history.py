"""A lead's score history as its readers see it: the stored rows, and the `rule` rows that a non-primary model's
segments stand for, made again from the log.

A non-primary model's fold stores one `engine.SEGMENT` row per run of events it folded (its state before the run,
the fit, the chain's start, the run's first and last events) instead of a `rule` row per event: those rows are
a pure function of the log and the version that folded them, and cost that model more to write than its fold.
Every reader goes through here, so the rows it answers with are the ones the fold would have stored, in the same
order; a made row's id is negative (`made_row_id`), which no stored row's is.
"""

import heapq
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import datetime
from itertools import islice
from typing import Any, overload

from django.db.models import Count, F, IntegerField, Q, QuerySet, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from ingest.models import Lead

from .. import engine
from ..models import RuleSetVersion, ScoreHistory, ScoringModel, ScoringRule
from .fold import engine_models, log_pages

SEGMENT_ROW_IDS = 1 << 20  # positions per segment in a made row's id (a segment holds at most a chunk of events)


def made_row_id(segment_id: int, position: int) -> int:
    """The id of the `position`th row a segment stands for: negative, ordered like the ids the rows would have had."""
    return -(segment_id * SEGMENT_ROW_IDS + position)


def history_key(row: ScoreHistory) -> tuple[datetime, int, int]:
    """The order rows are stored and read in, `(occurred_at, id)`, with made rows where their segment is."""
    if row.id < 0:
        segment, position = divmod(-row.id, SEGMENT_ROW_IDS)
        return (row.occurred_at, segment, position)
    return (row.occurred_at, row.id, -1)


class _Specs:
    """The engine models segments were folded under, by (model, version), compiled once per read."""

    def __init__(self) -> None:
        self.compiled: dict[tuple[int, int | None], engine.Model] = {}

    def get(self, model: ScoringModel, version: int | None) -> engine.Model:
        key = (model.id, version)
        if key not in self.compiled:
            document = None
            if version is not None and version != model.version:
                document = RuleSetVersion.objects.filter(model=model, number=version).first()
            if document is not None:
                from ..selectors import document_model  # the selectors read through this module

                self.compiled[key] = document_model(model=model, document=document.document, version=version or 0)
            else:  # the live version (or one no document was kept of)
                rules = ScoringRule.objects.filter(model=model, is_active=True).order_by("id")
                (self.compiled[key],) = engine_models([model], rules)
        return self.compiled[key]


def _segment_rows(
    *,
    lead_id: int,
    model: ScoringModel,
    segments: Sequence[ScoreHistory],
    events: Collection[int] | None,
    specs: _Specs,
) -> Iterator[ScoreHistory]:
    """The rows `segments` (one model's, by id) stand for, in order: their events read again a page at a time
    and folded from the stored state; only the rows of `events` (pks) when given."""
    log: Iterator[tuple[int, engine.EventFact]] = iter(())
    ahead: tuple[int, engine.EventFact] | None = None
    for segment in segments:
        details: dict[str, Any] = segment.details
        start = (datetime.fromisoformat(details["from"][0]), str(details["from"][1]))
        end = (datetime.fromisoformat(details["to"][0]), str(details["to"][1]))
        if ahead is None or ahead[1].key > start:  # the first segment (or one behind): read the log from its start
            log, ahead = log_pages(lead_id=lead_id, start=start), None
        run: list[tuple[int, engine.EventFact]] = []
        while True:
            item = ahead if ahead is not None else next(log, None)
            ahead = None
            if item is None:
                break
            if item[1].key > end:
                ahead = item  # the next segment's
                break
            if item[1].key >= start:
                run.append(item)
        if ahead is None:
            ahead = next(log, None)
        steps = engine.segment_history(
            [fact for _, fact in run], details=details, chain=segment.old_score,
            model=specs.get(model, segment.version),
        )  # fmt: skip
        for position, ((pk, fact), step) in enumerate(zip(run, steps, strict=True)):
            if events is not None and pk not in events:
                continue
            row = ScoreHistory(
                id=made_row_id(segment.id, position), project_id=segment.project_id, lead_id=lead_id,
                model_id=model.id, version=segment.version, event_id=pk, reason=step.reason,
                old_score=step.old_score, new_score=step.new_score, delta=step.delta, details=step.details,
                occurred_at=step.occurred_at, created_at=segment.created_at,
            )  # fmt: skip
            row.event_uid = fact.event_id  # type: ignore[attr-defined]
            row.model_key = model.key  # type: ignore[attr-defined]
            yield row


def made_rows(
    *,
    lead_id: int,
    segments: Iterable[ScoreHistory],
    events: Collection[int] | None = None,
    model: ScoringModel | None = None,
) -> Iterator[ScoreHistory]:
    """The rows the segments (of any of the lead's models; `model`'s, when the caller has it) stand for, in
    `history_key` order."""
    by_model: dict[int, list[ScoreHistory]] = defaultdict(list)
    for segment in segments:
        by_model[segment.model_id].append(segment)
    if not by_model:
        return iter(())
    if model is not None and set(by_model) == {model.id}:
        models = {model.id: model}
    else:
        models = ScoringModel.objects.in_bulk(list(by_model))
    specs = _Specs()
    streams = [
        _segment_rows(lead_id=lead_id, model=models[model_id], segments=sorted(rows, key=lambda r: r.id),
                      events=events, specs=specs)
        for model_id, rows in by_model.items()
        if model_id in models
    ]  # fmt: skip
    return heapq.merge(*streams, key=history_key)


def _made_rows_newest_first(
    *, lead_id: int, segments: Iterable[ScoreHistory], model: ScoringModel | None
) -> Iterator[ScoreHistory]:
    """The rows the segments stand for, newest first: each model's segments from its newest, each made from its
    own part of the log, so memory holds one segment's rows and the newest rows cost the newest segments only."""
    by_model: dict[int, list[ScoreHistory]] = defaultdict(list)
    for segment in segments:
        by_model[segment.model_id].append(segment)
    models = {model.id: model} if model is not None and set(by_model) == {model.id} else None
    if models is None:
        models = ScoringModel.objects.in_bulk(list(by_model))
    specs = _Specs()

    def stream(model: ScoringModel, segments: list[ScoreHistory]) -> Iterator[ScoreHistory]:
        for segment in sorted(segments, key=lambda r: r.id, reverse=True):
            made = list(_segment_rows(lead_id=lead_id, model=model, segments=[segment], events=None, specs=specs))
            yield from reversed(made)

    streams = [stream(models[model_id], rows) for model_id, rows in by_model.items() if model_id in models]
    return heapq.merge(*streams, key=history_key, reverse=True)


def split(rows: Iterable[ScoreHistory]) -> tuple[list[ScoreHistory], list[ScoreHistory]]:
    """Stored rows and segments apart."""
    stored: list[ScoreHistory] = []
    segments: list[ScoreHistory] = []
    for row in rows:
        (segments if row.reason == engine.SEGMENT else stored).append(row)
    return stored, segments


def rows_of_events(
    *, lead: Lead, rows: QuerySet[ScoreHistory], event_ids: Collection[int], model: ScoringModel | None = None
) -> list[ScoreHistory]:
    """The history rows of these events (pks) among `rows` (the lead's, of some model or all), made or stored:
    one query when no segment is among them."""
    fetched = rows.filter(Q(event_id__in=list(event_ids)) | Q(reason=engine.SEGMENT)).order_by("id")
    stored, segments = split(fetched)
    if segments:
        stored += made_rows(lead_id=lead.id, segments=segments, events=set(event_ids), model=model)
    return stored


def newest_rows(
    *, lead: Lead, rows: QuerySet[ScoreHistory], limit: int, model: ScoringModel | None = None
) -> list[ScoreHistory]:
    """The newest `limit` of `rows` (the lead's), made or stored, oldest first."""
    top = rows.exclude(reason=engine.SEGMENT).order_by("-occurred_at", "-id").values("id")[:limit]
    newest, segments = split(rows.filter(Q(id__in=top) | Q(reason=engine.SEGMENT)).order_by("occurred_at", "id"))
    if not segments:
        return newest
    made = _made_rows_newest_first(lead_id=lead.id, segments=segments, model=model)
    page = list(islice(heapq.merge(reversed(newest), made, key=history_key, reverse=True), limit))
    page.reverse()
    return page


def all_rows(
    *, lead: Lead, rows: QuerySet[ScoreHistory], model: ScoringModel | None = None, newest_first: bool = False
) -> Iterator[ScoreHistory]:
    """Every one of `rows` (the lead's), made or stored, oldest first (or newest first), streamed (each with
    `event_uid` and `model_key`). Newest first, the first n rows cost about n stored rows and the newest
    segments' events, not a fold of the log."""
    segments = list(rows.filter(reason=engine.SEGMENT).order_by("id"))
    stored = (
        rows.exclude(reason=engine.SEGMENT)
        .annotate(event_uid=F("event__event_id"), model_key=F("model__key"))
        .order_by(*(("-occurred_at", "-id") if newest_first else ("occurred_at", "id")))
        .iterator(chunk_size=2000)
    )
    if not segments:
        return stored
    if newest_first:
        made = _made_rows_newest_first(lead_id=lead.id, segments=segments, model=model)
    else:
        made = made_rows(lead_id=lead.id, segments=segments, model=model)
    return heapq.merge(stored, made, key=history_key, reverse=newest_first)


class NewestFirst(Sequence[ScoreHistory]):
    """A lead's history rows newest first, for a paginator: counted in one query without folding, each page
    one query when no segment is among the rows, else read newest first up to the page (stored ones from the
    database, made ones from the newest segments' part of the log), holding a segment's rows and the page."""

    def __init__(self, *, lead: Lead, rows: QuerySet[ScoreHistory], model: ScoringModel | None) -> None:
        self.lead, self.rows, self.model = lead, rows, model
        self._counts: dict[str, int] | None = None

    def counts(self) -> dict[str, int]:
        if self._counts is None:
            segment = Q(reason=engine.SEGMENT)
            made = Cast(KeyTextTransform("count", "details"), IntegerField())
            found = self.rows.aggregate(stored=Count("id", filter=~segment), segments=Count("id", filter=segment),
                                        made=Sum(made, filter=segment))  # fmt: skip
            self._counts = {key: value or 0 for key, value in found.items()}
        return self._counts

    def __len__(self) -> int:
        return self.counts()["stored"] + self.counts()["made"]

    @overload
    def __getitem__(self, index: int) -> ScoreHistory: ...

    @overload
    def __getitem__(self, index: slice) -> list[ScoreHistory]: ...

    def __getitem__(self, index: int | slice) -> ScoreHistory | list[ScoreHistory]:
        if isinstance(index, int):
            return self[index : index + 1][0]
        total = len(self)
        start, stop, _ = index.indices(total)
        if start >= stop:
            return []
        if not self.counts()["segments"]:
            newest = self.rows.annotate(event_uid=F("event__event_id")).order_by("-occurred_at", "-id")
            return list(newest[start:stop])
        rows = all_rows(lead=self.lead, rows=self.rows, model=self.model, newest_first=True)
        return list(islice(rows, start, stop))


def history_newest_first(*, lead: Lead, rows: QuerySet[ScoreHistory], model: ScoringModel | None = None) -> NewestFirst:
    """`rows` (the lead's) newest first, each with `event_uid`."""
    return NewestFirst(lead=lead, rows=rows, model=model)
