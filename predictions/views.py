"""Predictions' pages: the lead page's outcome card (record or clear, then back to the lead), and the predictions
page (training, its job's progress, the report and the suggestions)."""

from typing import TYPE_CHECKING

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.scoping import ProjectRequest, project_page
from core.errors import ApplicationError, NotFound
from scoring.selectors import lead_get

from .forms import OutcomeForm
from .services import outcome_clear, outcome_input_check, outcome_record, outcome_recorder

if TYPE_CHECKING:
    from ingest.models import Lead

import math
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import render

from core.charts import bars_chart, xy_chart
from scoring.selectors import ModelChoice, scoring_model_choice

from .api import TrainingJobSerializer
from .selectors import prediction_model_active, report_document, training_job_get, training_jobs_recent
from .services.training import DEFAULT_TARGET_PRECISION, suggestions_apply, suggestions_compute, training_job_start


def _lead(request: ProjectRequest, lead_id: int) -> "Lead":
    try:
        return lead_get(project=request.project, lead_id=lead_id)
    except NotFound:
        raise Http404 from None


def _back(lead_id: int) -> HttpResponse:
    return redirect(reverse("scoring:lead_detail", args=[lead_id]) + "#facet-outcome")


@require_POST
@project_page
def lead_outcome_view(request: ProjectRequest, lead_id: int) -> HttpResponse:
    """Record the lead's outcome (any member), as the API does."""
    lead = _lead(request, lead_id)
    form = OutcomeForm(request.POST)
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        messages.error(request, f"Outcome not recorded: {field}: {' '.join(str(e) for e in errors)}")
        return _back(lead.id)
    try:
        data = outcome_input_check(**form.cleaned_data)
    except ApplicationError as error:
        messages.error(request, f"Outcome not recorded: {error.field}: {error.message}")
        return _back(lead.id)
    outcome = outcome_record(lead=lead, data=data, recorder=outcome_recorder(source="page", user=request.user))
    messages.success(request, f"Recorded as {outcome.outcome}.")
    return _back(lead.id)


@require_POST
@project_page
def lead_outcome_clear_view(request: ProjectRequest, lead_id: int) -> HttpResponse:
    """Clear the lead's outcome (any member)."""
    lead = _lead(request, lead_id)
    if outcome_clear(lead=lead):
        messages.success(request, "Outcome cleared.")
    return _back(lead.id)


# The predictions page: training, its job's progress, the report and suggestions.

TARGETS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def _choice(request: ProjectRequest, key: str | None) -> ModelChoice:
    try:
        return scoring_model_choice(project=request.project, key=key or None)
    except NotFound:
        raise Http404 from None


def _target(raw: str | None) -> float:
    try:
        value = float(raw) if raw else DEFAULT_TARGET_PRECISION
    except ValueError:
        return DEFAULT_TARGET_PRECISION
    return value if math.isfinite(value) and 0.01 <= value <= 1 else DEFAULT_TARGET_PRECISION


def _report_back(choice: ModelChoice, target: float | None = None) -> HttpResponse:
    query = choice.query
    if target is not None:
        query += ("&" if query else "?") + f"target={target:g}"
    return redirect(reverse("predictions:report") + query)


def report_charts(report: dict[str, Any], nonce: str) -> dict[str, str]:
    """The calibration plot (against the diagonal) and lift by decile, the learnt model beside the rules."""
    calibration = [(b["predicted"], b["observed"]) for b in report["calibration"] if b["leads"]]
    lift = {"Learnt model": [row["lift"] for row in report["learned"]["lift"]]}
    if report["rules"]:
        lift["Rules"] = [row["lift"] for row in report["rules"]["lift"]]
    return {
        "calibration": xy_chart(
            series={"Observed": calibration, "Perfect": [(0, 0), (1, 1)]},
            title="Calibration: predicted against won share",
            nonce=nonce,
        ),
        "lift": bars_chart(
            labels=[str(row["decile"]) for row in report["learned"]["lift"]],
            series=lift,
            title="Lift by decile (1: highest scores)",
            nonce=nonce,
        ),
    }


def stage_pairs(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Precision and recall per stage, the learnt model's and the rules' on one row each."""
    rules = {row["stage"]: row for row in (report["rules"] or {}).get("stages", [])}
    return [
        {"stage": row["stage"], "model": row, "rules": rules.get(row["stage"])} for row in report["learned"]["stages"]
    ]


@project_page
def predictions_view(request: ProjectRequest) -> HttpResponse:
    """The model of `?model=` (the primary scoring model's by default): runs, report, charts and suggestions."""
    choice = _choice(request, request.GET.get("model"))
    target = _target(request.GET.get("target"))
    model = prediction_model_active(project=request.project, scoring_model=choice.model)
    jobs = training_jobs_recent(project=request.project)
    running = next((job for job in jobs if not job.finished), None)
    context: dict[str, Any] = {
        "switcher": {"choice": choice, "keep": [("target", f"{target:g}")]},
        "model": model,
        "jobs": jobs,
        "running": running,
        "can_edit": request.membership.is_admin,
        "target": target,
        "targets": sorted({*TARGETS, target}),
    }
    if model is not None:
        report = report_document(model=model)
        context.update(report=report, charts=report_charts(report, request.csp_nonce), stages=stage_pairs(report),
                       suggestions=suggestions_compute(model=model, scoring_model=choice.model,
                                                       target_precision=target))  # fmt: skip
    return render(request, "predictions/report.html", context)


@require_POST
@project_page
def predictions_train_view(request: ProjectRequest) -> HttpResponse:
    """Start training `model` (owners and admins); the page follows the job."""
    if not request.membership.is_admin:
        raise PermissionDenied("Only owners and admins train models.")
    choice = _choice(request, request.POST.get("model"))
    job = training_job_start(project=request.project, scoring_model=choice.model, requested_by=request.user)
    messages.success(request, f"Training job {job.id} started; this page follows it.")
    return _report_back(choice)


@require_POST
@project_page
def predictions_apply_view(request: ProjectRequest) -> HttpResponse:
    """Write the suggestions into `model`'s draft (owners and admins), then show the draft on the rules page."""
    if not request.membership.is_admin:
        raise PermissionDenied("Only owners and admins apply suggestions.")
    choice = _choice(request, request.POST.get("model"))
    target = _target(request.POST.get("target"))
    model = prediction_model_active(project=request.project, scoring_model=choice.model)
    if model is None:
        raise Http404("No prediction model has been trained for this scoring model yet.")
    try:
        suggestions_apply(model=model, scoring_model=choice.model, target_precision=target, author=request.user)
    except ApplicationError as error:
        messages.error(request, f"Suggestions not applied: {error.message}")
        return _report_back(choice, target)
    messages.success(request, "Suggestions written into the draft; preview it below, nothing is live until published.")
    return redirect(reverse("scoring:rule_list") + choice.query)


@project_page
def training_job_view(request: ProjectRequest, job_id: int) -> HttpResponse:
    """A training job as the API shows it, for the page's script to poll (signed-in session)."""
    try:
        job = training_job_get(project=request.project, job_id=job_id)
    except NotFound:
        raise Http404 from None
    return JsonResponse(TrainingJobSerializer(job).data)
