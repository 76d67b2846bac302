"""Writes of the scoring app."""

from .batch import leads_score, leads_score_drain
from .drafts import draft_save, draft_start
from .fold import lead_lock
from .identity import lead_identify, lead_merge
from .leads import DEFAULT_RULES, events_reconcile, lead_erase, lead_score, lead_update, project_rules_seed
from .rules import (
    decay_materialise,
    rescore_job_run,
    rescore_job_start,
    rule_create,
    rule_delete,
    rule_update,
    scoring_settings_update,
)
from .versions import RULE_DEFAULTS

__all__ = [
    "DEFAULT_RULES",
    "RULE_DEFAULTS",
    "decay_materialise",
    "draft_save",
    "draft_start",
    "events_reconcile",
    "lead_erase",
    "lead_identify",
    "lead_lock",
    "lead_merge",
    "lead_score",
    "lead_update",
    "leads_score",
    "leads_score_drain",
    "project_rules_seed",
    "rescore_job_run",
    "rescore_job_start",
    "rule_create",
    "rule_delete",
    "rule_update",
    "scoring_settings_update",
]
