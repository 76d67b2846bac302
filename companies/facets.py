"""The lead facet `associatedCompany` (`core.leadfacets`): each lead's company on the leads list, the lead page,
the lead API and the CSV exports, as HubSpot names a contact's company (the lead's own `company` is the free
text its traits gave). Its score and stage are the primary model's."""

from collections.abc import Mapping, Sequence
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery

from core.errors import ApplicationError
from core.leadfacets import LeadFacet

from .models import CompanyScore
from .selectors import lead_company_results, leads_of_company

KEY = "associatedCompany"
STAGES = ["cold", "warm", "hot", "qualified"]
SCHEMA: dict[str, Any] = {
    "type": "object",
    "nullable": True,
    "description": "The lead's company (account), its score and stage under the primary model; null: none.",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "domain": {"type": "string"},
        "score": {"type": "integer"},
        "stage": {"type": "string", "enum": STAGES},
        "members": {"type": "integer", "description": "The company's member leads."},
    },
    "required": ["id", "name", "domain", "score", "stage", "members"],
}


def company_values(project_id: int, lead_ids: Sequence[int]) -> Mapping[int, Any]:
    return lead_company_results(project_id=project_id, lead_ids=lead_ids)


ID_LIMIT = 2**63 - 1  # a bigint


def company_filter(project_id: int, value: str) -> QuerySet[Any]:
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(ID_LIMIT)) or int(text) > ID_LIMIT:
        raise ApplicationError("Must be a company id.", field=KEY)
    return leads_of_company(project_id=project_id, company_id=int(text))


def company_ordering() -> Subquery:
    # the company's primary score: leads without a company sort last either way (NULLs, as the registry asks)
    return Subquery(
        CompanyScore.objects.filter(company__memberships__lead=OuterRef("pk"), model__is_primary=True).values("score")[
            :1
        ]
    )


def company_export(value: Any) -> str:
    return value["name"] if value else ""


ASSOCIATED_COMPANY = LeadFacet(
    key=KEY,
    label="Company",
    order=10,
    values=company_values,
    schema=SCHEMA,
    description="The lead's company (account): id, name, domain, score and stage under the primary model.",
    column="companies/_lead_company_cell.html",
    card="companies/_lead_company_card.html",
    filter=company_filter,
    filter_description="Only the leads of this company (its id).",
    filter_schema={"type": "integer", "minimum": 1, "maximum": ID_LIMIT},
    ordering=company_ordering,
    export=company_export,
)
