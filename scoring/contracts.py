"""What other apps may rely on from scoring, besides its services and selectors.

The vocabulary of rules and conditions (automations match lead changes and events with the
same conditions rules use), re-exported from the pure engine so that no other app depends on
the engine's internals; and the policy, stage and fit functions companies roll member scores up with.
"""

from .engine import (
    CONDITION_FIELDS,
    OPERATORS,
    PATH_PART_LIMIT,
    STAGES,
    Condition,
    ConditionError,
    EventFact,
    Policy,
    Rule,
    compile_condition,
    fit_score,
    stage_for,
)

__all__ = [
    "CONDITION_FIELDS",
    "OPERATORS",
    "PATH_PART_LIMIT",
    "STAGES",
    "Condition",
    "ConditionError",
    "EventFact",
    "Policy",
    "Rule",
    "compile_condition",
    "fit_score",
    "stage_for",
]
