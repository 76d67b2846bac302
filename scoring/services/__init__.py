"""Writes of the scoring app."""

from .identity import lead_identify, lead_merge
from .leads import DEFAULT_RULES, events_reconcile, lead_score, project_rules_seed

__all__ = [
    "DEFAULT_RULES",
    "events_reconcile",
    "lead_identify",
    "lead_merge",
    "lead_score",
    "project_rules_seed",
]
