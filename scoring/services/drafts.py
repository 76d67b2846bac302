"""Drafts of a model's rules and settings, published as new versions; rollback publishes an old one again."""

from typing import Any

from django.db import transaction

from accounts.models import User
from core.errors import ApplicationError, NotFound

from ..models import RuleSetDraft, RuleSetVersion, ScoringModel, ScoringRule
from .rules import rescore_job_start
from .versions import RULE_DEFAULTS, VERSION_RULE_FIELDS, VERSION_SETTINGS_FIELDS, model_document, version_publish


def draft_save(*, model: ScoringModel, document: dict[str, Any], author: User | None = None) -> RuleSetDraft:
    """Store the model's draft (a validated document: settings and the whole rule list), replacing any other."""
    # an edited draft keeps the version it started from (the page warns when live has moved on since)
    draft, _ = RuleSetDraft.objects.update_or_create(
        model=model,
        defaults={"project_id": model.project_id, "document": document, "author": author},
        create_defaults={"project_id": model.project_id, "document": document, "author": author,
                         "base_version": model.version},
    )  # fmt: skip
    return draft


def draft_start(*, model: ScoringModel, author: User | None = None) -> RuleSetDraft:
    """The model's draft; a new one is a copy of the live rules and settings."""
    draft = RuleSetDraft.objects.filter(model=model).first()
    return draft or draft_save(model=model, document=model_document(model=model), author=author)


def draft_rule_save(
    *, draft: RuleSetDraft, data: dict[str, Any], index: int | None = None, author: User | None = None
) -> RuleSetDraft:
    """Change the draft's rule at `index` to `data` (validated rule fields), or add `data` as a new rule."""
    rules = [dict(rule) for rule in draft.document["rules"]]
    if index is None:
        rules.append({**RULE_DEFAULTS, **data})
    else:
        rules[_position(rules, index)] = {**rules[index], **data}
    return draft_save(model=draft.model, document={**draft.document, "rules": rules}, author=author)


def draft_rule_remove(*, draft: RuleSetDraft, index: int, author: User | None = None) -> RuleSetDraft:
    """Leave the draft's rule at `index` out (publishing deletes the live rule it was)."""
    rules = list(draft.document["rules"])
    del rules[_position(rules, index)]
    return draft_save(model=draft.model, document={**draft.document, "rules": rules}, author=author)


def draft_settings_save(*, draft: RuleSetDraft, data: dict[str, Any], author: User | None = None) -> RuleSetDraft:
    """Change some of the draft's settings (validated)."""
    document = {**draft.document, "settings": {**draft.document["settings"], **data}}
    return draft_save(model=draft.model, document=document, author=author)


def _position(rules: list[dict[str, Any]], index: int) -> int:
    if not 0 <= index < len(rules):
        raise NotFound("The draft has no rule at this position.")
    return index


def draft_discard(*, model: ScoringModel) -> None:
    RuleSetDraft.objects.filter(model=model).delete()


@transaction.atomic
def draft_publish(*, model: ScoringModel, author: User | None = None, note: str = "") -> RuleSetVersion:
    """Make the draft live: a new version, and a re-score with it."""
    draft = RuleSetDraft.objects.select_for_update().filter(model=model).first()
    if draft is None:
        raise ApplicationError("The model has no draft to publish.", code="no_draft", status_code=409)
    version = _document_publish(model=model, document=draft.document, author=author,
                                note=note or f"draft from v{draft.base_version} published")  # fmt: skip
    draft.delete()
    return version


@transaction.atomic
def version_rollback(*, version: RuleSetVersion, author: User | None = None, note: str = "") -> RuleSetVersion:
    """Publish a copy of an earlier version as the newest one (its rules come back with their ids)."""
    return _document_publish(model=version.model, document=version.document, author=author,
                             note=note or f"rollback to v{version.number}")  # fmt: skip


def _document_publish(
    *, model: ScoringModel, document: dict[str, Any], author: User | None, note: str
) -> RuleSetVersion:
    """Make the model's live rules and settings equal `document`, record the version and re-score.

    A rule of the document with an id the model has is updated; with the id of a rule deleted since,
    it is created again under that id (ids are never reused), so history rows citing it stay explained;
    without an id (new in a draft) it is created. The model's other rules are deleted.
    """
    model = ScoringModel.objects.select_for_update().get(id=model.id)
    live = {rule.id: rule for rule in ScoringRule.objects.filter(model=model)}
    kept: set[int] = set()
    fields = [field for field in VERSION_RULE_FIELDS if field != "id"]
    for data in document["rules"]:
        values = {field: data.get(field, RULE_DEFAULTS.get(field)) for field in fields}
        rule_id = data.get("id")
        if rule_id in live:
            rule = live[rule_id]
            changed = [field for field in fields if getattr(rule, field) != values[field]]
            for field in changed:
                setattr(rule, field, values[field])
            if changed:
                rule.save(update_fields=[*changed, "updated_at"])
            kept.add(rule_id)
        elif rule_id is not None and not ScoringRule.objects.filter(id=rule_id).exists():
            ScoringRule.objects.create(id=rule_id, project_id=model.project_id, model=model, **values)
        else:
            ScoringRule.objects.create(project_id=model.project_id, model=model, **values)
    ScoringRule.objects.filter(model=model).exclude(id__in=kept).filter(id__in=list(live)).delete()
    settings = document["settings"]
    for field in VERSION_SETTINGS_FIELDS:
        setattr(model, field, settings[field])
    model.save(update_fields=[*VERSION_SETTINGS_FIELDS, "updated_at"])
    version = version_publish(model=model, author=author, note=note)
    rescore_job_start(project=model.project, reason=f"{model.key} v{version.number}: {note}"[:200])
    return version
