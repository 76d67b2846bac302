"""Dashboard pages of the scoring app: leads, a lead, rules, scoring models."""

from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.scoping import ProjectRequest, project_page
from core.charts import time_chart
from core.errors import ApplicationError, NotFound
from core.leadfacets import lead_facets
from ingest.selectors import condition_suggestions_for_project

from .forms import (
    ADJUSTMENT_ERROR_FIELDS,
    AdjustmentForm,
    LeadFilterForm,
    RuleForm,
    ScoringModelCreateForm,
    ScoringModelUpdateForm,
    ScoringSettingsForm,
)
from .models import RuleSetDraft, ScoringModel, ScoringRule
from .selectors import (
    ModelChoice,
    adjustment_label,
    document_rows,
    draft_get,
    draft_preview,
    lead_adjustments,
    lead_get,
    lead_intelligence,
    lead_score_at_version,
    lead_score_breakdown,
    lead_score_history,
    lead_timeline,
    leads_export_csv,
    leads_for_project,
    leads_model_scores,
    rescore_jobs_recent,
    rule_get,
    rules_for_project,
    rules_preview_with,
    scoring_model_choice,
    scoring_model_get,
    scoring_models_for_project,
    scoring_models_with_rule_counts,
    version_get,
    versions_diff,
    versions_for_model,
)
from .services import rule_create, rule_delete, rule_update, scoring_settings_update
from .services.adjustments import adjustment_author, lead_adjust
from .services.drafts import (
    draft_discard,
    draft_publish,
    draft_rule_remove,
    draft_rule_save,
    draft_settings_save,
    draft_start,
    version_rollback,
)
from .services.models import (
    scoring_model_create,
    scoring_model_delete,
    scoring_model_primary_set,
    scoring_model_update,
)

T = TypeVar("T")
LEADS_PER_PAGE = 50
LEAD_VERSIONS_LISTED = 100  # the newest versions in the lead page's "score under version" select
LEAD_ADJUSTMENTS_LISTED = 20  # the newest manual adjustments on the lead page


def _or_404(selector: Callable[..., T], **kwargs: Any) -> T:
    try:
        return selector(**kwargs)
    except NotFound:
        raise Http404 from None


def _can_edit(request: ProjectRequest) -> bool:
    return request.membership.is_admin


def _require_editor(request: ProjectRequest) -> None:
    if not _can_edit(request):
        raise PermissionDenied("Only owners and admins change scoring.")


def _model_choice(request: ProjectRequest, key: str | None = None) -> ModelChoice:
    """The model the page shows: `key`, else the request's `?model=` (the primary one without); 404 if unknown."""
    return _or_404(scoring_model_choice, project=request.project, key=key or request.GET.get("model"))


def _switcher(request: ProjectRequest, choice: ModelChoice, action: str = "") -> dict[str, Any]:
    """The model switcher's context: the choice, the page it goes to and the other query parameters it keeps."""
    keep = [(name, value) for name, values in request.GET.lists() if name not in ("model", "page") for value in values]
    return {"choice": choice, "keep": keep, "action": action}


def _filtered_leads(request: ProjectRequest, model: ScoringModel | None = None) -> tuple[LeadFilterForm, Any]:
    form = LeadFilterForm(request.GET or None)
    form.is_valid()  # an unknown stage or ordering is shown as an error and ignored
    filters = form.filters()

    def leads(facets: dict[str, str | None]) -> Any:
        return leads_for_project(
            project=request.project, search=filters["search"], stage=filters["stage"],
            ordering=filters["ordering"], model=model, matrix=filters["matrix"], facets=facets,
        )  # fmt: skip

    try:
        return form, leads(form.facet_filters())
    except ApplicationError as error:  # a facet's filter it cannot read: shown as an error and ignored
        form.add_error(error.field if error.field in form.fields else None, error.message)
        return form, leads({})


