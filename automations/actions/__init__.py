"""Actions: what an automation rule does when it fires. One module each, registered once.

An action module defines an `Action` subclass decorated with `@registry.register`: its key (stored in
`AutomationRule.action`), label, config schema, `prepare()` (when a rule is saved) and `execute()` (when
it fires, in a worker). The model's choices, the API's validation and OpenAPI document, the page and
`automation_execute` read this registry; `autodiscover()` (from the app's `ready()`) imports every module
of this package. Action modules use the app's services, so this package's own module imports none.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ..config_schema import ConfigSchema
from ..registry import Registry
from ..registry import autodiscover as _autodiscover

if TYPE_CHECKING:
    from accounts.models import Project
    from ingest.models import Lead

    from ..models import AutomationExecution, AutomationRule

KEY_MAX_LENGTH = 16  # AutomationRule.action's column


@dataclass(frozen=True)
class ActionRun:
    """One claimed execution to carry out: of a lead's rule, or of a company's (`lead` None, `company` set)."""

    execution: "AutomationExecution"
    rule: "AutomationRule"
    lead: "Lead | None"
    document: dict[str, Any]  # the lead as payloads carry it ({} for a company)
    company: dict[str, Any] | None = None  # the company as payloads carry it: id, name, domain, score, stage, model
    member: dict[str, Any] | None = None  # the member lead that moved the company, if one did

    @property
    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = self.rule.action_config
        return config

    @property
    def subject(self) -> dict[str, Any]:
        """What the rule fired for, as payloads carry it: `{"lead": …}` or `{"company": …, "member": …}`."""
        if self.company is not None:
            return {"company": self.company, "member": self.member}
        return {"lead": self.document}

    def the_lead(self) -> "Lead":
        """The lead of a lead's rule (an action of leads only: rules of companies cannot choose it)."""
        if self.lead is None:
            raise LookupError(f"the {self.rule.action} action needs a lead")
        return self.lead


@dataclass(frozen=True)
class Outcome:
    """How an execution ended: `delivering` leaves its status to the webhook delivery it queued."""

    status: Literal["succeeded", "skipped", "delivering"]
    reason: str = ""


SUCCEEDED = Outcome("succeeded")
DELIVERING = Outcome("delivering")


class Action:
    key: ClassVar[str]
    label: ClassVar[str]
    position: ClassVar[int] = 1000  # where pages and the OpenAPI document list it
    config: ClassVar[ConfigSchema] = ConfigSchema()
    example: ClassVar[dict[str, Any]] = {}  # a valid config, for the docs and the page
    # the triggers' subjects it can act on (`Trigger.subject`): add_tag needs a lead, a webhook posts either
    subjects: ClassVar[tuple[str, ...]] = ("lead",)

    def prepare(self, config: dict[str, Any], *, project: "Project") -> dict[str, Any]:
        """The config to store, once its URLs and recipients are vetted (e.g. with a new signing secret)."""
        return config

    def execute(self, run: ActionRun) -> Outcome:
        """Carry out the action; raising marks the execution failed."""
        raise NotImplementedError


registry: Registry[Action] = Registry("action", key_max_length=KEY_MAX_LENGTH)
register = registry.register


def choices() -> list[tuple[str, str]]:
    """(key, label) of every registered action: the model field's choices (a callable, so no migration per action)."""
    return registry.choices()


def secret_config_keys() -> set[str]:
    """Config keys some action keeps secret: never shown after the response that set them, whatever the action."""
    return {name for action in registry for name in action.config.secret_names()}


def autodiscover() -> None:
    _autodiscover(__name__)
