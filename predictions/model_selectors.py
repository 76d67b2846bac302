"""Predictions' reads about learnt models, always within one project: models, jobs, the report, leads' values."""

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django.db.models import OuterRef, QuerySet, Subquery

from core.errors import NotFound

from .models import LeadPrediction, PredictionModel, TrainingJob

if TYPE_CHECKING:
    from accounts.models import Project
    from scoring.models import ScoringModel


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
