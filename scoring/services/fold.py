"""The fold's persistence: feed a locked lead's events to the engine, store what it returns."""

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet

from accounts.models import Project
from ingest.models import Event, Lead
from leadpulse import metrics
from leadpulse.pipeline import lead_changed
from leadpulse.realtime import project_broadcast

from .. import engine
from ..models import ScoreHistory, ScoringRule

# Rows a refold rewrites (they chain: each old score is the previous new score). Merge and
# rescore rows are audit entries outside the chain and stay.
FOLDED_REASONS = (ScoreHistory.Reason.RULE, ScoreHistory.Reason.DECAY, ScoreHistory.Reason.FIT)


def project_policy(project: Project) -> engine.Policy:
    return engine.Policy(
        warm_threshold=project.warm_threshold,
        hot_threshold=project.hot_threshold,
        qualified_threshold=project.qualified_threshold,
        max_score=project.max_score,
        decay=engine.Decay(
            enabled=project.decay_enabled,
            rate_percent=project.decay_rate_percent,
            grace_days=project.decay_grace_days,
        ),
    )


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
    )


def project_rules(project: Project) -> tuple[list[engine.Rule], list[engine.Rule]]:
    """The project's active (engagement, fit) rules as engine values."""
    engagement: list[engine.Rule] = []
    fit: list[engine.Rule] = []
    for row in ScoringRule.objects.filter(project=project, is_active=True).order_by("id"):
        (fit if row.kind == ScoringRule.Kind.FIT else engagement).append(rule_from_row(row))
    return engagement, fit


def lead_profile(lead: Lead) -> dict[str, Any]:
    """The document fit rules look at: `email`, `name`, `company`, `userId`, `traits.x`."""
    return {
        "email": lead.email,
        "name": lead.name,
        "company": lead.company,
        "userId": lead.user_id,
        "traits": lead.traits,
    }


def facts(queryset: QuerySet[Event]) -> list[tuple[int, engine.EventFact]]:
    rows = queryset.order_by("timestamp", "event_id").values_list(
        "id", "event_id", "name", "timestamp", "properties", "context", "type"
    )
    return [(pk, engine.EventFact(eid, name, ts, props, ctx, kind)) for pk, eid, name, ts, props, ctx, kind in rows]


