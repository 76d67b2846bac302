"""Scoring models: create, change, make primary and delete; each change re-scores the project."""

from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Subquery
from django.utils import timezone

from accounts.models import Project, User
from core.errors import ApplicationError
from ingest.models import Lead
from ingest.services import lead_tallies_rebuild

from ..models import MODELS_PER_PROJECT, LeadScore, ScoringModel, ScoringRule
from .fold import matrix_cell_sql, model_policy
from .rules import RULE_FIELDS, SETTINGS_FIELDS, rescore_job_start
from .versions import version_publish

MODEL_FIELDS = ("name", "description")


@transaction.atomic
def scoring_model_create(
    *, project: Project, data: dict[str, Any], copy_from: ScoringModel | None = None, author: User | None = None
) -> ScoringModel:
    """Add a model (its settings and rules copied from `copy_from`, else the defaults); re-score to fill it in."""
    # the project row serialises concurrent creations, so the limit holds
    Project.objects.select_for_update().filter(id=project.id).first()
    if ScoringModel.objects.filter(project=project).count() >= MODELS_PER_PROJECT:
        raise ApplicationError(f"A project has at most {MODELS_PER_PROJECT} scoring models.", field="key")
    if ScoringModel.objects.filter(project=project, key=data["key"]).exists():
        raise ApplicationError("The project has a model with this key already.", field="key", code="conflict",
                               status_code=409)  # fmt: skip
    inherited = {field: getattr(copy_from, field) for field in SETTINGS_FIELDS} if copy_from else {}
    fields = {k: v for k, v in data.items() if k in (*MODEL_FIELDS, *SETTINGS_FIELDS)}
    model = ScoringModel.objects.create(project=project, key=data["key"], **{**inherited, **fields})
    if copy_from is not None:
        ScoringRule.objects.bulk_create(
            ScoringRule(project=project, model=model, **{field: getattr(rule, field) for field in RULE_FIELDS})
            for rule in copy_from.rules.order_by("id")
        )
    version_publish(model=model, author=author, note=f"created{f' from {copy_from.key}' if copy_from else ''}")
    rescore_job_start(project=project, reason=f"model {model.key} created")
    return model


@transaction.atomic
def scoring_model_update(*, model: ScoringModel, data: dict[str, Any], author: User | None = None) -> ScoringModel:
    """Rename or describe a model, or change its settings (which re-scores the project)."""
    changed = [f for f in (*MODEL_FIELDS, *SETTINGS_FIELDS) if f in data and getattr(model, f) != data[f]]
    for field in changed:
        setattr(model, field, data[field])
    if changed:
        model.save(update_fields=[*changed, "updated_at"])
    rescored = [field for field in changed if field in SETTINGS_FIELDS]
    if rescored:
        reason = f"{model.key} settings changed: {', '.join(rescored)}"
        version_publish(model=model, author=author, note=reason)
        rescore_job_start(project=model.project, reason=reason)
    return model


@transaction.atomic
def scoring_model_delete(*, model: ScoringModel) -> None:
    """Delete a model with its rules, results and history; the primary one cannot be (make another primary)."""
    if model.is_primary:
        raise ApplicationError(
            "The primary model cannot be deleted: make another model primary first.", field="key", code="conflict",
            status_code=409,
        )  # fmt: skip
    model.delete()


SWAPPED = {  # the lead's column: its LeadScore field
    "current_score": "score",
    "engagement_score": "engagement",
    "fit_score": "fit",
    "fit_grade": "grade",
    "lead_stage": "stage",
    "fold_state": "fold_state",
}


@transaction.atomic
def scoring_model_primary_set(*, model: ScoringModel) -> ScoringModel:
    """Make `model` the one that drives the leads' score columns, with no refold.

    The leads' columns (the old primary's results) become LeadScore rows and the new primary's rows
    become the columns, in a few statements that lock the project's leads, so no fold writes in
    between. Leads the model has not folded yet (it is new) get empty columns, and a re-score
    folds them under it.
    """
    if model.is_primary:
        return model
    project = model.project
    old = ScoringModel.objects.select_for_update().get(project=project, is_primary=True)
    leads = Lead.objects.filter(project=project)
    list(leads.select_for_update(no_key=True).values_list("id", flat=True))  # wait for folds in flight
    now = timezone.now()
    LeadScore.objects.bulk_create(
        (
            LeadScore(project=project, lead_id=row[0], model=old, updated_at=now, **dict(zip(SWAPPED.values(), row[1:],
                                                                                              strict=True)))
            for row in leads.values_list("id", *SWAPPED).iterator(chunk_size=2000)
        ),
        batch_size=2000,
    )  # fmt: skip
    rows = LeadScore.objects.filter(lead=OuterRef("pk"), model=model)
    unfolded = leads.exclude(Exists(rows)).update(
        current_score=0,
        engagement_score=0,
        fit_score=0,
        fit_grade="C",
        lead_stage="cold",
        fold_state={},
        updated_at=now,
    )
    leads.filter(Exists(rows)).update(
        **{column: Subquery(rows.values(field)[:1]) for column, field in SWAPPED.items()}, updated_at=now
    )
    LeadScore.objects.filter(model=model).delete()
    # the cells by the new primary's thresholds (stored with its other results on the lead)
    leads.update(matrix_cell=matrix_cell_sql(grade="fit_grade", engagement="engagement_score",
                                             policy=model_policy(model)))  # fmt: skip
    lead_tallies_rebuild(project_id=project.id)  # every lead's stage, cell and score may have moved
    ScoringModel.objects.filter(id=old.id).update(is_primary=False, updated_at=now)
    ScoringModel.objects.filter(id=model.id).update(is_primary=True, updated_at=now)  # the old one's lock serialises
    model.refresh_from_db()
    if unfolded:  # leads the model has not folded yet (it is new): fold them under it now
        rescore_job_start(project=project, reason=f"model {model.key} made primary")
    return model
