"""Predictions' writes about learnt models: training jobs, stored models, leads' probabilities, suggestions as a draft.

A training job reads a project's outcomes and its leads' logs up to each outcome, trains with `learn.model_train`
(which refuses below its minimum), stores the model and its report, scores every lead of the project with it in
chunks, then makes it the scoring model's active one. Afterwards the lead-change consumer keeps the probabilities
of the leads each scoring batch touched up to date, loading a model once per worker and version (`_trained`).
(A module beside `services.py`, which holds the outcomes' writes.)
"""

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from celery import current_app as app
from django.db import transaction
from django.db.models import Count, F, Max, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.contracts import PREDICTION_MODEL_TRAIN_TASK, LeadChange
from core.errors import ApplicationError
from core.realtime import project_broadcast
from ingest.models import Event, Lead
from scoring.models import RuleSetDraft, ScoreHistory, ScoringModel, ScoringRule
from scoring.services import RULE_DEFAULTS, draft_save, draft_start

from ..features import RECENCY_CAP_DAYS, WINDOWS, EventRow, LeadFacts
from ..learn import (
    MIN_LOST,
    MIN_WON,
    Example,
    TrainedModel,
    TrainingRefused,
    lead_predict,
    model_train,
    points_suggest,
    threshold_for_precision,
    thresholds_suggest,
)
from ..models import LeadPrediction, Outcome, PredictionModel, TrainingJob
from ..selectors import leads_prediction_values

if TYPE_CHECKING:
    from accounts.models import Project, User

logger = logging.getLogger(__name__)

SCORE_CHUNK = 1000  # leads scored per statement group after training
LOOKBACK = timedelta(days=RECENCY_CAP_DAYS)  # older events change no feature (windows <= 30 days, recency capped)
WINDOW = timedelta(days=max(WINDOWS))
# a pending job this old lost its message, a running one this quiet its worker (time limit, crash): another may start
STALE_JOB = timedelta(hours=1)
DEFAULT_TARGET_PRECISION = 0.8
MARKER = "\x00last"  # a lead's last event outside the window: only its time matters (recency)

# (project id, prediction model id, version) -> the learnt model: loaded once per worker process and version
_MODELS: dict[tuple[int, int, int], TrainedModel] = {}


def _trained(model: PredictionModel) -> TrainedModel:
    key = (model.project_id, model.id, model.version)
    found = _MODELS.get(key)
    if found is None:
        found = _MODELS[key] = TrainedModel.from_json(model.document)
    return found


def trained_model(model: PredictionModel) -> TrainedModel:
    """The learnt model of a stored one (cached per process)."""
    return _trained(model)


# --- training ---------------------------------------------------------------------------------


def training_job_start(*, project: "Project", scoring_model: ScoringModel, requested_by: "User | None") -> TrainingJob:
    """A new training job for the scoring model (or the one already pending or running), run by a worker."""
    with transaction.atomic():
        ScoringModel.objects.select_for_update().filter(id=scoring_model.id).first()  # one start at a time
        current = (
            TrainingJob.objects.filter(scoring_model=scoring_model)
            .filter(
                Q(status=TrainingJob.Status.RUNNING, updated_at__gte=timezone.now() - STALE_JOB)
                | Q(status=TrainingJob.Status.PENDING, created_at__gte=timezone.now() - STALE_JOB)
            )
            .order_by("-id")
            .first()
        )
        if current is not None:
            return current
        job = TrainingJob.objects.create(project=project, scoring_model=scoring_model, requested_by=requested_by,
                                         message="Waiting for a worker.")  # fmt: skip
        job_id = job.id
        transaction.on_commit(
            lambda: app.send_task(PREDICTION_MODEL_TRAIN_TASK, kwargs={"job_id": job_id}), robust=True
        )
    return job


def _progress(job: TrainingJob, progress: int, message: str, **fields: Any) -> None:
    job.progress, job.message = progress, message
    for name, value in fields.items():
        setattr(job, name, value)
    job.save(update_fields=["progress", "message", "updated_at", *fields])


def current_points(*, scoring_model: ScoringModel) -> dict[str, int]:
    """Points per event type of the model's active unconditional engagement rules (what suggestions compare with)."""
    points: dict[str, int] = {}
    rules = ScoringRule.objects.filter(model=scoring_model, is_active=True, kind=ScoringRule.Kind.ENGAGEMENT)
    for event_type, conditions, value in rules.exclude(event_type="").values_list("event_type", "conditions", "points"):
        if not conditions:
            points[event_type] = points.get(event_type, 0) + value
    return points