def lead_fold_locked(
    *, lead: Lead, now: datetime, refold: bool = False, reason: str = "rule", event_ids: list[int] | None = None
) -> bool:
    """Fold the lead's unprocessed events (all of them when `refold`); the caller holds the row lock.

    Events after the newest scored one continue the fold; an older one (a late event,
    or events a merge moved here) restarts it from the lead's first event, rewriting
    the history. History rows carry the lead's total score (engagement + fit) and
    chain: each row's old score is the previous row's new score. Returns whether
    anything changed. `event_ids`: fold only these of the unprocessed events (the ones the
    caller checked); ingest may commit more meanwhile, which wait for their own fold.
    """
    unprocessed = Event.objects.filter(lead=lead, processed_at__isnull=True)
    if event_ids is not None:
        unprocessed = unprocessed.filter(id__in=event_ids)
    pending = facts(unprocessed)
    if not pending and not refold:
        return _lead_refit_locked(lead=lead, now=now)
    project = lead.project
    policy = project_policy(project)
    engagement_rules, fit_rules = project_rules(project)
    state = engine.FoldState.from_json(lead.fold_state)
    previous_total = lead.current_score
    if not refold and state.continues_with([fact for _, fact in pending]):
        to_fold = pending
        chain_from = lead.current_score
    else:
        refold = True
        # the events folded before and the pending ones read above; one committed since is not marked
        # processed below, so it must not be folded here either (it would be counted again by its own fold)
        folded = Q(processed_at__isnull=False) | Q(id__in=[pk for pk, _ in pending])
        to_fold = facts(Event.objects.filter(lead=lead).filter(folded))
        state = engine.FoldState()
        chain_from = 0
        ScoreHistory.objects.filter(lead=lead, reason__in=FOLDED_REASONS).delete()
    state, steps = engine.fold([fact for _, fact in to_fold], rules=engagement_rules, policy=policy, state=state)
    fit, fit_applied = engine.fit_score(lead_profile(lead), fit_rules)

    rows, event_pks = [], {fact.event_id: pk for pk, fact in to_fold}
    for step in steps:
        new_total = engine.total_score(step.new_score, fit, policy)
        rows.append(
            ScoreHistory(
                project_id=project.id,
                lead_id=lead.id,
                event_id=event_pks[step.event_id],
                reason=ScoreHistory.Reason.RULE,
                old_score=chain_from,
                new_score=new_total,
                delta=new_total - chain_from,
                details={
                    "rules": [{"ruleId": rule_id, "points": points} for rule_id, points in step.applied],
                    "decay": step.decay,
                    "fit": fit,
                },
                occurred_at=step.timestamp,
            )
        )
        chain_from = new_total
    engagement_now = policy.decay.apply(state.score, state.last_timestamp, now)
    current = engine.total_score(engagement_now, fit, policy)
    if current != chain_from:
        # decay since the last event (e.g. a backfill of old events), or a changed fit
        kind = ScoreHistory.Reason.DECAY if engagement_now != state.score else ScoreHistory.Reason.FIT
        rows.append(_history_row(lead, kind, chain_from, current, now, {"fit": fit}))
    if refold and reason == ScoreHistory.Reason.RESCORE and current != previous_total:
        rows.append(_history_row(lead, ScoreHistory.Reason.RESCORE, previous_total, current, now, {"fit": fit}))
    ScoreHistory.objects.bulk_create(rows)
    if pending:
        Event.objects.filter(id__in=[pk for pk, _ in pending]).update(processed_at=now)
        metrics.events_scored_on_commit(event_pks=[pk for pk, _ in pending], scored_at=now)

    old_stage = lead.lead_stage
    lead.current_score = current
    lead.engagement_score = engagement_now
    lead.fit_score = fit
    lead.fit_grade = engine.grade_for(fit)
    lead.lead_stage = engine.stage_for(current, policy)
    # the fit rules that applied are kept beside the fold, so the breakdown explains the stored fit
    lead.fold_state = {**state.to_json(), "fit": [[rule_id, points] for rule_id, points in fit_applied]}
    lead.last_event_at = state.last_timestamp
    if to_fold:
        first = to_fold[0][1].timestamp
        lead.first_seen_at = min(lead.first_seen_at or first, first)
    lead.events_last_24h = Event.objects.filter(lead=lead, timestamp__gte=now - timedelta(hours=24)).count()
    lead.velocity_score = engine.velocity_score(lead.events_last_24h)
    lead.last_scored_at = now
    lead.save(update_fields=LEAD_SCORE_FIELDS)
    # the scores the lead went through, so automations see every crossing, however events were batched
    path = [previous_total] if refold else [previous_total, *(row.new_score for row in rows if row.event_id)]
    _lead_updated(
        lead,
        old_stage=old_stage,
        old_score=previous_total,
        event_ids=[pk for pk, _ in pending],
        path=[*path, current],
        policy=policy,
    )
    return current != previous_total or old_stage != lead.lead_stage


LEAD_SCORE_FIELDS = [
    "current_score",
    "engagement_score",
    "fit_score",
    "fit_grade",
    "lead_stage",
    "fold_state",
    "last_event_at",
    "first_seen_at",
    "events_last_24h",
    "velocity_score",
    "last_scored_at",
    "updated_at",
]


def _history_row(lead: Lead, reason: str, old: int, new: int, at: datetime, details: dict) -> ScoreHistory:
    return ScoreHistory(
        project_id=lead.project_id,
        lead_id=lead.id,
        reason=reason,
        old_score=old,
        new_score=new,
        delta=new - old,
        details=details,
        occurred_at=at,
    )


