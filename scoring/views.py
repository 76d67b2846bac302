"""Dashboard pages of the scoring app: leads, a lead, rules."""

from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.scoping import ProjectRequest, project_page
from core.charts import line_chart
from core.errors import NotFound

from .forms import LeadFilterForm, RuleForm, ScoringSettingsForm
from .models import ScoringRule
from .selectors import (
    lead_get,
    lead_intelligence,
    lead_score_breakdown,
    lead_score_history,
    lead_timeline,
    leads_export_csv,
    leads_for_project,
    rescore_jobs_recent,
    rule_get,
    rules_for_project,
    rules_preview_with,
    scoring_model_get,
)
from .services import rule_create, rule_delete, rule_update, scoring_settings_update

T = TypeVar("T")
LEADS_PER_PAGE = 50


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


def _filtered_leads(request: ProjectRequest) -> tuple[LeadFilterForm, Any]:
    form = LeadFilterForm(request.GET or None)
    form.is_valid()  # an unknown stage or ordering is shown as an error and ignored
    filters = form.filters()
    leads = leads_for_project(
        project=request.project,
        search=filters["search"],
        stage=filters["stage"],
        ordering=filters["ordering"],
    )
    return form, leads


@project_page
def lead_list_view(request: ProjectRequest) -> HttpResponse:
    """The project's leads: search, stage filter, sortable columns, 50 a page."""
    form, leads = _filtered_leads(request)
    page = Paginator(leads, LEADS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "scoring/leads.html", {"form": form, "page": page, "sort": form.sort_links()})


@project_page
def lead_export_view(request: ProjectRequest) -> StreamingHttpResponse:
    """The same filtered leads as CSV, streamed, formula-safe."""
    _, leads = _filtered_leads(request)
    response = StreamingHttpResponse(leads_export_csv(leads=leads), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="leads.csv"'
    return response


@project_page
def lead_detail_view(request: ProjectRequest, lead_id: int) -> HttpResponse:
    """A lead (the survivor of a merge): score chart, timeline, breakdown, intelligence, traits, merges."""
    lead = _or_404(lead_get, project=request.project, lead_id=lead_id)
    history = lead_score_history(lead=lead)
    chart = line_chart(
        labels=[row.occurred_at.strftime("%m-%d %H:%M") for row in history["points"]],
        values=[row.new_score for row in history["points"]],
        title="Score over time",
        nonce=request.csp_nonce,
    )
    context = {
        "lead": lead,
        "chart": chart,
        "history": history,
        "timeline": list(reversed(lead_timeline(lead=lead))),
        "breakdown": lead_score_breakdown(lead=lead),
        "intelligence": lead_intelligence(lead=lead),
    }
    return render(request, "scoring/lead.html", context)


def _rules_render(
    request: ProjectRequest,
    *,
    rule_form: RuleForm | None = None,
    settings_form: ScoringSettingsForm | None = None,
    editing: ScoringRule | None = None,
    preview: dict[str, Any] | None = None,
) -> HttpResponse:
    project = request.project
    rules = list(rules_for_project(project=project))
    context = {
        "engagement_rules": [rule for rule in rules if rule.kind == ScoringRule.Kind.ENGAGEMENT],
        "fit_rules": [rule for rule in rules if rule.kind == ScoringRule.Kind.FIT],
        "rule_form": rule_form or RuleForm(),
        "settings_form": settings_form or ScoringSettingsForm(model=scoring_model_get(project=project)),
        "editing": editing,
        "preview": preview,
        "jobs": rescore_jobs_recent(project=project),
        "can_edit": _can_edit(request),
    }
    return render(request, "scoring/rules.html", context)


def _rule_form_response(request: ProjectRequest, rule: ScoringRule | None) -> HttpResponse:
    """Show the rule form; on POST preview it (saving nothing) or save it (owners and admins)."""
    previewing = "preview" in request.POST
    if request.method == "POST" and not previewing:
        _require_editor(request)
    form = RuleForm(request.POST if request.method == "POST" else None, rule=rule)
    if not form.is_valid():
        return _rules_render(request, rule_form=form, editing=rule)
    project = request.project
    if previewing:
        preview = rules_preview_with(project=project, data=form.validated_data, rule=rule)
        return _rules_render(request, rule_form=form, editing=rule, preview=preview)
    if rule is None:
        rule_create(project=project, data=form.validated_data)
    else:
        rule_update(rule=rule, data=form.validated_data)
    messages.success(request, "Rule saved; the project is being re-scored.")
    return redirect("scoring:rule_list")


@project_page
def rule_list_view(request: ProjectRequest) -> HttpResponse:
    """Engagement and fit rules, thresholds and decay, re-score progress; a POST previews or creates a rule."""
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
    return redirect("scoring:rule_list")


@require_POST
@project_page
def rule_delete_view(request: ProjectRequest, rule_id: int) -> HttpResponse:
    _require_editor(request)
    rule_delete(rule=_or_404(rule_get, project=request.project, rule_id=rule_id))
    messages.success(request, "Rule deleted; re-scoring.")
    return redirect("scoring:rule_list")


@require_POST
@project_page
def scoring_settings_update_view(request: ProjectRequest) -> HttpResponse:
    """Thresholds, score range and decay; a change re-scores the project."""
    _require_editor(request)
    model = scoring_model_get(project=request.project)
    form = ScoringSettingsForm(request.POST, model=model)
    if not form.is_valid():
        return _rules_render(request, settings_form=form)
    scoring_settings_update(model=model, data=form.validated_data)
    messages.success(request, "Settings saved; the project is being re-scored.")
    return redirect("scoring:rule_list")


@project_page
def rescore_job_list_view(request: ProjectRequest) -> HttpResponse:
    """The re-score progress block alone, for the rules page to refresh."""
    jobs = rescore_jobs_recent(project=request.project)
    return render(request, "scoring/_rescore_jobs.html", {"jobs": jobs})