def training_examples(*, project_id: int, scoring_model: ScoringModel) -> list[Example]:
    """The project's outcomes on live leads, each with the lead's events in the 90 days before it, its traits, and
    the scoring model's score at the outcome's time (its last history row before it; 0 without one)."""
    score_then = (
        ScoreHistory.objects.filter(
            lead_id=OuterRef("lead_id"), model_id=scoring_model.id, occurred_at__lt=OuterRef("occurred_at")
        )
        .order_by("-occurred_at", "-id")
        .values("new_score")[:1]
    )
    outcomes = list(
        Outcome.objects.filter(project_id=project_id, lead__merged_into__isnull=True)
        .annotate(rule_score=Coalesce(Subquery(score_then), 0))
        .values_list("lead_id", "outcome", "occurred_at", "rule_score", "lead__traits")
    )
    events: dict[int, list[EventRow]] = defaultdict(list)
    rows = (
        Event.objects.filter(project_id=project_id, lead__outcome__project_id=project_id)
        .filter(lead__outcome__occurred_at__gt=F("timestamp"))
        .filter(timestamp__gte=F("lead__outcome__occurred_at") - LOOKBACK)
        .exclude(type=Event.Type.ADJUSTMENT)
        .values_list("lead_id", "name", "timestamp")
        .order_by()
    )
    for lead_id, name, timestamp in rows.iterator(chunk_size=10_000):
        events[lead_id].append(EventRow(name=name, timestamp=timestamp))
    return [
        Example(lead=LeadFacts(events=events.get(lead_id, ()), traits=traits or {}), won=outcome == Outcome.Kind.WON,
                at=at, rule_score=float(score), key=str(lead_id))
        for lead_id, outcome, at, score, traits in outcomes
    ]  # fmt: skip


def prediction_model_train(*, job_id: int) -> TrainingJob:
    """Run a pending training job: learn from the outcomes, store the model, score every lead, make it active."""
    claimed = TrainingJob.objects.filter(id=job_id, status=TrainingJob.Status.PENDING).update(
        status=TrainingJob.Status.RUNNING, started_at=timezone.now(), progress=5, message="Reading outcomes.",
        updated_at=timezone.now(),
    )  # fmt: skip
    job = TrainingJob.objects.select_related("scoring_model").get(id=job_id)
    if not claimed:
        return job  # redelivered, or another worker has it
    try:
        return _train(job)
    except Exception as error:
        logger.exception("Training job %s failed", job.id)
        _progress(job, job.progress, f"Training failed: {error}"[:1000], status=TrainingJob.Status.FAILED,
                  finished_at=timezone.now())  # fmt: skip
        raise