def _lead_updated(
    lead: Lead, *, old_stage: str, old_score: int, event_ids: list[int], path: list[int], policy: engine.Policy
) -> None:
    """After commit: tell the dashboard, and automations/webhooks, what changed."""
    payload = {
        "id": lead.id,
        "anonymousId": lead.anonymous_id,
        "email": lead.email,
        "currentScore": lead.current_score,
        "previousScore": old_score,
        "leadStage": lead.lead_stage,
        "previousStage": old_stage,
        "eventsScored": len(event_ids),
    }
    transaction.on_commit(lambda: project_broadcast(project_id=lead.project_id, type="lead.updated", payload=payload))
    lead_changed(
        change={
            "kind": "scored",
            "projectId": lead.project_id,
            "leadId": lead.id,
            "oldScore": old_score,
            "newScore": lead.current_score,
            "oldStage": old_stage,
            "newStage": lead.lead_stage,
            "velocity": lead.events_last_24h,
            "eventIds": event_ids[:500],
            "path": [[score, engine.stage_for(score, policy)] for score in _squeeze(path)],
        }
    )


def _squeeze(path: list[int], limit: int = 500) -> list[int]:
    """Drop repeats; keep at most `limit` points (ends kept)."""
    points = [score for i, score in enumerate(path) if i == 0 or score != path[i - 1]]
    if len(points) > limit:
        points = [*points[: limit - 1], points[-1]]
    return points


def _lead_refit_locked(*, lead: Lead, now: datetime) -> bool:
    """No new events: only the fit can have moved (traits edited, fit rules changed)."""
    policy = project_policy(lead.project)
    _, fit_rules = project_rules(lead.project)
    fit, fit_applied = engine.fit_score(lead_profile(lead), fit_rules)
    if fit == lead.fit_score:
        return False
    state = engine.FoldState.from_json(lead.fold_state)
    engagement_now = policy.decay.apply(state.score, state.last_timestamp, now)
    current = engine.total_score(engagement_now, fit, policy)
    old_score, old_stage = lead.current_score, lead.lead_stage
    _history_row(lead, ScoreHistory.Reason.FIT, old_score, current, now, {"fit": fit}).save()
    lead.current_score, lead.engagement_score, lead.fit_score = current, engagement_now, fit
    lead.fit_grade = engine.grade_for(fit)
    lead.lead_stage = engine.stage_for(current, policy)
    lead.fold_state = {**lead.fold_state, "fit": [[rule_id, points] for rule_id, points in fit_applied]}
    lead.save(update_fields=["current_score", "engagement_score", "fit_score", "fit_grade", "lead_stage",
                             "fold_state", "updated_at"])  # fmt: skip
    _lead_updated(lead, old_stage=old_stage, old_score=old_score, event_ids=[], path=[old_score, current],
                  policy=policy)  # fmt: skip
    return True


def lead_decay_locked(*, lead: Lead, now: datetime) -> bool:
    """Materialise decay up to `now` as a `decay` history row; a second run the same day changes nothing."""
    policy = project_policy(lead.project)
    state = engine.FoldState.from_json(lead.fold_state)
    engagement_now = policy.decay.apply(state.score, state.last_timestamp, now)
    current = engine.total_score(engagement_now, lead.fit_score, policy)
    if current == lead.current_score and engagement_now == lead.engagement_score:
        return False
    old_score, old_stage = lead.current_score, lead.lead_stage
    _history_row(lead, ScoreHistory.Reason.DECAY, old_score, current, now, {"engagement": engagement_now}).save()
    lead.current_score = current
    lead.engagement_score = engagement_now
    lead.lead_stage = engine.stage_for(current, policy)
    lead.save(update_fields=["current_score", "engagement_score", "lead_stage", "updated_at"])
    _lead_updated(
        lead, old_stage=old_stage, old_score=old_score, event_ids=[], path=[old_score, current], policy=policy
    )
    return True


def lead_lock(*, lead_id: int, skip_locked: bool = False) -> Lead | None:
    """Lock the lead row for scoring (inside a transaction).

    `FOR NO KEY UPDATE` serialises scoring of one lead across every worker and host
    without conflicting with the `FOR KEY SHARE` lock that PostgreSQL's foreign-key
    check takes when ingest inserts an event for the lead: ingest never waits for
    scoring, and the two cannot deadlock. Only the lead row is locked, not its project.
    """
    leads = Lead.objects.select_for_update(no_key=True, of=("self",), skip_locked=skip_locked)
    return leads.select_related("project").filter(id=lead_id).first()
