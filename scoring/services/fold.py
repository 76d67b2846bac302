"""The fold's persistence: feed a locked lead's events to the engine, store what it returns."""

from datetime import timedelta

from django.db import transaction

from accounts.models import Project
from ingest.models import Event, Lead
from leadpulse.realtime import project_broadcast

from .. import engine
from ..models import ScoreHistory, ScoringRule


def _policy(project: Project) -> engine.Policy:
    return engine.Policy(
        warm_threshold=project.warm_threshold,
        hot_threshold=project.hot_threshold,
        qualified_threshold=project.qualified_threshold,
        max_score=project.max_score,
    )


def _rules(project: Project) -> list[engine.Rule]:
    rows = ScoringRule.objects.filter(project=project, is_active=True).values_list("id", "event_type", "points")
    return [engine.Rule(id=rule_id, event_type=event_type, points=points) for rule_id, event_type, points in rows]


def _facts(queryset) -> list[tuple[int, engine.EventFact]]:
    rows = queryset.order_by("timestamp", "event_id").values_list("id", "event_id", "name", "timestamp", "properties")
    return [(pk, engine.EventFact(event_id, name, ts, props)) for pk, event_id, name, ts, props in rows]


def lead_fold_locked(*, lead: Lead, now) -> None:
    """Fold the lead's unprocessed events into its score; the caller holds the lead's row lock.

    Events that arrive after the newest scored one continue the fold; an older one
    (a late event, or events moved here by a merge) makes the fold restart from the
    lead's first event, rewriting its history.
    """
    pending = _facts(Event.objects.filter(lead=lead, processed_at__isnull=True))
    if not pending:
        return
    project = lead.project
    policy = _policy(project)
    state = engine.FoldState.from_json(lead.fold_state)
    if state.continues_with([fact for _, fact in pending]):
        to_fold = pending
    else:
        to_fold = _facts(Event.objects.filter(lead=lead))
        state = engine.FoldState()
        ScoreHistory.objects.filter(lead=lead, reason=ScoreHistory.Reason.RULE).delete()
    state, steps = engine.fold([fact for _, fact in to_fold], rules=_rules(project), policy=policy, state=state)

    event_pks = {fact.event_id: pk for pk, fact in to_fold}
    ScoreHistory.objects.bulk_create(
        [
            ScoreHistory(
                project_id=project.id,
                lead_id=lead.id,
                event_id=event_pks[step.event_id],
                reason=ScoreHistory.Reason.RULE,
                old_score=step.old_score,
                new_score=step.new_score,
                delta=step.delta,
                details=[{"ruleId": rule_id, "points": points} for rule_id, points in step.applied],
                occurred_at=step.timestamp,
            )
            for step in steps
        ]
    )
    Event.objects.filter(id__in=[pk for pk, _ in pending]).update(processed_at=now)

    old_stage = lead.lead_stage
    lead.current_score = state.score
    lead.lead_stage = engine.stage_for(state.score, policy)
    lead.fold_state = state.to_json()
    lead.last_event_at = state.last_timestamp
    first_pending = pending[0][1].timestamp
    lead.first_seen_at = min(lead.first_seen_at or first_pending, first_pending)
    lead.events_last_24h = Event.objects.filter(lead=lead, timestamp__gte=now - timedelta(hours=24)).count()
    lead.velocity_score = engine.velocity_score(lead.events_last_24h)
    lead.last_scored_at = now
    lead.save(
        update_fields=[
            "current_score",
            "lead_stage",
            "fold_state",
            "last_event_at",
            "first_seen_at",
            "events_last_24h",
            "velocity_score",
            "last_scored_at",
            "updated_at",
        ]
    )
    payload = {
        "id": lead.id,
        "anonymousId": lead.anonymous_id,
        "email": lead.email,
        "currentScore": lead.current_score,
        "leadStage": lead.lead_stage,
        "previousStage": old_stage,
        "eventsScored": len(pending),
    }
    transaction.on_commit(lambda: project_broadcast(project_id=project.id, type="lead.updated", payload=payload))


def lead_lock(*, lead_id: int) -> Lead | None:
    """Lock the lead row for scoring (inside a transaction).

    `FOR NO KEY UPDATE` serialises scoring of one lead across every worker and host
    without conflicting with the `FOR KEY SHARE` lock that PostgreSQL's foreign-key
    check takes when ingest inserts an event for the lead: ingest never waits for
    scoring, and the two cannot deadlock. Only the lead row is locked, not its project.
    """
    leads = Lead.objects.select_for_update(no_key=True, of=("self",)).select_related("project")
    return leads.filter(id=lead_id).first()
