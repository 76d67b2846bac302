"""Predictions' reads, always within one project: leads' outcomes, the outcomes list, the settings; trained
models, jobs, the report and leads' predicted values."""

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet

from core.errors import ApplicationError, NotFound
from ingest.models import Lead

from .models import DEFAULT_WON_EVENT_TYPE, Outcome, PredictionSettings

if TYPE_CHECKING:
    from accounts.models import Project

from typing import TYPE_CHECKING

from django.db.models import OuterRef, Subquery

from .models import LeadPrediction, PredictionModel, TrainingJob

if TYPE_CHECKING:
    from accounts.models import Project
    from scoring.models import ScoringModel

OUTCOME_FILTERS = ("won", "lost", "none")


def outcome_get(*, project: "Project", lead_id: int) -> Outcome:
    """The outcome of the project's lead; 404 when it has none."""
    outcome = Outcome.objects.filter(project=project, lead_id=lead_id).select_related("author", "api_key").first()
    if outcome is None:
        raise NotFound("The lead has no outcome.")
    return outcome


def outcome_for_lead(*, project: "Project", lead_id: int) -> Outcome | None:
    return Outcome.objects.filter(project=project, lead_id=lead_id).select_related("author", "api_key").first()


def outcomes_for_project(*, project: "Project", outcome: str | None = None) -> QuerySet[Outcome]:
    """The project's outcomes, newest first; `outcome`: only won or lost ones (400 naming `outcome` otherwise)."""
    outcomes = Outcome.objects.filter(project=project)
    if outcome:
        if outcome not in Outcome.Kind.values:
            raise ApplicationError("Must be won or lost.", field="outcome")
        outcomes = outcomes.filter(outcome=outcome)
    return outcomes.select_related("lead", "author", "api_key").order_by("-occurred_at", "-id")


def outcome_value(outcome: Outcome) -> dict[str, Any]:
    """A lead's outcome as the lead facet `outcome` shows it (the lead API, pages, exports)."""
    return {
        "outcome": outcome.outcome,
        "value": float(outcome.value) if outcome.value is not None else None,
        "at": outcome.occurred_at.isoformat().replace("+00:00", "Z"),
        "reason": outcome.reason,
        "source": outcome.source,
    }


def leads_outcome_values(project_id: int, lead_ids: Sequence[int]) -> Mapping[int, dict[str, Any]]:
    """The outcome of each of these leads of the project that has one (one query)."""
    outcomes = Outcome.objects.filter(project_id=project_id, lead_id__in=list(lead_ids))
    return {outcome.lead_id: outcome_value(outcome) for outcome in outcomes}


def leads_with_outcome(project_id: int, value: str) -> QuerySet[Any]:
    """The ids of the project's leads with this outcome (`won`, `lost`, or `none` for leads without one)."""
    if value not in OUTCOME_FILTERS:
        raise ApplicationError("Must be won, lost or none.", field="outcome")
    if value == "none":
        recorded = Outcome.objects.filter(project_id=project_id).values("lead_id")
        return Lead.objects.filter(project_id=project_id).exclude(id__in=recorded).values("id")
    return Outcome.objects.filter(project_id=project_id, outcome=value).values("lead_id")


def prediction_settings_get(*, project: "Project") -> PredictionSettings:
    """The project's prediction settings (the defaults, unsaved, when it has none)."""
    found = PredictionSettings.objects.filter(project=project).first()
    return found or PredictionSettings(project=project, won_event_type=DEFAULT_WON_EVENT_TYPE)


# Trained models, jobs, the report and leads' predicted values.


def prediction_model_active(*, project: "Project", scoring_model: "ScoringModel") -> PredictionModel | None:
    return PredictionModel.objects.filter(project=project, scoring_model=scoring_model, active=True).first()


def prediction_model_get(*, project: "Project", scoring_model: "ScoringModel") -> PredictionModel:
    """The scoring model's active prediction model; 404 when none has been trained."""
    model = prediction_model_active(project=project, scoring_model=scoring_model)
    if model is None:
        raise NotFound("No prediction model has been trained for this scoring model yet.")
    return model


def training_job_get(*, project: "Project", job_id: int | str) -> TrainingJob:
    try:
        pk = int(job_id)
    except (TypeError, ValueError):
        raise NotFound("Training job not found.") from None
    job = TrainingJob.objects.filter(project=project, id=pk).select_related("scoring_model", "prediction_model").first()
    if job is None:
        raise NotFound("Training job not found.")
    return job


def training_jobs_recent(*, project: "Project", limit: int = 5) -> list[TrainingJob]:
    return list(
        TrainingJob.objects.filter(project=project)
        .select_related("scoring_model", "requested_by")
        .order_by("-created_at", "-id")[:limit]
    )


def report_document(*, model: PredictionModel) -> dict[str, Any]:
    """The stored model's report as the API shows it: the learnt model and the rules side by side on one holdout."""
    report = model.report
    return {
        "model": model.scoring_model.key,
        "version": model.version,
        "trainedAt": model.trained_at.isoformat().replace("+00:00", "Z"),
        "trainCount": model.train_count,
        "testCount": model.test_count,
        "train": report["train"],
        "holdout": report["holdout"],
        "learned": report["model"],
        "rules": report["rules"],
        "calibration": report["calibration"],
        "brier": report["brier"],
        "calibrationError": report["calibration_error"],
    }


def _primary_predictions(project_id: int) -> QuerySet[LeadPrediction]:
    return LeadPrediction.objects.filter(
        project_id=project_id, prediction_model__active=True, prediction_model__scoring_model__is_primary=True
    )


def leads_prediction_values(project_id: int, lead_ids: Sequence[int]) -> Mapping[int, dict[str, Any]]:
    """The probability and top factors of each of these leads under the primary scoring model's active model."""
    rows = _primary_predictions(project_id).filter(lead_id__in=list(lead_ids))
    return {
        lead_id: {"probability": round(probability, 4), "factors": factors}
        for lead_id, probability, factors in rows.values_list("lead_id", "probability", "factors")
    }


def lead_probability_ordering() -> Any:
    """The leads list's sort key `conversionProbability`: the lead's probability (null without one)."""
    rows = LeadPrediction.objects.filter(
        lead_id=OuterRef("pk"), prediction_model__active=True, prediction_model__scoring_model__is_primary=True
    )
    return Subquery(rows.values("probability")[:1])
