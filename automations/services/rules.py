"""Automation rules: create, change and delete them, vetting each action's config first."""

from typing import Any

from django.db import transaction

from accounts.models import Project
from core.errors import ApplicationError
from core.pipeline import lead_listeners_changed
from scoring.selectors import scoring_model_exists

from .. import actions, config_schema
from ..models import AutomationRule
from .recipients import recipients_validate
from .subscriptions import url_validate

RULE_FIELDS = (
    "name",
    "is_active",
    "trigger",
    "trigger_config",
    "lead_conditions",
    "action",
    "action_config",
    "cooldown_seconds",
)


def _action_config_prepare(action_key: str, config: dict[str, Any], *, project: Project) -> dict[str, Any]:
    """Vet the config's URLs (public hosts only) and recipients (members or verified), then let the action finish it."""
    action = actions.registry.get(action_key)
    if action is None:
        raise ApplicationError(f"Unknown action {action_key!r}.", field="action", code="invalid")
    for setting in action.config:
        if setting.name not in config and not setting.required:
            continue
        path = f"actionConfig.{setting.name}"
        if isinstance(setting, config_schema.Url):
            url_validate(config.get(setting.name, ""), field=path)
        elif isinstance(setting, config_schema.Emails):
            recipients_validate(project=project, addresses=config.get(setting.name, []), field=path)
    return action.prepare(config, project=project)


def _trigger_model_check(config: dict[str, Any], *, project: Project) -> None:
    """A trigger that names a scoring model names one of the project's."""
    key = config.get("model")
    if key and not scoring_model_exists(project=project, key=key):
        raise ApplicationError("The project has no scoring model with this key.", field="triggerConfig.model")


@transaction.atomic
def automation_create(*, project: Project, data: dict[str, Any]) -> AutomationRule:
    data = {k: v for k, v in data.items() if k in RULE_FIELDS}
    _trigger_model_check(data.get("trigger_config") or {}, project=project)
    data["action_config"] = _action_config_prepare(data["action"], data.get("action_config", {}), project=project)
    lead_listeners_changed(project_id=project.id)
    return AutomationRule.objects.create(project=project, **data)


@transaction.atomic
def automation_update(*, rule: AutomationRule, data: dict[str, Any]) -> AutomationRule:
    previous_secret = rule.action_config.get("secret")
    changed = [field for field in RULE_FIELDS if field in data and getattr(rule, field) != data[field]]
    if "trigger_config" in changed:
        _trigger_model_check(data["trigger_config"] or {}, project=rule.project)
    for field in changed:
        setattr(rule, field, data[field])
    if "action" in changed or "action_config" in changed:
        # the signing secret survives a changed URL: receivers keep verifying
        config = (
            {"secret": previous_secret, **data.get("action_config", rule.action_config)}
            if previous_secret
            else {**data.get("action_config", rule.action_config)}
        )
        rule.action_config = _action_config_prepare(rule.action, config, project=rule.project)
        changed.append("action_config")
    if changed:
        rule.save(update_fields=[*set(changed), "updated_at"])
        lead_listeners_changed(project_id=rule.project_id)
    return rule


@transaction.atomic
def automation_delete(*, rule: AutomationRule) -> None:
    lead_listeners_changed(project_id=rule.project_id)
    rule.delete()
