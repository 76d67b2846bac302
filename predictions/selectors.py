"""Predictions' reads, always within one project: leads' outcomes, the outcomes list, the settings."""

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet

from core.errors import ApplicationError, NotFound
from ingest.models import Lead

from .models import DEFAULT_WON_EVENT_TYPE, Outcome, PredictionSettings

if TYPE_CHECKING:
    from accounts.models import Project

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
