"""Reads of leads and their scores, always scoped to a project."""

import csv
import heapq
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Avg, Count, F, FilteredRelation, Q, QuerySet, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Project
from core.errors import ApplicationError, NotFound
from core.leadfacets import lead_facets
from core.sql import int_array
from ingest.models import Event, Lead
from ingest.selectors import event_numbers, lead_numbers

from . import engine
from .models import LeadScore, RescoreJob, RuleSetDraft, RuleSetVersion, ScoreHistory, ScoringModel, ScoringRule
from .services import history as histories
from .services.fold import (
    engine_models,
    facts,
    lead_profile,
    log_pages,
    matrix_cell_sql,
    model_policy,
    project_rules,
    rule_from_row,
)
from .services.versions import RULE_DEFAULTS

LEAD_ORDERING_FIELDS = {
    "currentScore": "current_score",
    "lastEventAt": "last_event_at",
    "firstSeenAt": "first_seen_at",
    "createdAt": "created_at",
    "eventsLast24h": "events_last_24h",
    "velocityScore": "velocity_score",
    "email": "email",
    "name": "name",
}
# `matrix`: the fit x engagement cell, A1 first (best fit, most engaged), ties by score (highest first);
# `-matrix` is its exact reverse.
MATRIX_ORDERING = "matrix"
LEAD_ORDERINGS = (*LEAD_ORDERING_FIELDS, MATRIX_ORDERING)


def lead_orderings() -> list[str]:
    """Every sort key of leads: their own, then the lead facets' (registered as the apps are ready)."""
    return [*LEAD_ORDERINGS, *lead_facets.orderings()]


# what `?matrix=` accepts (the OpenAPI document's pattern): cells, comma-separated; empty is no filter
MATRIX_FILTER_PATTERN = r"^([A-Da-d][1-3](,[A-Da-d][1-3])*)?$"


def matrix_cells_parse(value: str | None) -> list[str]:
    """The cells of a `matrix=A1,B1` filter (empty: no filter); a 400 naming `matrix` for anything else."""
    if not re.fullmatch(MATRIX_FILTER_PATTERN, value or ""):
        raise ApplicationError(
            f"Must be comma-separated matrix cells, each one of {', '.join(engine.MATRIX_CELLS)}.", field="matrix"
        )
    return sorted({cell.upper() for cell in (value or "").split(",") if cell})


def leads_for_project(
    *,
    project: Project,
    stage: str | None = None,
    anonymous_id: str | None = None,
    search: str | None = None,
    ordering: str | None = None,
    model: ScoringModel | None = None,
    matrix: str | None = None,
    facets: Mapping[str, str | None] | None = None,
) -> QuerySet[Lead]:
    """The project's live (not merged-away) leads, filtered and ordered (score, stage and matrix cell: by
    `model`'s, the primary model's by default); `facets`: the lead facets' filters (`core.leadfacets`), by key."""
    leads = Lead.objects.filter(project=project, merged_into__isnull=True)
    # the primary model's results are the lead's columns (its matrix cell too); another model's come from its
    # LeadScore row, the cell by its thresholds
    score, stage_column, cell_column = "current_score", "lead_stage", "matrix_cell"
    if model is not None and not model.is_primary:
        own = FilteredRelation("model_scores", condition=Q(model_scores__model=model))
        leads = leads.annotate(
            own=own,
            model_score=Coalesce("own__score", Value(0)),
            model_stage=Coalesce("own__stage", Value("cold")),
            model_grade=Coalesce("own__grade", Value("C")),
            model_engagement=Coalesce("own__engagement", Value(0)),
        ).annotate(model_cell=matrix_cell_sql(grade="model_grade", engagement="model_engagement",
                                              policy=model_policy(model)))  # fmt: skip
        score, stage_column, cell_column = "model_score", "model_stage", "model_cell"
    if stage:
        if stage not in Lead.Stage.values:
            raise ApplicationError(f"Must be one of {', '.join(Lead.Stage.values)}.", field="stage")
        leads = leads.filter(**{stage_column: stage})
    cells = matrix_cells_parse(matrix)
    if cells:
        leads = leads.filter(**{f"{cell_column}__in": cells})
    anonymous_id = (anonymous_id or "").replace("\x00", "")
    if anonymous_id:
        # a device merged into a known lead still finds that lead
        leads = leads.filter(Q(anonymous_id=anonymous_id) | Q(merged_leads__anonymous_id=anonymous_id)).distinct()
    search = (search or "").replace("\x00", "").strip()
    if search:
        condition = Q(email__icontains=search) | Q(name__icontains=search) | Q(company__icontains=search)
        condition |= Q(anonymous_id__icontains=search) | Q(user_id__icontains=search)
        if search.isascii() and search.isdecimal() and len(search) < 19:
            condition |= Q(id=int(search))
        leads = leads.filter(condition)
    for key, value in (facets or {}).items():
        facet = lead_facets.get(key)
        if facet is not None and facet.filter is not None and value:
            leads = leads.filter(id__in=facet.filter(project.id, value))
    ordering = ordering or "-currentScore"
    descending = ordering.startswith("-")
    facet = lead_facets.get(ordering.lstrip("-"))
    if facet is not None and facet.ordering is not None:
        sort = facet.ordering()  # leads without a value last, either way
        if descending:
            return leads.order_by(sort.desc(nulls_last=True), "-id")
        return leads.order_by(sort.asc(nulls_last=True), "id")
    if ordering.lstrip("-") == MATRIX_ORDERING:  # A1 first, ties by score; `-matrix` the exact reverse
        if descending:
            return leads.order_by(f"-{cell_column}", score, "id")
        return leads.order_by(cell_column, f"-{score}", "-id")
    column = LEAD_ORDERING_FIELDS.get(ordering.lstrip("-"))
    column = score if column == "current_score" else column
    if column is None:
        raise ApplicationError(
            f"Must be one of {', '.join(lead_orderings())} (prefix - for descending).", field="ordering"
        )
    return leads.order_by(f"-{column}" if descending else column, "-id" if descending else "id")


