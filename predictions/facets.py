"""The lead facet `outcome`: a lead's won/lost outcome in the lead API, the leads list, the lead page and exports."""

from typing import Any

from core.leadfacets import LeadFacet

from .selectors import lead_probability_ordering, leads_outcome_values, leads_prediction_values, leads_with_outcome

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
    order=5,
    values=leads_outcome_values,
    schema=OUTCOME_SCHEMA,
    description="Won or lost, with its value, time, reason and source (null: none recorded).",
    column="predictions/_outcome_column.html",
    card="predictions/_outcome_card.html",
    filter=leads_with_outcome,
    filter_description="Only leads that were `won`, `lost`, or have no outcome (`none`).",
    filter_schema={"type": "string", "enum": ["", "won", "lost", "none"]},
    export=outcome_export,
)


PROBABILITY_SCHEMA = {
    "type": "object",
    "nullable": True,
    "description": "The calibrated probability (0-1) that the lead is won, from the primary scoring model's trained "
    "prediction model, with its top 3 factors; null before a model is trained.",
    "properties": {
        "probability": {"type": "number", "minimum": 0, "maximum": 1},
        "factors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "feature": {"type": "string"},
                    "value": {"type": "number"},
                    "contribution": {"type": "number", "description": "Probability points: 0.18 is +18%."},
                    "label": {"type": "string", "description": 'How it reads: "3 pricing_page_visit in 7 days +18%".'},
                },
                "required": ["feature", "value", "contribution", "label"],
            },
        },
    },
    "required": ["probability", "factors"],
}


def probability_export(value: Any) -> str:
    return f"{value['probability']:.4f}" if value else ""


PROBABILITY_FACET = LeadFacet(
    key="conversionProbability",
    label="Win probability",
    order=31,
    values=leads_prediction_values,
    schema=PROBABILITY_SCHEMA,
    description="The probability of being won and its top 3 factors (null: no model trained).",
    column="predictions/_probability_column.html",
    card="predictions/_probability_card.html",
    ordering=lead_probability_ordering,
    export=probability_export,
)
