"""The lead facet `outcome`: a lead's won/lost outcome in the lead API, the leads list, the lead page and exports."""

from typing import Any

from core.leadfacets import LeadFacet

from .selectors import leads_outcome_values, leads_with_outcome

OUTCOME_SCHEMA = {
    "type": "object",
    "nullable": True,
    "description": "The lead's outcome; null when none is recorded.",
    "properties": {
        "outcome": {"type": "string", "enum": ["won", "lost"]},
        "value": {"type": "number", "nullable": True},
        "at": {"type": "string", "format": "date-time"},
        "reason": {"type": "string"},
        "source": {"type": "string", "enum": ["api", "csv", "event", "page"]},
    },
    "required": ["outcome", "value", "at", "reason", "source"],
}


def outcome_export(value: Any) -> str:
    return value["outcome"] if value else ""


OUTCOME_FACET = LeadFacet(
    key="outcome",
    label="Outcome",
    order=30,
    values=leads_outcome_values,
    schema=OUTCOME_SCHEMA,
    description="Won or lost, with its value, time, reason and source (null: none recorded).",
    column="predictions/_outcome_column.html",
    card="predictions/_outcome_card.html",
    filter=leads_with_outcome,
    filter_description="Only leads that were `won`, `lost`, or have no outcome (`none`).",
    export=outcome_export,
)