@dataclass(frozen=True)
class ModelScores:
    """Every model's result for a page of leads: the primary's from the lead, the others' from LeadScore."""

    primary_key: str = ""
    others: tuple[str, ...] = ()
    rows: dict[int, dict[str, dict[str, Any]]] = dataclass_field(default_factory=dict)
    # the other models' engagement thresholds, by key: where their matrix tiers start
    policies: dict[str, engine.Policy] = dataclass_field(default_factory=dict)

    def for_lead(self, lead: Lead) -> dict[str, dict[str, Any]]:
        primary = {"score": lead.current_score, "stage": lead.lead_stage, "engagement": lead.engagement_score,
                   "fit": lead.fit_score, "grade": lead.fit_grade}  # fmt: skip
        unfolded = {"score": 0, "stage": "cold", "engagement": 0, "fit": 0, "grade": "C"}
        others = {**dict.fromkeys(self.others, unfolded), **self.rows.get(lead.id, {})}
        default = engine.Policy()
        return {
            self.primary_key: {**primary, "cell": lead.matrix_cell},  # stored with the primary's other columns
            **{key: {**result, "cell": engine.matrix_cell(result["grade"], result["engagement"],
                                                          self.policies.get(key, default))}
               for key, result in others.items()},
        }  # fmt: skip


def leads_model_scores(*, project: Project, lead_ids: Iterable[int]) -> ModelScores:
    """The leads' results under each of the project's models, with their matrix cells (two queries)."""
    models = list(
        scoring_models_for_project(project=project).values_list(
            "id", "key", "is_primary", "warm_threshold", "hot_threshold"
        )
    )
    primary = next((key for _, key, is_primary, *_ in models if is_primary), "")
    others = {model_id: key for model_id, key, is_primary, *_ in models if not is_primary}
    policies = {key: engine.Policy(warm_threshold=warm, hot_threshold=hot) for _, key, _, warm, hot in models
                if key in others.values()}  # fmt: skip
    rows: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    if others:
        results = LeadScore.objects.filter(lead_id__in=list(lead_ids), model_id__in=list(others)).values_list(
            "lead_id", "model_id", "score", "stage", "engagement", "fit", "grade"
        )
        for lead_id, model_id, score, stage, engagement, fit, grade in results:
            rows[lead_id][others[model_id]] = {"score": score, "stage": stage, "engagement": engagement, "fit": fit,
                                               "grade": grade}  # fmt: skip
    return ModelScores(primary, tuple(others.values()), dict(rows), policies)


def lead_matrix_counts(*, project: Project, model: ScoringModel | None = None) -> dict[str, int]:
    """How many live leads sit in each fit x engagement cell, A1 … D3 (every cell present): the primary
    model's from the project's lead tallies, another model's in one GROUP BY over the leads."""
    if model is None or model.is_primary:
        return lead_numbers(project=project)["cells"]
    leads = leads_for_project(project=project, model=model).order_by()
    cells = dict(leads.values_list(F("model_cell")).annotate(n=Count("id")))
    return {cell: cells.get(cell, 0) for cell in engine.MATRIX_CELLS}


def lead_get(*, project: Project, lead_id: int | str) -> Lead:
    """The project's lead with this id, following merges to the survivor; 404 otherwise."""
    try:
        lead_pk = int(lead_id)
    except (TypeError, ValueError):
        raise NotFound("Lead not found.") from None
    lead = Lead.objects.filter(project=project, id=lead_pk).first()
    if lead is not None and lead.merged_into_id:
        lead = Lead.objects.filter(project=project, id=lead.merged_into_id).first()
    if lead is None:
        raise NotFound("Lead not found.")
    return lead


def model_history(*, model: ScoringModel | None = None) -> Q:
    """The history rows of `model` (the primary one by default) as a filter."""
    return Q(model=model) if model is not None else Q(model__is_primary=True)


def lead_timeline(
    *, lead: Lead, limit: int = 200, model: ScoringModel | None = None
) -> list[tuple[Event, ScoreHistory | None]]:
    """The lead's newest `limit` events in score order, each with its history row (None until scored)."""
    newest = list(Event.objects.filter(lead=lead).order_by("-timestamp", "-event_id")[:limit])
    newest.reverse()
    rows = ScoreHistory.objects.filter(model_history(model=model), lead=lead)
    made = histories.rows_of_events(lead=lead, rows=rows, event_ids=[e.id for e in newest], model=model)
    history = {row.event_id: row for row in made}
    return [(event, history.get(event.id)) for event in newest]


def adjustment_label(properties: dict[str, Any]) -> str:
    """How a manual adjustment reads to people: `Manual -20 by ana@example.com: disqualified` (U+2212 minus)."""
    if "setTo" in properties:
        change = f"reset to {properties['setTo']}"
    else:
        points = int(properties.get("points") or 0)
        change = f"+{points}" if points > 0 else "\u2212" + str(-points)
    author = (properties.get("author") or {}).get("label") or "someone"
    return f"Manual {change} by {author}: {properties.get('reason', '')}"


def adjustment_summary(event: Event) -> dict[str, Any] | None:
    """What a manual adjustment event asked, who and why (None for any other event)."""
    if event.type != Event.Type.ADJUSTMENT:
        return None
    props = event.properties
    return {
        "model": props.get("model", ""),
        "points": props.get("points"),
        "setTo": props.get("setTo"),
        "reason": props.get("reason", ""),
        "author": props.get("author") or {},
        "label": adjustment_label(props),
    }


def adjustment_data(event: Event, row: ScoreHistory | None) -> dict[str, Any]:
    """One manual adjustment on the wire: what it asked, who and why, and what it did to its model's score."""
    return {
        "eventId": event.event_id,
        "timestamp": event.timestamp,
        **(adjustment_summary(event) or {}),
        "scored": event.processed_at is not None,
        "scoreDelta": row.delta if row else None,
        "newScore": row.new_score if row else None,
    }


