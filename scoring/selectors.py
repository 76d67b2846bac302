"""Reads of leads and their scores, always scoped to a project."""

import csv
import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from accounts.models import Project
from core.errors import ApplicationError, NotFound
from ingest.models import Event, Lead
from ingest.selectors import event_numbers, lead_numbers

from . import engine
from .models import RescoreJob, ScoreHistory, ScoringRule
from .services.fold import facts, lead_profile, project_policy, project_rules, rule_from_row

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


def leads_for_project(
    *,
    project: Project,
    stage: str | None = None,
    anonymous_id: str | None = None,
    search: str | None = None,
    ordering: str | None = None,
) -> QuerySet[Lead]:
    """The project's live (not merged-away) leads, filtered and ordered."""
    leads = Lead.objects.filter(project=project, merged_into__isnull=True)
    if stage:
        if stage not in Lead.Stage.values:
            raise ApplicationError(f"Must be one of {', '.join(Lead.Stage.values)}.", field="stage")
        leads = leads.filter(lead_stage=stage)
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
    ordering = ordering or "-currentScore"
    descending = ordering.startswith("-")
    column = LEAD_ORDERING_FIELDS.get(ordering.lstrip("-"))
    if column is None:
        raise ApplicationError(
            f"Must be one of {', '.join(LEAD_ORDERING_FIELDS)} (prefix - for descending).", field="ordering"
        )
    return leads.order_by(f"-{column}" if descending else column, "-id" if descending else "id")


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


def lead_timeline(*, lead: Lead, limit: int = 200) -> list[tuple[Event, ScoreHistory | None]]:
    """The lead's newest `limit` events in score order, each with its history row (None until scored)."""
    newest = list(Event.objects.filter(lead=lead).order_by("-timestamp", "-event_id")[:limit])
    newest.reverse()
    history = {
        row.event_id: row for row in ScoreHistory.objects.filter(lead=lead, event_id__in=[event.id for event in newest])
    }
    return [(event, history.get(event.id)) for event in newest]


def lead_score_breakdown(*, lead: Lead) -> dict[str, Any]:
    """Where the lead's score comes from; the parts add up to `currentScore`.

    Σ rule points + clampAdjustment + decayBetweenEvents = foldScore;
    foldScore + decaySinceLastEvent = engagementScore;
    engagementScore + fitScore + finalClampAdjustment = currentScore.
    """
    state = engine.FoldState.from_json(lead.fold_state)
    rules = {rule.id: rule for rule in ScoringRule.objects.filter(project_id=lead.project_id)}
    _, fit_rules = project_rules(lead.project)
    fit_live, _ = engine.fit_score(lead_profile(lead), fit_rules)
    fit_applied = [(int(rule_id), int(points)) for rule_id, points in lead.fold_state.get("fit", [])]

    def describe(rule_id: int) -> dict[str, Any]:
        rule = rules.get(rule_id)
        return {
            "ruleId": rule_id,
            "name": rule.name if rule else "(deleted rule)",
            "eventType": rule.event_type if rule else "",
        }

    return {
        "currentScore": lead.current_score,
        "engagementScore": lead.engagement_score,
        "fitScore": lead.fit_score,
        "fitGrade": lead.fit_grade,
        "rules": [
            {**describe(rule_id), "timesApplied": tally.count, "points": tally.points}
            for rule_id, tally in sorted(state.tallies.items(), key=lambda item: -abs(item[1].points))
        ],
        "clampAdjustment": state.clamped,
        "decayBetweenEvents": state.decayed,
        "foldScore": state.score,
        "decaySinceLastEvent": lead.engagement_score - state.score,
        "fit": [{**describe(rule_id), "points": points} for rule_id, points in fit_applied],
        "finalClampAdjustment": lead.current_score - lead.engagement_score - lead.fit_score,
        # fit rules or traits changed since the last fold: the numbers add up, but are about to move
        "stale": fit_live != lead.fit_score,
    }