@project_page
def lead_list_view(request: ProjectRequest) -> HttpResponse:
    """The project's leads: search, stage and matrix filters, sortable columns, 50 a page; scores, stages and
    matrix cells of `?model=`."""
    choice = _model_choice(request)
    form, leads = _filtered_leads(request, model=choice.model)
    page = Paginator(leads, LEADS_PER_PAGE).get_page(request.GET.get("page"))
    results = None
    if not choice.model.is_primary:  # the primary's results are the lead's own columns
        scores = leads_model_scores(project=request.project, lead_ids=[lead.id for lead in page.object_list])
        results = {lead.id: scores.for_lead(lead)[choice.model.key] for lead in page.object_list}
    ids = [lead.id for lead in page.object_list]
    values = lead_facets.values_for(project_id=request.project.id, lead_ids=ids)
    columns = [facet for facet in lead_facets if facet.column]
    for lead in page.object_list:  # the row's cells of the lead facets' columns
        lead.facet_cells = [(facet, values[facet.key].get(lead.id)) for facet in columns]
    rows = [(lead, _primary_result(lead) if results is None else results[lead.id]) for lead in page.object_list]
    switcher = _switcher(request, choice)
    sort = form.sort_links()
    active = [(facet, value) for facet in lead_facets.filters() if (value := form.facet_filters()[facet.key])]
    context = {
        "form": form, "page": page, "rows": rows, "sort": sort, "switcher": switcher,
        "facet_columns": [(facet, sort.get(facet.key)) for facet in columns],
        # each filter in force, and the query string without it
        "facet_filters": [(facet, value, _query_without(request, facet.key)) for facet, value in active],
    }  # fmt: skip
    return render(request, "scoring/leads.html", context)


def _query_without(request: ProjectRequest, *names: str) -> str:
    query = request.GET.copy()
    for name in (*names, "page"):
        query.pop(name, None)
    return query.urlencode()


def _primary_result(lead: Any) -> dict[str, Any]:
    return {"score": lead.current_score, "stage": lead.lead_stage, "engagement": lead.engagement_score,
            "fit": lead.fit_score, "grade": lead.fit_grade, "cell": lead.matrix_cell}  # fmt: skip