def lead_adjustments(*, lead: Lead, limit: int = 200) -> list[dict[str, Any]]:
    """The lead's newest `limit` manual adjustments (newest first), each with its model's history row: 3 queries."""
    events = list(
        Event.objects.filter(lead=lead, type=Event.Type.ADJUSTMENT).order_by("-timestamp", "-event_id")[:limit]
    )
    models = dict(ScoringModel.objects.filter(project_id=lead.project_id).values_list("key", "id"))
    rows = histories.rows_of_events(lead=lead, rows=ScoreHistory.objects.filter(lead=lead),
                                  event_ids=[event.id for event in events])  # fmt: skip
    made: dict[tuple[int | None, int | None], ScoreHistory] = {(row.event_id, row.model_id): row for row in rows}
    return [adjustment_data(event, made.get((event.id, models.get(event.properties.get("model")))))
            for event in events]  # fmt: skip


def _breakdown_adjustments(lead: Lead, model: ScoringModel | None) -> list[dict[str, Any]]:
    """The manual adjustments the model's fold applied to the lead, oldest first."""
    rows = ScoreHistory.objects.filter(model_history(model=model), lead=lead)
    adjusting = Q(event__type=Event.Type.ADJUSTMENT, details__has_key="adjustment")
    stored, segments = histories.split(rows.filter(adjusting | Q(reason=engine.SEGMENT)).select_related("event"))
    if segments:  # the model's rows of its adjustments (only theirs have one in their details), made again
        made = [row for row in histories.made_rows(lead_id=lead.id, segments=segments, model=model)
                if "adjustment" in row.details]  # fmt: skip
        found = Event.objects.in_bulk([row.event_id for row in made])
        for row in made:
            row.event = found[row.event_id]
        stored = list(heapq.merge(sorted(stored, key=histories.history_key), made, key=histories.history_key))
    else:
        stored.sort(key=histories.history_key)
    return [adjustment_data(row.event, row) for row in stored if row.event is not None]


def lead_score_breakdown(*, lead: Lead, model: ScoringModel | None = None) -> dict[str, Any]:
    """Where the lead's score (under `model`, the primary one by default) comes from; the parts add up to
    `currentScore`.

    Σ rule points + adjustmentPoints + clampAdjustment + decayBetweenEvents = foldScore;
    foldScore + decaySinceLastEvent = engagementScore;
    engagementScore + fitScore + finalClampAdjustment = currentScore.
    """
    stored = _model_result(lead, model)
    state = engine.FoldState.from_json(stored["fold_state"])
    rules = {rule.id: rule for rule in ScoringRule.objects.filter(project_id=lead.project_id)}
    if model is None or model.is_primary:
        _, fit_rules = project_rules(lead.project)
    else:
        fit_rules = [rule_from_row(rule) for rule in rules.values() if rule.model_id == model.id and
                     rule.is_active and rule.kind == ScoringRule.Kind.FIT]  # fmt: skip
    fit_live, _ = engine.fit_score(lead_profile(lead), fit_rules)
    fit_applied = [(int(rule_id), int(points)) for rule_id, points in stored["fold_state"].get("fit", [])]

    def describe(rule_id: int) -> dict[str, Any]:
        rule = rules.get(rule_id)
        return {
            "ruleId": rule_id,
            "name": rule.name if rule else "(deleted rule)",
            "eventType": rule.event_type if rule else "",
        }

    return {
        "currentScore": stored["score"],
        "engagementScore": stored["engagement"],
        "fitScore": stored["fit"],
        "fitGrade": stored["grade"],
        "rules": [
            {
                **describe(rule_id),
                "timesApplied": tally.count,
                "points": tally.points,
                "window": _window(rules.get(rule_id)),
            }
            for rule_id, tally in sorted(state.tallies.items(), key=lambda item: -abs(item[1].points))
        ],
        "adjustments": _breakdown_adjustments(lead, model),
        "adjustmentPoints": state.adjusted,
        "clampAdjustment": state.clamped,
        "decayBetweenEvents": state.decayed,
        "foldScore": state.score,
        "decaySinceLastEvent": stored["engagement"] - state.score,
        "fit": [{**describe(rule_id), "points": points} for rule_id, points in fit_applied],
        "finalClampAdjustment": stored["score"] - stored["engagement"] - stored["fit"],
        # fit rules or traits changed since the last fold: the numbers add up, but are about to move
        "stale": fit_live != stored["fit"],
    }


def _window(rule: ScoringRule | None) -> dict[str, int] | None:
    """A rule's window as the API shows it (None without one)."""
    if rule is None or rule.window_count is None or rule.window_days is None:
        return None
    return {"count": rule.window_count, "days": rule.window_days}


def _model_result(lead: Lead, model: ScoringModel | None) -> dict[str, Any]:
    """The lead's stored result under `model` (the primary one: the lead's own columns)."""
    if model is None or model.is_primary:
        return {"score": lead.current_score, "engagement": lead.engagement_score, "fit": lead.fit_score,
                "grade": lead.fit_grade, "fold_state": lead.fold_state or {}}  # fmt: skip
    row = LeadScore.objects.filter(lead=lead, model=model).first()
    if row is None:  # not folded under it yet
        return {"score": 0, "engagement": 0, "fit": 0, "grade": "C", "fold_state": {}}
    return {"score": row.score, "engagement": row.engagement, "fit": row.fit, "grade": row.grade,
            "fold_state": row.fold_state or {}}  # fmt: skip