def _train(job: TrainingJob) -> TrainingJob:
    scoring_model = job.scoring_model
    examples = training_examples(project_id=job.project_id, scoring_model=scoring_model)
    _progress(job, 30, f"Training on {len(examples)} outcomes.")
    now = timezone.now()
    try:
        trained = model_train(
            examples,
            rule_thresholds=(scoring_model.warm_threshold, scoring_model.hot_threshold,
                             scoring_model.qualified_threshold),
            current_points=current_points(scoring_model=scoring_model),
            target_precision=DEFAULT_TARGET_PRECISION,
            trained_at=now,
        )  # fmt: skip
    except TrainingRefused as refused:
        _progress(job, 100, str(refused), status=TrainingJob.Status.REFUSED, finished_at=timezone.now())
        return job
    report = trained.report
    with transaction.atomic():
        ScoringModel.objects.select_for_update().filter(id=scoring_model.id).first()
        latest = PredictionModel.objects.filter(scoring_model=scoring_model).aggregate(v=Max("version"))["v"] or 0
        model = PredictionModel.objects.create(
            project_id=job.project_id, scoring_model=scoring_model, version=latest + 1, trained_at=now,
            document=trained.to_json(), report=report, train_count=report["train"]["leads"],
            test_count=report["holdout"]["leads"], active=False,
        )  # fmt: skip
    _progress(job, 60, f"Scoring leads with v{model.version}.", prediction_model=model)
    lead_ids = list(
        Lead.objects.filter(project_id=job.project_id, merged_into__isnull=True)
        .order_by("id")
        .values_list("id", flat=True)
    )
    for start in range(0, len(lead_ids), SCORE_CHUNK):
        lead_predictions_refresh(project_id=job.project_id, lead_ids=lead_ids[start : start + SCORE_CHUNK],
                                 models=[model])  # fmt: skip
        done = min(len(lead_ids), start + SCORE_CHUNK)
        _progress(job, 60 + 39 * done // max(1, len(lead_ids)), f"Scored {done} of {len(lead_ids)} leads.")
    with transaction.atomic():
        previous = PredictionModel.objects.filter(scoring_model=scoring_model, active=True).exclude(id=model.id)
        stale = list(previous.values_list("id", flat=True))
        previous.update(active=False, updated_at=timezone.now())
        PredictionModel.objects.filter(id=model.id).update(active=True, updated_at=timezone.now())
        LeadPrediction.objects.filter(prediction_model_id__in=stale).delete()
        message = (
            f"Trained v{model.version} on {report['train']['leads']} outcomes; holdout AUC "
            f"{report['model']['auc']:.2f}"
            + (f" (rules {report['rules']['auc']:.2f})" if report["rules"] else "")
            + "."
        )
        _progress(job, 100, message, status=TrainingJob.Status.SUCCEEDED, finished_at=timezone.now())
    return job


def models_retrain() -> list[TrainingJob]:
    """Start a training job for every scoring model that has a model, or whose project has enough outcomes."""
    trained = set(PredictionModel.objects.values_list("scoring_model_id", flat=True).distinct())
    won = Outcome.objects.filter(outcome=Outcome.Kind.WON).values("project_id")
    candidates = ScoringModel.objects.filter(Q(id__in=trained) | Q(is_primary=True, project_id__in=won))
    jobs = []
    for scoring_model in candidates.select_related("project"):
        if scoring_model.id not in trained and not _enough_outcomes(scoring_model.project_id):
            continue
        jobs.append(training_job_start(project=scoring_model.project, scoring_model=scoring_model, requested_by=None))
    return jobs


def _enough_outcomes(project_id: int) -> bool:
    counts = dict(
        Outcome.objects.filter(project_id=project_id).values_list("outcome").annotate(n=Count("id")).order_by()
    )
    return counts.get("won", 0) >= MIN_WON and counts.get("lost", 0) >= MIN_LOST


# --- leads' probabilities ---------------------------------------------------------------------


def _leads_facts(project_id: int, lead_ids: Sequence[int], now: datetime) -> dict[int, LeadFacts]:
    """The live leads' events of the last 30 days (what the windows count) and traits; an older last event stands in
    as a marker, as only its time matters (recency). Two queries."""
    leads = Lead.objects.filter(project_id=project_id, id__in=list(lead_ids), merged_into__isnull=True)
    known = {lead_id: (traits, last) for lead_id, traits, last in leads.values_list("id", "traits", "last_event_at")}
    events: dict[int, list[EventRow]] = defaultdict(list)
    recent = (
        Event.objects.filter(project_id=project_id, lead_id__in=list(known), timestamp__gte=now - WINDOW,
                             timestamp__lt=now)
        .exclude(type=Event.Type.ADJUSTMENT)
        .values_list("lead_id", "name", "timestamp")
        .order_by()
    )  # fmt: skip
    for lead_id, name, timestamp in recent:
        events[lead_id].append(EventRow(name=name, timestamp=timestamp))
    facts = {}
    for lead_id, (traits, last) in known.items():
        rows = events.get(lead_id, [])
        if not rows and last is not None and last < now - WINDOW:
            rows = [EventRow(name=MARKER, timestamp=last)]
        facts[lead_id] = LeadFacts(events=rows, traits=traits or {})
    return facts


def lead_predictions_refresh(
    *,
    project_id: int,
    lead_ids: Sequence[int],
    models: Iterable[PredictionModel] | None = None,
    now: datetime | None = None,
) -> int:
    """Recompute these leads' probabilities and factors under the project's active models (or `models`); return
    how many rows were written. Merged-away and erased leads lose theirs."""
    if models is None:
        models = PredictionModel.objects.filter(project_id=project_id, active=True)
    chosen = list(models)
    if not chosen or not lead_ids:
        return 0
    now = now or timezone.now()
    facts = _leads_facts(project_id, lead_ids, now)
    rows = []
    for model in chosen:
        trained = _trained(model)
        for lead_id, lead in facts.items():
            prediction = lead_predict(trained, lead, now=now)
            factors = [
                {"feature": f.feature, "value": f.value, "contribution": round(f.contribution, 4), "label": f.label}
                for f in prediction.factors
            ]
            rows.append(LeadPrediction(project_id=project_id, lead_id=lead_id, prediction_model=model,
                                       probability=min(1.0, max(0.0, prediction.probability)), factors=factors,
                                       computed_at=now))  # fmt: skip
    gone = [lead_id for lead_id in lead_ids if lead_id not in facts]
    with transaction.atomic():
        if gone:
            LeadPrediction.objects.filter(project_id=project_id, lead_id__in=gone).delete()
        LeadPrediction.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["lead", "prediction_model"],
            update_fields=["probability", "factors", "computed_at"],
        )  # fmt: skip
    return len(rows)


