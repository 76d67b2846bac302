"""The lead page's outcome card posts here: record or clear, then back to the lead."""

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
