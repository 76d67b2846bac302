"""Reads of the companies app, always scoped to a project."""

from typing import TYPE_CHECKING

from core.errors import NotFound

from .models import Company, CompanyScoreHistory

if TYPE_CHECKING:
    from accounts.models import Project
    from scoring.models import ScoringModel

COMPANY_HISTORY_LIMIT = 500


def company_history(
    *,
    project: "Project",
    company_id: int | str,
    model: "ScoringModel | None" = None,
    limit: int = COMPANY_HISTORY_LIMIT,
) -> list[CompanyScoreHistory]:
    """The company's latest score and stage changes, newest first: under one model, or under every model.

    Another project's company (or none) is not found.
    """
    try:
        company = Company.objects.filter(project=project).only("id").get(id=int(company_id))
    except (TypeError, ValueError, Company.DoesNotExist):
        raise NotFound("Company not found.") from None
    rows = CompanyScoreHistory.objects.filter(project=project, company=company)
    if model is not None:
        rows = rows.filter(model_id=model.id)
    return list(rows.select_related("model").order_by("-occurred_at", "-id")[: max(limit, 0)])