def lead_changes_predict(*, changes: list[LeadChange]) -> int:
    """Recompute the probabilities of the leads a scoring batch changed (once per lead, whatever its models)."""
    leads: dict[int, set[int]] = defaultdict(set)
    for change in changes:
        leads[change.project_id].add(change.lead_id)
        if change.merged_lead_id is not None:
            leads[change.project_id].add(change.merged_lead_id)
    active_models = PredictionModel.objects.filter(project_id__in=list(leads), active=True)
    active = set(active_models.values_list("project_id", flat=True))
    written = 0
    for project_id, ids in sorted(leads.items()):
        if project_id not in active:
            continue
        written += lead_predictions_refresh(project_id=project_id, lead_ids=sorted(ids))
        _predictions_broadcast(project_id=project_id, lead_ids=sorted(ids))
    return written


def _predictions_broadcast(*, project_id: int, lead_ids: Sequence[int]) -> None:
    """After commit, one `predictions.updated` for the batch's leads: each one's `conversionProbability` facet value
    (the primary scoring model's; null when it has none), which the leads list and lead page apply (facets.js)."""
    values = leads_prediction_values(project_id, lead_ids)
    payload = {"leads": [{"id": lead_id, "conversionProbability": values.get(lead_id)} for lead_id in lead_ids]}
    transaction.on_commit(
        partial(project_broadcast, project_id=project_id, type="predictions.updated", payload=payload), robust=True
    )


# --- suggestions as a draft -------------------------------------------------------------------


def suggestions_compute(
    *, model: PredictionModel, scoring_model: ScoringModel, target_precision: float
) -> dict[str, Any]:
    """The model's suggested points (beside the live rules') and thresholds at `target_precision` for qualified."""
    if not 0 < target_precision <= 1:
        raise ApplicationError("Must be a number above 0 and at most 1.", field="targetPrecision")
    trained = _trained(model)
    points = current_points(scoring_model=scoring_model)
    current = [scoring_model.warm_threshold, scoring_model.hot_threshold, scoring_model.qualified_threshold]
    report = model.report
    return {
        "model": scoring_model.key,
        "version": model.version,
        "targetPrecision": target_precision,
        "points": [
            {
                "eventType": row["event_type"],
                "current": row["current"],
                "suggested": row["suggested"],
                "logOdds": round(row["log_odds"], 4),
            }
            for row in points_suggest(trained.event_log_odds, points)
        ],
        "thresholds": {
            "current": current,
            "suggested": thresholds_suggest(report["rules"], target_precision, (current[0], current[1], current[2])),
        },
        "probabilityThreshold": threshold_for_precision(report["model"]["curve"], target_precision),
    }


def suggestions_apply(
    *, model: PredictionModel, scoring_model: ScoringModel, target_precision: float, author: "User | None"
) -> RuleSetDraft:
    """Write the suggestions into the scoring model's draft (started from the live rules when it has none).

    Each suggested event type's unconditional engagement rules get the suggested points (a type no such rule scores
    gets a new rule, when its points are not 0); reachable thresholds replace the draft's. Nothing is published.
    """
    suggestions = suggestions_compute(model=model, scoring_model=scoring_model, target_precision=target_precision)
    draft = draft_start(model=scoring_model, author=author)
    document = draft.document
    rules = [dict(rule) for rule in document["rules"]]
    for row in suggestions["points"]:
        matching = [
            rule for rule in rules
            if rule.get("event_type") == row["eventType"] and rule.get("kind", "engagement") == "engagement"
            and not rule.get("conditions")
        ]  # fmt: skip
        for rule in matching:
            rule["points"] = row["suggested"]
        if not matching and row["suggested"]:
            rules.append({**RULE_DEFAULTS, "name": f"{row['eventType']} (suggested)", "event_type": row["eventType"],
                          "points": row["suggested"]})  # fmt: skip
    settings = dict(document["settings"])
    thresholds = suggestions["thresholds"]["suggested"]
    if thresholds:
        warm, hot, qualified = thresholds
        settings.update(warm_threshold=warm, hot_threshold=hot, qualified_threshold=qualified,
                        max_score=max(settings.get("max_score", qualified), qualified))  # fmt: skip
    return draft_save(model=scoring_model, document={"settings": settings, "rules": rules}, author=author)