@project_page
def lead_export_view(request: ProjectRequest) -> StreamingHttpResponse:
    """The same filtered leads as CSV, streamed, formula-safe: the leads `?model=` selects and orders (its
    stages and matrix cells), with every model's scores in their columns."""
    _, leads = _filtered_leads(request, model=_model_choice(request).model)
    response = StreamingHttpResponse(leads_export_csv(leads=leads), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="leads.csv"'
    return response


@project_page
def lead_detail_view(request: ProjectRequest, lead_id: int) -> HttpResponse:
    """A lead (the survivor of a merge): score chart, timeline, breakdown, intelligence, traits, merges.

    Score, stage, chart and timeline deltas are `?model=`'s; a table shows every model's score and stage;
    `?version=N` adds the lead's score under that version of the model, recomputed from its log.
    """
    return _lead_render(request, lead_id)


@require_POST
@project_page
def lead_adjust_view(request: ProjectRequest, lead_id: int) -> HttpResponse:
    """Adjust a lead's score by hand (any member), as the API does; then back to the lead, or its errors."""
    lead = _or_404(lead_get, project=request.project, lead_id=lead_id)
    models = list(scoring_models_for_project(project=request.project))
    form = AdjustmentForm(request.POST, models=models)
    if form.is_valid():
        model = next(m for m in models if m.key == form.cleaned_data["model"])
        points, set_to = form.points_or_set_to()
        try:
            adjusted = lead_adjust(lead=lead, points=points, set_to=set_to, reason=form.cleaned_data["reason"],
                                   model=model, author=adjustment_author(user=request.user),
                                   idempotency_key=form.cleaned_data["token"] or None)  # fmt: skip
        except ApplicationError as error:
            form.add_error(ADJUSTMENT_ERROR_FIELDS.get(error.field or ""), error.message)
        else:
            done = " (made already: this form was sent twice)" if adjusted.replayed else ""
            done += "" if adjusted.scored else " It is scored in a moment."
            messages.success(request, f"{adjustment_label(adjusted.event.properties)}.{done}")
            query = "" if model.is_primary else f"?model={model.key}"
            return redirect(reverse("scoring:lead_detail", args=[adjusted.lead.id]) + query)
    # the page of the model the person adjusts (the form posts no ?model=), or the request's when none is known
    posted = request.POST.get("model")
    key = posted if any(m.key == posted for m in models) else None
    return _lead_render(request, lead.id, adjustment_form=form, status=400, key=key)


def _lead_render(
    request: ProjectRequest,
    lead_id: int,
    *,
    adjustment_form: AdjustmentForm | None = None,
    status: int = 200,
    key: str | None = None,
) -> HttpResponse:
    """The lead page (under model `key`, else the request's), with the adjustment form as posted (and its errors)
    when it was not valid."""
    choice = _model_choice(request, key)
    lead = _or_404(lead_get, project=request.project, lead_id=lead_id)
    model = choice.model
    history = lead_score_history(lead=lead, model=model)
    chart = time_chart(
        points=[(row.occurred_at, row.new_score) for row in history["points"]],
        until=timezone.now(),
        title="Score over time" if model.is_primary else f"Score over time ({model.name})",
        nonce=request.csp_nonce,
    )
    scores = leads_model_scores(project=request.project, lead_ids=[lead.id]).for_lead(lead)
    requested = request.GET.get("version")
    at_version = None
    if requested:
        version = _or_404(version_get, model=model, number=requested)
        at_version = lead_score_at_version(lead=lead, model=model, version=version)
    context = {
        "versions": versions_for_model(model=model)[:LEAD_VERSIONS_LISTED],
        "at_version": at_version,
        "lead": lead,
        "result": scores[model.key],
        "model_scores": [(m, scores[m.key]) for m in choice.models],
        "chart": chart,
        "history": history,
        "timeline": list(reversed(lead_timeline(lead=lead, model=model))),
        "breakdown": lead_score_breakdown(lead=lead, model=model),  # the model shown, its adjustments with it
        "intelligence": lead_intelligence(lead=lead),
        "switcher": _switcher(request, choice),
        "adjustments": lead_adjustments(lead=lead, limit=LEAD_ADJUSTMENTS_LISTED),
        "adjustment_form": adjustment_form or AdjustmentForm(models=list(choice.models), initial={"model": model.key}),
        "facet_cards": _facet_cards(request, lead),
    }
    return render(request, "scoring/lead.html", context, status=status)


def _facet_cards(request: ProjectRequest, lead: Any) -> list[tuple[Any, Any]]:
    """The lead facets' cards for the lead page (`core.leadfacets`): (facet, the lead's value)."""
    cards = [facet for facet in lead_facets if facet.card]
    values = lead_facets.values_for(project_id=request.project.id, lead_ids=[lead.id]) if cards else {}
    return [(facet, values[facet.key].get(lead.id)) for facet in cards]


def _rules_render(
    request: ProjectRequest,
    *,
    choice: ModelChoice,
    rule_form: RuleForm | None = None,
    settings_form: ScoringSettingsForm | None = None,
    editing: ScoringRule | None = None,
    preview: dict[str, Any] | None = None,
    draft_preview: dict[str, Any] | None = None,
    editing_index: int | None = None,
    status: int = 200,
) -> HttpResponse:
    """The rules page: the model's live rules and settings, or its draft's when it has one."""
    project, model = request.project, choice.model
    draft = _draft_or_none(model)
    if draft is None:
        settings_model, rules = model, list(rules_for_project(project=project, model=model))
    else:
        settings_model, rules = document_rows(model=model, document=draft.document)
    indexed = list(enumerate(rules))
    context = {
        "engagement_rules": [rule for rule in rules if rule.kind == ScoringRule.Kind.ENGAGEMENT],
        "fit_rules": [rule for rule in rules if rule.kind == ScoringRule.Kind.FIT],
        "draft_engagement_rules": [(i, rule) for i, rule in indexed if rule.kind == ScoringRule.Kind.ENGAGEMENT],
        "draft_fit_rules": [(i, rule) for i, rule in indexed if rule.kind == ScoringRule.Kind.FIT],
        "draft": draft,
        "draft_preview": draft_preview,
        "editing_index": editing_index,
        "rule_form": rule_form or RuleForm(),
        "settings_form": settings_form or ScoringSettingsForm(model=settings_model),
        "editing": editing,
        "preview": preview,
        "jobs": rescore_jobs_recent(project=project),
        "suggestions": condition_suggestions_for_project(project=project),
        "can_edit": _can_edit(request),
        "switcher": _switcher(request, choice, action=reverse("scoring:rule_list")),
    }
    return render(request, "scoring/rules.html", context, status=status)


def _draft_or_none(model: ScoringModel) -> RuleSetDraft | None:
    try:
        return draft_get(model=model)
    except NotFound:
        return None


def _rules_redirect(choice: ModelChoice) -> HttpResponse:
    return redirect(reverse("scoring:rule_list") + choice.query)


def _rule_form_response(request: ProjectRequest, rule: ScoringRule | None) -> HttpResponse:
    """Show the rule form; on POST preview it (saving nothing) or save it (owners and admins).

    A new rule goes to `?model=`'s rules; an existing one stays in its own model.
    """
    previewing = "preview" in request.POST
    if request.method == "POST" and not previewing:
        _require_editor(request)
    choice = _model_choice(request, key=rule.model.key if rule is not None else None)
    form = RuleForm(request.POST if request.method == "POST" else None, rule=rule)
    if not form.is_valid():
        return _rules_render(request, choice=choice, rule_form=form, editing=rule)
    project = request.project
    if previewing:
        if not choice.model.is_primary:
            # the preview compares with the leads' primary scores (rules_preview_with): not this model's
            form.add_error(None, "The preview covers the primary model only; save to re-score this model.")
            return _rules_render(request, choice=choice, rule_form=form, editing=rule)
        preview = rules_preview_with(project=project, data=form.validated_data, rule=rule)
        return _rules_render(request, choice=choice, rule_form=form, editing=rule, preview=preview)
    if rule is None:
        rule_create(project=project, data=form.validated_data, model=choice.model)
    else:
        rule_update(rule=rule, data=form.validated_data)
    messages.success(request, "Rule saved; the project is being re-scored.")
    return _rules_redirect(choice)


@project_page
def rule_list_view(request: ProjectRequest) -> HttpResponse:
    """`?model=`'s engagement and fit rules, thresholds and decay, re-score progress; a POST previews or adds a rule."""
    return _rule_form_response(request, rule=None)


@project_page
def rule_update_view(request: ProjectRequest, rule_id: int) -> HttpResponse:
    rule = _or_404(rule_get, project=request.project, rule_id=rule_id)
    return _rule_form_response(request, rule=rule)


@require_POST
@project_page
def rule_toggle_view(request: ProjectRequest, rule_id: int) -> HttpResponse:
    _require_editor(request)
    rule = _or_404(rule_get, project=request.project, rule_id=rule_id)
    rule_update(rule=rule, data={"is_active": not rule.is_active})
    messages.success(request, f"Rule {'activated' if rule.is_active else 'deactivated'}; re-scoring.")
    return _rules_redirect(_model_choice(request, key=rule.model.key))


@require_POST
@project_page
def rule_delete_view(request: ProjectRequest, rule_id: int) -> HttpResponse:
    _require_editor(request)
    rule = _or_404(rule_get, project=request.project, rule_id=rule_id)
    choice = _model_choice(request, key=rule.model.key)
    rule_delete(rule=rule)
    messages.success(request, "Rule deleted; re-scoring.")
    return _rules_redirect(choice)


@require_POST
@project_page
def scoring_settings_update_view(request: ProjectRequest) -> HttpResponse:
    """`?model=`'s thresholds, score range and decay; a change re-scores the project."""
    _require_editor(request)
    choice = _model_choice(request)
    form = ScoringSettingsForm(request.POST, model=choice.model)
    if not form.is_valid():
        return _rules_render(request, choice=choice, settings_form=form)
    scoring_settings_update(model=choice.model, data=form.validated_data)
    messages.success(request, "Settings saved; the project is being re-scored.")
    return _rules_redirect(choice)


@project_page
def rescore_job_list_view(request: ProjectRequest) -> HttpResponse:
    """The re-score progress block alone, for the rules page to refresh."""
    jobs = rescore_jobs_recent(project=request.project)
    return render(request, "scoring/_rescore_jobs.html", {"jobs": jobs})


# Scoring models


def _models_render(
    request: ProjectRequest,
    *,
    create_form: ScoringModelCreateForm | None = None,
    editing: ScoringModel | None = None,
    update_form: ScoringModelUpdateForm | None = None,
    status: int = 200,
) -> HttpResponse:
    models = list(scoring_models_with_rule_counts(project=request.project))
    context = {
        "models": models,
        "create_form": create_form or ScoringModelCreateForm(models=models),
        "editing": editing,
        "update_form": update_form,
        "can_edit": _can_edit(request),
    }
    return render(request, "scoring/models.html", context, status=status)


@project_page
def scoring_model_list_view(request: ProjectRequest) -> HttpResponse:
    """The project's scoring models with their rule counts and thresholds; a POST creates one (owners and admins)."""
    if request.method != "POST":
        return _models_render(request)
    _require_editor(request)
    form = ScoringModelCreateForm(request.POST, models=list(scoring_models_for_project(project=request.project)))
    if not form.is_valid():
        return _models_render(request, create_form=form)
    data = dict(form.validated_data)
    source = data.pop("copyFrom", None)
    copy_from = _or_404(scoring_model_get, project=request.project, key=source) if source else None
    try:
        model = scoring_model_create(project=request.project, data=data, copy_from=copy_from)
    except ApplicationError as error:  # the key is taken, or the project has all the models it may have
        form.add_error("key" if error.field == "key" else None, error.message)
        return _models_render(request, create_form=form, status=error.status_code)
    messages.success(request, f"Model {model.key} created; the project is being re-scored to fill it in.")
    return redirect("scoring:scoring_model_list")


@project_page
def scoring_model_update_view(request: ProjectRequest, key: str) -> HttpResponse:
    """Rename or describe a model (owners and admins)."""
    model = _or_404(scoring_model_get, project=request.project, key=key)
    if request.method != "POST":
        return _models_render(request, editing=model, update_form=ScoringModelUpdateForm(model=model))
    _require_editor(request)
    form = ScoringModelUpdateForm(request.POST, model=model)
    if not form.is_valid():
        return _models_render(request, editing=model, update_form=form)
    scoring_model_update(model=model, data=form.validated_data)
    messages.success(request, f"Model {model.key} saved.")
    return redirect("scoring:scoring_model_list")


@require_POST
@project_page
def scoring_model_primary_set_view(request: ProjectRequest, key: str) -> HttpResponse:
    """Make a model the primary one: it drives every lead's score and stage (owners and admins)."""
    _require_editor(request)
    model = scoring_model_primary_set(model=_or_404(scoring_model_get, project=request.project, key=key))
    messages.success(request, f"{model.name} ({model.key}) is now the primary model.")
    return redirect("scoring:scoring_model_list")


@project_page
def scoring_model_delete_view(request: ProjectRequest, key: str) -> HttpResponse:
    """Ask, then delete a model with its rules, scores and history (owners and admins); never the primary one."""
    model = _or_404(scoring_model_get, project=request.project, key=key)
    if request.method != "POST":
        return render(request, "scoring/model_delete.html", {"model": model, "can_edit": _can_edit(request)})
    _require_editor(request)
    try:
        scoring_model_delete(model=model)
    except ApplicationError as error:  # the primary one
        messages.error(request, error.message)
        return redirect("scoring:scoring_model_list")
    messages.success(request, f"Model {key} deleted.")
    return redirect("scoring:scoring_model_list")


# Drafts on the rules page: members edit a copy of the live rules and settings; admins publish it.


def _draft_of(request: ProjectRequest) -> tuple[ModelChoice, RuleSetDraft]:
    choice = _model_choice(request)
    return choice, _or_404(draft_get, model=choice.model)


@require_POST
@project_page
def rule_draft_start_view(request: ProjectRequest) -> HttpResponse:
    """Start a draft of `?model=`'s rules and settings: a copy of the live ones (members)."""
    choice = _model_choice(request)
    draft = draft_start(model=choice.model, author=request.user)
    messages.success(request, f"Draft started from v{draft.base_version}; nothing changes until it is published.")
    return _rules_redirect(choice)


def _draft_rule_response(request: ProjectRequest, index: int | None) -> HttpResponse:
    """Show a draft rule in the rule form; on POST write it into the draft (members)."""
    choice, draft = _draft_of(request)
    document = draft.document
    if index is not None and not 0 <= index < len(document["rules"]):
        raise Http404
    _, rules = document_rows(model=choice.model, document=document)
    rule = rules[index] if index is not None else None
    form = RuleForm(request.POST if request.method == "POST" else None, rule=rule)
    if not form.is_valid():
        status = 400 if form.is_bound else 200
        return _rules_render(request, choice=choice, rule_form=form, editing_index=index, status=status)
    draft_rule_save(draft=draft, data=form.validated_data, index=index, author=request.user)
    messages.success(request, "Rule saved in the draft; nothing is live yet.")
    return _rules_redirect(choice)


@require_POST
@project_page
def rule_draft_create_view(request: ProjectRequest) -> HttpResponse:
    return _draft_rule_response(request, index=None)


@project_page
def rule_draft_update_view(request: ProjectRequest, index: int) -> HttpResponse:
    return _draft_rule_response(request, index=index)


@require_POST
@project_page
def rule_draft_delete_view(request: ProjectRequest, index: int) -> HttpResponse:
    choice, draft = _draft_of(request)
    if not 0 <= index < len(draft.document["rules"]):
        raise Http404
    draft_rule_remove(draft=draft, index=index, author=request.user)
    messages.success(request, "Rule removed from the draft; nothing is live yet.")
    return _rules_redirect(choice)


@require_POST
@project_page
def rule_draft_settings_view(request: ProjectRequest) -> HttpResponse:
    """Write thresholds, score range and decay into the draft (members)."""
    choice, draft = _draft_of(request)
    settings_model, _ = document_rows(model=choice.model, document=draft.document)
    form = ScoringSettingsForm(request.POST, model=settings_model)
    if not form.is_valid():
        return _rules_render(request, choice=choice, settings_form=form, status=400)
    draft_settings_save(draft=draft, data=form.validated_data, author=request.user)
    messages.success(request, "Settings saved in the draft; nothing is live yet.")
    return _rules_redirect(choice)


@require_POST
@project_page
def rule_draft_preview_view(request: ProjectRequest) -> HttpResponse:
    """The rules page with what publishing the draft would do to the leads, saving nothing (members)."""
    choice, draft = _draft_of(request)
    return _rules_render(request, choice=choice, draft_preview=draft_preview(model=choice.model, draft=draft))


@require_POST
@project_page
def rule_draft_publish_view(request: ProjectRequest) -> HttpResponse:
    """Make the draft live as the model's next version and re-score (owners and admins)."""
    _require_editor(request)
    choice, _ = _draft_of(request)
    try:
        version = draft_publish(model=choice.model, author=request.user, note=request.POST.get("note", "").strip())
    except ApplicationError as error:  # published or discarded meanwhile by someone else
        messages.error(request, error.message)
        return _rules_redirect(choice)
    messages.success(request, f"Draft published as v{version.number}; the project is being re-scored.")
    return _rules_redirect(choice)


@require_POST
@project_page
def rule_draft_discard_view(request: ProjectRequest) -> HttpResponse:
    choice, _ = _draft_of(request)
    draft_discard(model=choice.model)
    messages.success(request, "Draft discarded; the live rules are unchanged.")
    return _rules_redirect(choice)


# Versions of a model


@project_page
def scoring_model_versions_view(request: ProjectRequest, key: str) -> HttpResponse:
    """A model's versions, newest first, and the difference between two of them (`?number=&against=`)."""
    model = _or_404(scoring_model_get, project=request.project, key=key)
    versions = list(versions_for_model(model=model))
    number = request.GET.get("number") or (versions[0].number if versions else None)
    diff = None
    if number is not None:
        diff = _or_404(versions_diff, model=model, number=number, against=request.GET.get("against"))
    context = {"model": model, "versions": versions, "diff": diff, "can_edit": _can_edit(request)}
    return render(request, "scoring/versions.html", context)


@project_page
def scoring_model_version_rollback_view(request: ProjectRequest, key: str, number: int) -> HttpResponse:
    """Ask, then publish a copy of an earlier version as the model's newest (owners and admins); re-scores."""
    model = _or_404(scoring_model_get, project=request.project, key=key)
    version = _or_404(version_get, model=model, number=number)
    if request.method != "POST":
        # what the rollback changes: from the live version to this one
        diff = versions_diff(model=model, number=number, against=model.version) if model.version else None
        context = {"model": model, "version": version, "diff": diff, "can_edit": _can_edit(request)}
        return render(request, "scoring/version_rollback.html", context)
    _require_editor(request)
    published = version_rollback(version=version, author=request.user, note=request.POST.get("note", "").strip())
    messages.success(request, f"Rolled back to v{number} (published as v{published.number}); a re-score started.")
    return redirect("scoring:scoring_model_versions", key=model.key)
