"""Triggers: what a lead (or a company) does or becomes that fires an automation rule. One module each, registered once.

A trigger module defines a `Trigger` subclass decorated with `@registry.register`: its key (stored in
`AutomationRule.trigger`), label, config schema and `fires()`, a pure decision over a lead change (a company
trigger, `subject = "company"`, decides in `company_fires()` over a company change). The
model's choices, the API's validation and OpenAPI document, the page and the engine all read this registry,
and `autodiscover()` (from the app's `ready()`) imports every module of this package.
"""

from typing import Any, ClassVar

from core.contracts import CompanyChange, LeadChange
from scoring.contracts import EventFact

from ..config_schema import ConfigSchema, Text
from ..registry import Registry
from ..registry import autodiscover as _autodiscover

KEY_MAX_LENGTH = 32  # AutomationRule.trigger's column

Change = LeadChange  # a lead change as scoring hands it over (core.contracts)
Fired = dict[str, Any]  # what fired, stored on the execution: {"trigger": key, …details}


class Trigger:
    key: ClassVar[str]
    label: ClassVar[str]
    position: ClassVar[int] = 1000  # where pages and the OpenAPI document list it
    config: ClassVar[ConfigSchema] = ConfigSchema()
    example: ClassVar[dict[str, Any]] = {}  # a valid config, for the docs and the page
    # what it watches: "lead" (lead changes, `fires`) or "company" (company changes, `company_fires`)
    subject: ClassVar[str] = "lead"
    # whether `fires` reads the change's events (loading them costs a query, so only when a rule needs them)
    needs_events: ClassVar[bool] = False

    def fires(self, config: dict[str, Any], change: Change, events: list[EventFact]) -> Fired | None:
        """What fired (for the execution log), or None. Transitions only: entering, crossing."""
        raise NotImplementedError

    def company_fires(self, config: dict[str, Any], change: CompanyChange) -> Fired | None:
        """What fired, or None, for a company trigger: transitions of the company's score or stage only."""
        raise NotImplementedError

    def fired(self, **details: Any) -> Fired:
        return {"trigger": self.key, **details}


# The score and stage triggers watch one of the project's scoring models (issue 14).
MODEL = Text(
    name="model", label="Scoring model", required=False, max_length=50,
    help_text="The key of the scoring model whose score and stage to watch; the primary model when left out.",
)  # fmt: skip

registry: Registry[Trigger] = Registry("trigger", key_max_length=KEY_MAX_LENGTH)
register = registry.register


def choices() -> list[tuple[str, str]]:
    """(key, label) of every registered trigger: the model field's choices (a callable, so no migration per trigger)."""
    return registry.choices()


def autodiscover() -> None:
    _autodiscover(__name__)


def steps(change: Change | CompanyChange) -> list[tuple[tuple[int, str], tuple[int, str]]]:
    """Every ((score, stage) before, after) step the lead (or company) went through, however it was batched."""
    return change.steps()