def lead_intelligence(*, lead: Lead, now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    counts = Event.objects.filter(lead=lead, timestamp__gte=now - timedelta(hours=48)).aggregate(
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


def rules_for_project(*, project: Project, kind: str | None = None) -> QuerySet[ScoringRule]:
    rules = ScoringRule.objects.filter(project=project).order_by("id")
    return rules.filter(kind=kind) if kind else rules


def rule_get(*, project: Project, rule_id: int | str) -> ScoringRule:
    try:
        return ScoringRule.objects.get(project=project, id=int(rule_id))
    except (ValueError, TypeError, ScoringRule.DoesNotExist):
        raise NotFound("Rule not found.") from None


def rescore_job_get(*, project: Project, job_id: int | str) -> RescoreJob:
    try:
        return RescoreJob.objects.get(project=project, id=int(job_id))
    except (ValueError, TypeError, RescoreJob.DoesNotExist):
        raise NotFound("Re-score job not found.") from None


def rules_preview(
    *, project: Project, engagement_rules: list[engine.Rule], fit_rules: list[engine.Rule], policy: engine.Policy
) -> dict[str, Any]:
    """What a proposed rule set would do to every lead, saving nothing.

    One pass over the project's events in lead order (streamed), one fold per lead.
    """
    now = timezone.now()
    leads = {
        row[0]: row
        for row in Lead.objects.filter(project=project, merged_into__isnull=True).values_list(
            "id", "anonymous_id", "email", "name", "company", "user_id", "traits", "current_score", "lead_stage"
        )
    }
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
        )
        score, new_stage = evaluation.score, evaluation.stage
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
    return {
        "leadsEvaluated": len(leads),
        "scoreChanged": changed,
        "stageChanged": sum(transitions.values()),
        "stageTransitions": dict(sorted(transitions.items())),
        "topMovers": movers[:20],
    }


def project_dashboard(*, project: Project, now: datetime | None = None, days: int = 30) -> dict[str, Any]:
    """The overview's numbers from the lead tallies and the event rollups, and the top leads: never a scan."""
    leads = lead_numbers(project=project)
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
        "topLeads": list(leads_for_project(project=project, ordering="-currentScore")[:10]),
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


def leads_export_rows(*, leads: QuerySet[Lead]) -> Iterator[list[str]]:
    """A header, then one formula-safe row per lead, streamed from the database."""
    yield [header for header, _ in LEAD_EXPORT_COLUMNS]
    columns = [column for _, column in LEAD_EXPORT_COLUMNS]
    for row in leads.values_list(*columns).iterator(chunk_size=2000):
        yield [csv_safe(value) for value in row]


def lead_score_history(*, lead: Lead, limit: int = 500) -> dict[str, Any]:
    """The lead's newest `limit` score changes (oldest first), its merge rows and the leads merged into it."""
    points = list(ScoreHistory.objects.filter(lead=lead).order_by("-occurred_at", "-id")[:limit])
    points.reverse()
    merges = list(ScoreHistory.objects.filter(lead=lead, reason=ScoreHistory.Reason.MERGE).order_by("-occurred_at"))
    merged_leads = list(lead.merged_leads.order_by("-updated_at"))
    return {"points": points, "merges": merges, "mergedLeads": merged_leads}


def rescore_jobs_recent(*, project: Project, limit: int = 5) -> list[RescoreJob]:
    return list(RescoreJob.objects.filter(project=project).order_by("-id")[:limit])


def rules_preview_proposed(
    *, project: Project, rows: list[ScoringRule], settings: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What a proposed rule set (unsaved rule rows) and settings would do to the project, saving nothing."""
    active = [row for row in rows if row.is_active]
    current = {f.attname: getattr(project, f.attname) for f in Project._meta.concrete_fields}
    return rules_preview(
        project=project,
        engagement_rules=[rule_from_row(row) for row in active if row.kind == ScoringRule.Kind.ENGAGEMENT],
        fit_rules=[rule_from_row(row) for row in active if row.kind == ScoringRule.Kind.FIT],
        policy=project_policy(Project(**{**current, **(settings or {})})),
    )


def rules_preview_with(*, project: Project, data: dict[str, Any], rule: ScoringRule | None = None) -> dict[str, Any]:
    """What the project's rules would do with this rule added (or `rule` changed to `data`), saving nothing."""
    rows = list(ScoringRule.objects.filter(project=project).order_by("id"))
    proposed = next((row for row in rows if rule is not None and row.id == rule.id), None)
    if proposed is None:
        proposed = ScoringRule(id=-1, project=project)
        rows.append(proposed)
    for field, value in data.items():
        setattr(proposed, field, value)  # an unsaved change to the fetched copy, never saved
    return rules_preview_proposed(project=project, rows=rows)


# Reads of the reporting API (leaderboard, stage counts, score history).


def leaderboard(*, project: Project, limit: int, offset: int) -> tuple[list[Lead], int]:
    """One page of the project's live leads by score (highest first), and how many there are (the tallies)."""
    leads = leads_for_project(project=project, ordering="-currentScore")
    return list(leads[offset : offset + limit]), lead_numbers(project=project)["total"]


def lead_stage_counts(*, project: Project) -> dict[str, int]:
    """How many live leads sit in each stage, from the project's lead tallies."""
    return lead_numbers(project=project)["stages"]


def lead_history_for_project(*, project: Project, lead: Lead) -> QuerySet[ScoreHistory]:
    """The lead's score changes, newest first, each with its event's client id as `event_uid`."""
    return (
        ScoreHistory.objects.filter(project=project, lead=lead)
        .annotate(event_uid=F("event__event_id"))
        .order_by("-occurred_at", "-id")
    )


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
EXPORT_HISTORY_FIELDS = {
    "id": "id",
    "reason": "reason",
    "old_score": "oldScore",
    "new_score": "newScore",
    "delta": "delta",
    "details": "details",
    "occurred_at": "occurredAt",
    "event__event_id": "eventId",
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
    history = _renamed(
        ScoreHistory.objects.filter(lead=lead).order_by("occurred_at", "id"), EXPORT_HISTORY_FIELDS, limit + 1
    )
    # executions are reached through the reverse relation: scoring does not import automations
    executions = lead.automation_executions.model.objects.filter(Q(lead=lead) | Q(lead__merged_into=lead)).order_by(
        "created_at", "id"
    )
    return {
        "lead": {_camel(field.attname): getattr(lead, field.attname) for field in Lead._meta.concrete_fields},
        "mergedIdentities": _renamed(merged, MERGED_IDENTITY_FIELDS),
        "events": events[:limit],
        "scoreHistory": history[:limit],
        "automationExecutions": _renamed(executions, EXPORT_EXECUTION_FIELDS),
        "truncated": len(events) > limit or len(history) > limit,
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
    """The events as the engine (and automations' event triggers) see them, in fold order."""
    return [fact for _, fact in facts(Event.objects.filter(id__in=event_ids))]