def lead_intelligence(*, lead: Lead, now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    activity = Event.objects.filter(lead=lead, timestamp__gte=now - timedelta(hours=48))
    counts = activity.exclude(type=Event.Type.ADJUSTMENT).aggregate(
        last=Count("id", filter=Q(timestamp__gte=now - timedelta(hours=24))),
        previous=Count("id", filter=Q(timestamp__lt=now - timedelta(hours=24))),
    )
    result = engine.intelligence(
        events_last_24h=counts["last"],
        events_previous_24h=counts["previous"],
        last_event_at=lead.last_event_at,
        now=now,
        stage=lead.lead_stage,
    )
    return {
        "velocity": result.velocity,
        "velocityScore": result.velocity_score,
        "trend": result.trend,
        "eventsPrevious24h": counts["previous"],
        "risk": result.risk,
        "nextAction": result.next_action,
        "daysSinceLastEvent": result.days_since_last_event,
        "leadStage": lead.lead_stage,
        "currentScore": lead.current_score,
    }


def scoring_models_for_project(*, project: Project) -> QuerySet[ScoringModel]:
    """The project's scoring models, the primary one first."""
    return ScoringModel.objects.filter(project=project).order_by("-is_primary", "id")


def scoring_model_get(*, project: Project, key: str | None = None) -> ScoringModel:
    """The project's model with this key (the `?model=` of the API and pages); the primary one without."""
    if key and "\x00" in key:  # no key has one, and PostgreSQL refuses to compare text with it
        raise NotFound("Scoring model not found.")
    models = ScoringModel.objects.filter(project=project)
    model = models.filter(key=key).first() if key else models.filter(is_primary=True).first()
    if model is None:
        raise NotFound("Scoring model not found.")
    return model


def scoring_model_exists(*, project: Project, key: str) -> bool:
    return ScoringModel.objects.filter(project=project, key=key).exists()


def rules_for_project(
    *, project: Project, kind: str | None = None, model: ScoringModel | None = None
) -> QuerySet[ScoringRule]:
    """The rules of one of the project's models (the primary one by default)."""
    rules = ScoringRule.objects.filter(project=project).select_related("model").order_by("id")
    rules = rules.filter(model=model) if model else rules.filter(model__is_primary=True)
    return rules.filter(kind=kind) if kind else rules


def rule_get(*, project: Project, rule_id: int | str) -> ScoringRule:
    try:
        return ScoringRule.objects.select_related("model").get(project=project, id=int(rule_id))
    except (ValueError, TypeError, ScoringRule.DoesNotExist):
        raise NotFound("Rule not found.") from None


def rescore_job_get(*, project: Project, job_id: int | str) -> RescoreJob:
    try:
        return RescoreJob.objects.get(project=project, id=int(job_id))
    except (ValueError, TypeError, RescoreJob.DoesNotExist):
        raise NotFound("Re-score job not found.") from None


def rules_preview(
    *,
    project: Project,
    engagement_rules: Sequence[engine.Rule],
    fit_rules: Sequence[engine.Rule],
    policy: engine.Policy,
    model: ScoringModel | None = None,
    distribution: bool = False,
) -> dict[str, Any]:
    """What a proposed rule set would do to every lead (compared with `model`'s scores, the primary's by
    default), saving nothing; with `distribution`, the leads per stage and per score band before and after.

    One pass over the project's events in lead order (streamed), one fold per lead.
    """
    now = timezone.now()
    leads = {
        row[0]: row
        for row in Lead.objects.filter(project=project, merged_into__isnull=True).values_list(
            "id", "anonymous_id", "email", "name", "company", "user_id", "traits", "current_score", "lead_stage"
        )
    }
    if model is not None and not model.is_primary:
        scores = dict.fromkeys(leads, (0, "cold"))  # a lead the model has not folded yet
        scores |= {
            row[0]: row[1:] for row in LeadScore.objects.filter(model=model).values_list("lead_id", "score", "stage")
        }
        leads = {lead_id: (*row[:-2], *scores[lead_id]) for lead_id, row in leads.items()}
    before: Counter[str] = Counter()
    after: Counter[str] = Counter()
    bands = _score_bands(policy)
    rows = (
        Event.objects.filter(project=project)
        .order_by("lead_id", "timestamp", "event_id")
        .values_list("lead_id", "event_id", "name", "timestamp", "properties", "context", "type")
    )
    movers: list[dict[str, Any]] = []
    transitions: Counter[str] = Counter()
    changed = 0

    def evaluate(lead_id: int, facts: list[engine.EventFact]) -> None:
        nonlocal changed
        row = leads.get(lead_id)
        if row is None:
            return
        _, anonymous_id, email, name, company, user_id, traits, current, stage = row
        evaluation = engine.lead_evaluate(
            lead=engine.Materialised(score=current, stage=stage),
            events=facts,
            profile={"email": email, "name": name, "company": company, "userId": user_id, "traits": traits},
            rules=engagement_rules,
            fit_rules=fit_rules,
            policy=policy,
            now=now,
            refold=True,
            model=model.key if model is not None else "",
        )
        score, new_stage = evaluation.score, evaluation.stage
        if distribution:
            before[stage] += 1
            before[_band(current, bands)] += 1
            after[new_stage] += 1
            after[_band(score, bands)] += 1
        if score != current:
            changed += 1
            movers.append(
                {"leadId": lead_id, "anonymousId": anonymous_id, "email": email, "from": current, "to": score,
                 "delta": score - current, "fromStage": stage, "toStage": new_stage}
            )  # fmt: skip
        if new_stage != stage:
            transitions[f"{stage}->{new_stage}"] += 1
        seen.add(lead_id)

    seen: set[int] = set()
    current_lead: int | None = None
    batch: list[engine.EventFact] = []
    for lead_id, event_id, name, ts, props, ctx, kind in rows.iterator(chunk_size=5000):
        if lead_id != current_lead:
            if current_lead is not None:
                evaluate(current_lead, batch)
            current_lead, batch = lead_id, []
        batch.append(engine.EventFact(event_id, name, ts, props, ctx, kind))
    if current_lead is not None:
        evaluate(current_lead, batch)
    for lead_id in leads.keys() - seen:
        evaluate(lead_id, [])  # leads without events can still move on fit
    movers.sort(key=lambda mover: (-abs(mover["delta"]), mover["leadId"]))
    result = {
        "leadsEvaluated": len(leads),
        "scoreChanged": changed,
        "stageChanged": sum(transitions.values()),
        "stageTransitions": dict(sorted(transitions.items())),
        "topMovers": movers[:20],
    }
    if distribution:
        result["distribution"] = {
            "stages": [{"stage": s, "before": before[s], "after": after[s]} for s in engine.STAGES],
            "bands": [
                {"band": b, "before": before[b], "after": after[b]} for b in (_band_name(*pair) for pair in bands)
            ],
        }
    return result


def _score_bands(policy: engine.Policy) -> list[tuple[int, int | None]]:
    """Score bands for a distribution: below warm, the three stages split in halves, then above twice qualified."""
    edges = [0, policy.warm_threshold, policy.hot_threshold, policy.qualified_threshold, 2 * policy.qualified_threshold]
    cuts = sorted({*edges, *((a + b) // 2 for a, b in pairwise(edges))})
    return [*pairwise(cuts), (cuts[-1], None)]


def _band_name(low: int, high: int | None) -> str:
    return f"{low}-{high - 1}" if high is not None else f"{low}+"


def _band(score: int, bands: list[tuple[int, int | None]]) -> str:
    for low, high in bands:
        if high is None or score < high:
            return _band_name(low, high)
    return _band_name(*bands[-1])


def project_dashboard(
    *, project: Project, now: datetime | None = None, days: int = 30, model: ScoringModel | None = None
) -> dict[str, Any]:
    """The overview's numbers from the lead tallies and the event rollups, and the top leads: never a scan.

    Under a non-primary `model` the lead numbers are one aggregate over the leads (only the primary
    model's are tallied).
    """
    leads = lead_numbers(project=project)
    if model is not None and not model.is_primary:
        scored = leads_for_project(project=project, model=model).order_by()
        leads = {"total": leads["total"], "stages": lead_stage_counts(project=project, model=model),
                 "average": scored.aggregate(average=Avg("model_score"))["average"]}  # fmt: skip
    events = event_numbers(project=project, now=now or timezone.now(), days=days)
    return {
        "totalLeads": leads["total"],
        "qualifiedLeads": leads["stages"][Lead.Stage.QUALIFIED],
        "averageScore": round(leads["average"] or 0, 1),  # 0, not 0.0, as ever
        "eventsToday": events["eventsToday"],
        "lastEventAt": events["lastEventAt"],
        "stageDistribution": leads["stages"],
        "eventsByType": events["eventsByType"],
        "eventsPerDay": events["eventsPerDay"],
        # ten entries of the (project, score, id) index
        "topLeads": list(leads_for_project(project=project, ordering="-currentScore", model=model)[:10]),
    }


# Reads of the dashboard pages (leads, a lead, rules).

# OWASP CSV injection: a cell starting with one of these is a formula to a spreadsheet. A cell is also
# split at any separator a spreadsheet may be set to (Excel uses ";" in many locales and ignores our quoting
# when told to split on tabs), so what follows each separator is a cell start too.
CSV_FORMULA_TRIGGERS = "=+-@\t\r"
CSV_SEPARATORS = ",;\t\r\n"
_CSV_FORMULA_START = re.compile(  # a cell start, then whitespace or quotes, then a trigger
    rf"(?:^|(?<=[{re.escape(CSV_SEPARATORS)}]))" + r'(?=[\s"]*[' + re.escape(CSV_FORMULA_TRIGGERS) + "])"
)
LEAD_EXPORT_COLUMNS = (
    ("id", "id"),
    ("anonymousId", "anonymous_id"),
    ("userId", "user_id"),
    ("email", "email"),
    ("name", "name"),
    ("company", "company"),
    ("currentScore", "current_score"),
    ("engagementScore", "engagement_score"),
    ("fitScore", "fit_score"),
    ("fitGrade", "fit_grade"),
    ("leadStage", "lead_stage"),
    ("velocityScore", "velocity_score"),
    ("eventsLast24h", "events_last_24h"),
    ("firstSeenAt", "first_seen_at"),
    ("lastEventAt", "last_event_at"),
)


def csv_safe(value: Any) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula (OWASP CSV injection).

    Every place a cell may start (the start, and after any separator) that leads, past whitespace, to a
    formula trigger gets a `'`: `x;=1+1` becomes `x;'=1+1`, which stays text however it is split.
    """
    text = "" if value is None else value.isoformat() if isinstance(value, datetime) else str(value)
    return _CSV_FORMULA_START.sub("'", text)


def leads_export_rows(*, leads: QuerySet[Lead], chunk: int = 2000) -> Iterator[list[str]]:
    """A header, then one formula-safe row per lead, streamed from the database (the lead facets' columns
    last, read a chunk of leads at a time)."""
    facets = [facet for facet in lead_facets if facet.export is not None]
    yield [header for header, _ in LEAD_EXPORT_COLUMNS] + [facet.label for facet in facets]
    columns = [column for _, column in LEAD_EXPORT_COLUMNS]
    rows = leads.values_list("id", "project_id", *columns).iterator(chunk_size=chunk)
    while batch := list(islice(rows, chunk)):
        values = {}
        if facets:
            values = {
                facet.key: facet.values(batch[0][1], [row[0] for row in batch]) for facet in facets
            }  # one project per export
        for lead_id, _, *row in batch:
            cells = [facet.export(values[facet.key].get(lead_id)) for facet in facets]  # type: ignore[misc]
            yield [csv_safe(value) for value in [*row, *cells]]


def lead_score_history(*, lead: Lead, limit: int = 500, model: ScoringModel | None = None) -> dict[str, Any]:
    """The lead's newest `limit` score changes (oldest first), its merge rows and the leads merged into it."""
    rows = ScoreHistory.objects.filter(model_history(model=model), lead=lead)
    points = histories.newest_rows(lead=lead, rows=rows, limit=limit, model=model)
    merges = list(rows.filter(reason=ScoreHistory.Reason.MERGE).order_by("-occurred_at"))
    merged_leads = list(lead.merged_leads.order_by("-updated_at"))
    return {"points": points, "merges": merges, "mergedLeads": merged_leads}


def rescore_jobs_recent(*, project: Project, limit: int = 5) -> list[RescoreJob]:
    return list(RescoreJob.objects.filter(project=project).order_by("-id")[:limit])


def rules_preview_proposed(
    *, project: Project, rows: list[ScoringRule], settings: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What a proposed rule set (unsaved rule rows) and settings would do to the project, saving nothing."""
    active = [row for row in rows if row.is_active]
    primary = scoring_model_get(project=project)
    current = {f.attname: getattr(primary, f.attname) for f in ScoringModel._meta.concrete_fields}
    return rules_preview(
        project=project,
        engagement_rules=[rule_from_row(row) for row in active if row.kind == ScoringRule.Kind.ENGAGEMENT],
        fit_rules=[rule_from_row(row) for row in active if row.kind == ScoringRule.Kind.FIT],
        policy=model_policy(ScoringModel(**{**current, **(settings or {})})),
        model=primary,
    )


def rules_preview_with(*, project: Project, data: dict[str, Any], rule: ScoringRule | None = None) -> dict[str, Any]:
    """What the project's rules would do with this rule added (or `rule` changed to `data`), saving nothing."""
    rows = list(rules_for_project(project=project))
    proposed = next((row for row in rows if rule is not None and row.id == rule.id), None)
    if proposed is None:
        proposed = ScoringRule(id=-1, project=project)
        rows.append(proposed)
    for field, value in data.items():
        setattr(proposed, field, value)  # an unsaved change to the fetched copy, never saved
    return rules_preview_proposed(project=project, rows=rows)


# Reads of the reporting API (leaderboard, stage counts, score history).


def leaderboard(
    *, project: Project, limit: int, offset: int, model: ScoringModel | None = None
) -> tuple[list[Lead], int]:
    """One page of the project's live leads by score (highest first, by `model`'s), and how many there are
    (from the lead tallies)."""
    leads = leads_for_project(project=project, ordering="-currentScore", model=model)
    return list(leads[offset : offset + limit]), lead_numbers(project=project)["total"]


def lead_stage_counts(*, project: Project, model: ScoringModel | None = None) -> dict[str, int]:
    """How many live leads sit in each stage: the primary model's from the project's lead tallies, another
    model's in one aggregate query."""
    if model is not None and not model.is_primary:
        leads = leads_for_project(project=project, model=model).order_by()
        return leads.aggregate(**{stage: Count("id", filter=Q(model_stage=stage)) for stage in Lead.Stage.values})
    return lead_numbers(project=project)["stages"]


def lead_history_for_project(
    *, project: Project, lead: Lead, model: ScoringModel | None = None
) -> histories.NewestFirst:
    """The lead's score changes, newest first, each with its event's client id as `event_uid`."""
    rows = ScoreHistory.objects.filter(model_history(model=model), project=project, lead=lead)
    return histories.history_newest_first(lead=lead, rows=rows, model=model)


# Reads of the privacy API (a lead's data, the leads CSV).

LEAD_EXPORT_EVENT_LIMIT = 10_000
MERGED_IDENTITY_FIELDS = {
    "id": "id",
    "anonymous_id": "anonymousId",
    "user_id": "userId",
    "email": "email",
    "name": "name",
    "company": "company",
    "traits": "traits",
    "created_at": "createdAt",
    "updated_at": "mergedAt",
}
EXPORT_EVENT_FIELDS = {
    "event_id": "eventId",
    "type": "type",
    "name": "name",
    "timestamp": "timestamp",
    "received_at": "receivedAt",
    "properties": "properties",
    "context": "context",
    "session_id": "sessionId",
    "anonymous_id": "anonymousId",
    "user_id": "userId",
}
EXPORT_EXECUTION_FIELDS = {
    "id": "id",
    "rule_id": "ruleId",
    "rule__name": "ruleName",
    "lead_id": "leadId",
    "trigger": "trigger",
    "status": "status",
    "attempts": "attempts",
    "response_code": "responseCode",
    "error": "error",
    "created_at": "createdAt",
    "finished_at": "finishedAt",
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _renamed(rows: QuerySet[Any], names: dict[str, str], limit: int | None = None) -> list[dict[str, Any]]:
    values = rows.values(*names)
    if limit is not None:
        values = values[:limit]
    return [{names[key]: value for key, value in row.items()} for row in values]


def lead_export(*, lead: Lead, limit: int | None = None) -> dict[str, Any]:
    """Everything stored about the lead (GDPR access): its fields, merged identities, events, history, executions.

    Events and score history stop at `limit` rows each (oldest first); `truncated` says when they did.
    """
    limit = LEAD_EXPORT_EVENT_LIMIT if limit is None else limit
    merged = lead.merged_leads.order_by("id")
    events = _renamed(Event.objects.filter(lead=lead).order_by("timestamp", "event_id"), EXPORT_EVENT_FIELDS, limit + 1)
    rows = islice(histories.all_rows(lead=lead, rows=ScoreHistory.objects.filter(lead=lead)), limit + 1)
    history_rows = [{"id": row.id, "reason": row.reason, "oldScore": row.old_score, "newScore": row.new_score,
                     "delta": row.delta, "details": row.details, "occurredAt": row.occurred_at,
                     "eventId": row.event_uid, "model": row.model_key} for row in rows]  # type: ignore[attr-defined]  # fmt: skip
    # executions are reached through the reverse relation: scoring does not import automations
    executions = lead.automation_executions.model.objects.filter(Q(lead=lead) | Q(lead__merged_into=lead)).order_by(
        "created_at", "id"
    )
    return {
        "lead": {_camel(field.attname): getattr(lead, field.attname) for field in Lead._meta.concrete_fields},
        "scores": leads_model_scores(project=lead.project, lead_ids=[lead.id]).for_lead(lead),
        "mergedIdentities": _renamed(merged, MERGED_IDENTITY_FIELDS),
        "events": events[:limit],
        "scoreHistory": history_rows[:limit],
        "automationExecutions": _renamed(executions, EXPORT_EXECUTION_FIELDS),
        "truncated": len(events) > limit or len(history_rows) > limit,
    }


class _Echo:
    def write(self, value: str) -> str:
        return value


def leads_export_csv(*, leads: QuerySet[Lead]) -> Iterator[str]:
    """The leads as formula-safe CSV lines, streamed from the database."""
    writer = csv.writer(_Echo())
    for row in leads_export_rows(leads=leads):
        yield writer.writerow(row)


def event_facts(*, event_ids: list[int]) -> list[engine.EventFact]:
    """The events as automations' event triggers see them, in fold order: a manual adjustment is no event the lead
    sent (as no rule matches one, no `event_received` trigger fires on one)."""
    return [fact for _, fact in facts(Event.objects.filter(id__in=event_ids).exclude(type=Event.Type.ADJUSTMENT))]


# Rule-set versions: the history of a model's rules, their differences, and scores under any of them.


def versions_for_model(*, model: ScoringModel) -> QuerySet[RuleSetVersion]:
    return RuleSetVersion.objects.filter(model=model).select_related("model", "author").order_by("-number")


def version_get(*, model: ScoringModel, number: int | str) -> RuleSetVersion:
    try:
        return versions_for_model(model=model).get(number=int(number))
    except (ValueError, TypeError, RuleSetVersion.DoesNotExist):
        raise NotFound("Version not found.") from None


def draft_get(*, model: ScoringModel) -> RuleSetDraft:
    draft = RuleSetDraft.objects.filter(model=model).select_related("model", "author").first()
    if draft is None:
        raise NotFound("The model has no draft.")
    return draft


def documents_diff(*, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What changed from one version document to another: settings, and rules added, removed or changed (by id)."""
    settings = {
        field: {"from": before["settings"].get(field), "to": value}
        for field, value in after["settings"].items()
        if before["settings"].get(field) != value
    }
    old = {rule["id"]: rule for rule in before["rules"] if rule.get("id")}
    new = {rule["id"]: rule for rule in after["rules"] if rule.get("id")}
    changed = [
        {"id": rule_id, "fields": _rule_changes(old[rule_id], rule)}
        for rule_id, rule in new.items()
        if rule_id in old and _rule_changes(old[rule_id], rule)
    ]
    return {
        "settings": settings,
        "added": [rule for rule in after["rules"] if not rule.get("id") or rule["id"] not in old],
        "removed": [rule for rule_id, rule in old.items() if rule_id not in new],
        "changed": changed,
    }


WINDOW_FIELDS = ("window_count", "window_days")


def _rule_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """field: {from, to} for each field of a document's rule that differs (a field missing from an older version's
    document is its default); a window is one value, so both its fields show when either changed."""
    before, after = {**RULE_DEFAULTS, **old}, {**RULE_DEFAULTS, **new}
    fields = [f for f in {**new, **after} if before.get(f) != after[f]]  # in the new rule's order
    if any(f in fields for f in WINDOW_FIELDS):
        fields = [*(f for f in fields if f not in WINDOW_FIELDS), *WINDOW_FIELDS]
    return {f: {"from": before.get(f), "to": after[f]} for f in fields}


def window_label(count: int | None, days: int | None) -> str:
    """How a rule's window reads on the pages ("" without one)."""
    return engine.Window(count, days).label if count and days else ""


def document_model(*, model: ScoringModel, document: dict[str, Any], version: int = 0) -> engine.Model:
    """A version or draft document as the engine takes it."""
    spec, rules = document_rows(model=model, document=document)
    spec.version = version
    (compiled,) = engine_models([spec], [rule for rule in rules if rule.is_active])
    return compiled


def lead_score_at_version(*, lead: Lead, model: ScoringModel, version: RuleSetVersion) -> dict[str, Any]:
    """The lead's score under an earlier (or the live) version of a model, refolded from its log, saving nothing.

    The log is read a page at a time, as a refold does, so a long one never sits in memory whole.
    """
    spec = document_model(model=model, document=version.document, version=version.number)
    size = settings.LEADPULSE_SCORE_CHUNK_EVENTS
    events = iter(log_pages(lead_id=lead.id))
    chunk = list(islice(events, size))
    current, first, folded = engine.Materialised(), True, 0
    while True:
        following = list(islice(events, size))
        evaluation = engine.lead_evaluate(
            lead=current, events=[fact for _, fact in chunk], profile=lead_profile(lead), rules=spec.rules,
            fit_rules=spec.fit_rules, policy=spec.policy, now=timezone.now(), refold=first, final=not following,
            before=engine.Materialised(), model=model.key,
        )  # fmt: skip
        folded += evaluation.folded
        if not following:
            break
        current = engine.Materialised(
            score=evaluation.score, engagement=evaluation.engagement, fit=evaluation.fit, stage=evaluation.stage,
            state=evaluation.state, fit_applied=evaluation.fit_applied,
        )  # fmt: skip
        first, chunk = False, following
    return {
        "leadId": lead.id,
        "model": model.key,
        "version": version.number,
        "liveVersion": model.version,
        "score": evaluation.score,
        "stage": evaluation.stage,
        "engagement": evaluation.engagement,
        "fit": evaluation.fit,
        "grade": evaluation.grade,
        "cell": engine.matrix_cell(
            evaluation.grade, evaluation.engagement, spec.policy
        ),  # by that version's thresholds
        "eventsFolded": folded,
    }


# Reads of the scoring models page.


def scoring_models_with_rule_counts(*, project: Project) -> QuerySet[ScoringModel]:
    """The project's scoring models (the primary one first), each with its `rule_count`, in one query."""
    return scoring_models_for_project(project=project).annotate(rule_count=Count("rules"))


@dataclass(frozen=True)
class ModelChoice:
    """The model a page shows (its `?model=`) among the project's models, for the model switcher."""

    model: ScoringModel
    models: list[ScoringModel]

    @property
    def query(self) -> str:
        """The query string that keeps this model in a link ("" for the primary one, the default)."""
        return "" if self.model.is_primary else f"?model={self.model.key}"


def scoring_model_choice(*, project: Project, key: str | None = None) -> ModelChoice:
    """The project's model with this key (the primary one without) and all its models, in one query; 404 otherwise."""
    models = list(scoring_models_for_project(project=project))
    model = next((m for m in models if (m.key == key if key else m.is_primary)), None)
    if model is None:
        raise NotFound("Scoring model not found.")
    return ModelChoice(model=model, models=models)


# Reads of the versions page and the draft on the rules page: documents shown, edited and compared.

RULE_FIELD_LABELS = {"name": "name", "kind": "kind", "event_type": "event", "conditions": "conditions",
                     "points": "points", "max_per_day": "max per day", "max_per_lead": "max per lead",
                     "max_points": "max points", "is_active": "active"}  # fmt: skip
SETTINGS_FIELD_LABELS = {"warm_threshold": "Warm at", "hot_threshold": "Hot at", "qualified_threshold": "Qualified at",
                         "max_score": "Max score", "decay_enabled": "Decay enabled",
                         "decay_rate_percent": "Decay % per day", "decay_grace_days": "Grace days"}  # fmt: skip


def document_rule_label(rule: dict[str, Any]) -> str:
    """How a document's rule is named on the pages: its name, else its event type, else its id."""
    return rule.get("name") or rule.get("event_type") or f"rule #{rule.get('id')}"


def documents_diff_lines(*, before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[str]]:
    """`documents_diff` as sentences to read, e.g. "Page view: points 5 → 7"."""
    diff = documents_diff(before=before, after=after)
    names = {rule["id"]: document_rule_label(rule) for rule in after["rules"] if rule.get("id")}
    return {
        "settings": [f"{SETTINGS_FIELD_LABELS.get(field, field)}: {change['from']} → {change['to']}"
                     for field, change in diff["settings"].items()],
        "added": [f"{document_rule_label(rule)} ({rule['event_type'] or rule['kind']}, {rule['points']:+d} points)"
                  for rule in diff["added"]],
        "removed": [f"{document_rule_label(rule)} ({rule['event_type'] or rule['kind']}, {rule['points']:+d} points)"
                    for rule in diff["removed"]],
        "changed": [f"{names[change['id']]}: " + ", ".join(_change_lines(change["fields"]))
                    for change in diff["changed"]],
    }  # fmt: skip


def _change_lines(fields: dict[str, dict[str, Any]]) -> list[str]:
    lines = [f"{RULE_FIELD_LABELS.get(field, field)} {_shown(value['from'])} → {_shown(value['to'])}"
             for field, value in fields.items() if field not in WINDOW_FIELDS]  # fmt: skip
    if "window_count" in fields:
        count, days = fields["window_count"], fields["window_days"]
        before = window_label(count["from"], days["from"]) or "every time"
        lines.append(f"window {before} → {window_label(count['to'], days['to']) or 'every time'}")
    return lines


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | dict):  # conditions: as JSON, never a Python repr
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return str(value)


def versions_diff(*, model: ScoringModel, number: int | str, against: int | str | None = None) -> dict[str, Any]:
    """The readable difference from version `against` (the previous one by default) to version `number`."""
    after = version_get(model=model, number=number)
    if against in (None, ""):
        previous = versions_for_model(model=model).filter(number__lt=after.number).first()
    else:
        previous = version_get(model=model, number=against)
    before_document = previous.document if previous is not None else {"settings": after.document["settings"],
                                                                      "rules": []}  # fmt: skip
    return {"before": previous, "after": after,
            "lines": documents_diff_lines(before=before_document, after=after.document)}  # fmt: skip


def document_rows(*, model: ScoringModel, document: dict[str, Any]) -> tuple[ScoringModel, list[ScoringRule]]:
    """A document as unsaved rows to show and edit: the model with its settings, and its rules in order."""
    spec = ScoringModel(**{**{f.attname: getattr(model, f.attname) for f in ScoringModel._meta.concrete_fields},
                           **document["settings"]})  # fmt: skip
    return spec, [ScoringRule(model=model, project_id=model.project_id, **rule) for rule in document["rules"]]


def draft_preview(*, model: ScoringModel, draft: RuleSetDraft) -> dict[str, Any]:
    """What publishing the draft would do to the model's leads (score, stage, distribution), saving nothing."""
    spec = document_model(model=model, document=draft.document)
    return rules_preview(project=model.project, engagement_rules=spec.rules, fit_rules=spec.fit_rules,
                         policy=spec.policy, model=model, distribution=True)  # fmt: skip


@dataclass(frozen=True)
class MemberResults:
    """Leads' results under every model of their project, for roll-ups (companies)."""

    policies: dict[int, engine.Policy]  # model id -> its thresholds and range
    scores: dict[tuple[int, int], int]  # (lead id, model id) -> score; a lead not yet folded by a model has none
    active_at: dict[int, datetime | None]  # lead id -> its last event
    keys: dict[int, str] = dataclass_field(default_factory=dict)  # model id -> its key
    primary: int | None = None  # the primary model's id


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LEADS_RESULTS_SQL = (
    "SELECT id, current_score, (extract(epoch from last_event_at) * 1000000)::bigint FROM {table}"
    " WHERE project_id = %s AND id = ANY(%s::bigint[]) AND merged_into_id IS NULL"
)


def leads_results(*, project_id: int, lead_ids: Iterable[int]) -> MemberResults:
    """Every model's score of the project's leads: the primary's from the lead, the others' from `LeadScore`.

    Three queries whatever the number of leads and models.
    """
    ids = sorted(set(lead_ids))
    models = list(ScoringModel.objects.filter(project_id=project_id))
    primary = next((model.id for model in models if model.is_primary), None)
    scores: dict[tuple[int, int], int] = {}
    active_at: dict[int, datetime | None] = {}
    if connection.vendor == "postgresql":
        # the last event as epoch microseconds (exact): psycopg parses a timestamp in Python at ten times the
        # cost of an integer, and a company batch reads thousands. Hand-written, as one array parameter: the
        # queryset's building and its per-row converters cost more than the statement.
        with connection.cursor() as cursor:
            table = connection.ops.quote_name(Lead._meta.db_table)
            cursor.execute(_LEADS_RESULTS_SQL.format(table=table), [project_id, int_array(ids)])
            found = cursor.fetchall()
        rows: list[tuple[int, int, datetime | None]] = [
            (lead, score, None if us is None else _EPOCH + timedelta(microseconds=us)) for lead, score, us in found
        ]
    else:
        leads = Lead.objects.filter(project_id=project_id, id__any_of=set(ids), merged_into__isnull=True)
        rows = list(leads.values_list("id", "current_score", "last_event_at"))
    for lead_id, score, last_event_at in rows:
        active_at[lead_id] = last_event_at
        if primary is not None:
            scores[lead_id, primary] = score
    others = [model.id for model in models if not model.is_primary]
    if others and active_at:
        results = LeadScore.objects.filter(project_id=project_id, lead_id__any_of=set(active_at), model_id__in=others)
        for lead_id, model_id, score in results.values_list("lead_id", "model_id", "score"):
            scores[lead_id, model_id] = score
    policies = {model.id: model_policy(model) for model in models}
    return MemberResults(policies, scores, active_at, {model.id: model.key for model in models}, primary)
