"""Dashboard pages of the companies app: the companies list, a company, its merge."""

import json
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
from ingest.selectors import events_for_leads
from scoring.selectors import ModelChoice, scoring_model_choice

from .forms import CompanyFilterForm, CompanyMergeForm, CompanyUpdateForm
from .models import Company
from .selectors import (
    companies_export_csv,
    companies_for_project,
    company_for_project,
    company_history,
    company_members,
    company_model_scores,
    company_rollup_settings,
    leads_of_company,
)
from .services import company_merge, company_update

T = TypeVar("T")
COMPANIES_PER_PAGE = 50
MEMBERS_LISTED = 100  # the best members on the company page; the leads list filtered by company has them all
ACTIVITY_LISTED = 30  # the newest events of the members on the company page
HISTORY_LISTED = 20  # the newest score changes in the company page's table (the chart draws up to 500)


def _or_404(selector: Callable[..., T], **kwargs: Any) -> T:
    try:
        return selector(**kwargs)
    except NotFound:
        raise Http404 from None


def _model_choice(request: ProjectRequest) -> ModelChoice:
    return _or_404(scoring_model_choice, project=request.project, key=request.GET.get("model"))


def _switcher(request: ProjectRequest, choice: ModelChoice) -> dict[str, Any]:
    """The scoring model switcher's context (`scoring/_model_switcher.html`), keeping the other parameters."""
    keep = [(name, value) for name, values in request.GET.lists() if name not in ("model", "page") for value in values]
    return {"choice": choice, "keep": keep, "action": ""}


def _filtered_companies(request: ProjectRequest, choice: ModelChoice) -> tuple[CompanyFilterForm, Any]:
    form = CompanyFilterForm(request.GET or None)
    form.is_valid()  # an unknown stage or ordering is shown as an error and ignored
    filters = form.filters()
    companies = companies_for_project(
        project=request.project, model=choice.model, search=filters["search"], stage=filters["stage"],
        ordering=filters["ordering"] or "-score",
    )  # fmt: skip
    return form, companies


@project_page
def company_list_view(request: ProjectRequest) -> HttpResponse:
    """The project's companies under `?model=`: search, stage filter, sortable by score, name and members, 50 a
    page; rows follow `company.updated` live (companies.js)."""
    choice = _model_choice(request)
    form, companies = _filtered_companies(request, choice)
    page = Paginator(companies, COMPANIES_PER_PAGE).get_page(request.GET.get("page"))
    context = {"form": form, "page": page, "sort": form.sort_links(), "switcher": _switcher(request, choice)}
    return render(request, "companies/companies.html", context)


@project_page
def company_export_view(request: ProjectRequest) -> StreamingHttpResponse:
    """The same filtered companies as CSV, streamed, formula-safe (scores and stages of `?model=`)."""
    _, companies = _filtered_companies(request, _model_choice(request))
    response = StreamingHttpResponse(companies_export_csv(companies=companies), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="companies.csv"'
    return response


def _company(request: ProjectRequest, company_id: int, choice: ModelChoice | None = None) -> Company:
    model = choice.model if choice is not None else None
    return _or_404(company_for_project, project=request.project, company_id=company_id, model=model)


@project_page
def company_detail_view(request: ProjectRequest, company_id: int) -> HttpResponse:
    """A company under `?model=`: score, stage and breakdown, every model's score, score over time, members,
    their recent activity, its traits (editable) and the merge action (owners and admins)."""
    return _company_render(request, company_id)


def _company_render(
    request: ProjectRequest, company_id: int, *, form: CompanyUpdateForm | None = None, status: int = 200
) -> HttpResponse:
    choice = _model_choice(request)
    company = _company(request, company_id, choice)
    if company.id != company_id:  # a merged-away company's id: its survivor's page
        return redirect(reverse("companies:company_detail", args=[company.id]) + choice.query)
    model = choice.model
    history = company_history(project=request.project, company_id=company.id, model=model)
    chart = time_chart(
        points=[(row.occurred_at, row.new_score) for row in reversed(history)],
        until=timezone.now(),
        title="Company score over time" if model.is_primary else f"Company score over time ({model.name})",
        nonce=request.csp_nonce,
    )
    members = list(company_members(project=request.project, company_id=company.id, model=model)[:MEMBERS_LISTED])
    breakdown = company.breakdown or {}  # type: ignore[attr-defined]  # annotated by the selector
    contributions = {int(lead_id): points for lead_id, points in (breakdown.get("contributions") or {}).items()}
    names = {lead.id: lead.name or lead.email or lead.anonymous_id for lead in members}
    fit_rules = company_rollup_settings(model=model).fit_rules or []
    context = {
        "company": company,
        "switcher": _switcher(request, choice),
        "model_scores": company_model_scores(company=company),
        "breakdown": breakdown,
        "fit_applied": [(_fit_rule_name(fit_rules, rule), points) for rule, points in breakdown.get("fitApplied", [])],
        "members": [(lead, contributions.get(lead.id, 0)) for lead in members],
        # who moved the score, by name when a listed member did
        "history": [(row, names.get(row.moved_by_id or 0, "")) for row in history[:HISTORY_LISTED]],
        "more_members": company.member_count > len(members),  # type: ignore[attr-defined]
        "chart": chart,
        "activity": events_for_leads(
            project=request.project,
            lead_ids=leads_of_company(project_id=request.project.id, company_id=company.id),
            limit=ACTIVITY_LISTED,
        ),
        "form": form or CompanyUpdateForm(initial={"name": company.name, "traits": _traits_text(company.traits)}),
        "can_edit": _can_edit(request),
        "can_merge": request.membership.is_admin,
        "merge_form": CompanyMergeForm(),
    }
    return render(request, "companies/company.html", context, status=status)


def _fit_rule_name(rules: list[Any], number: Any) -> str:
    """A company fit rule's name from its number in the model's roll-up settings (from 1, as the roll-up numbers
    them)."""
    rule = rules[number - 1] if isinstance(number, int) and 1 <= number <= len(rules) else None
    return str(rule.get("name") or f"Fit rule {number}") if isinstance(rule, dict) else f"Fit rule {number}"


def _traits_text(traits: Any) -> str:
    return json.dumps(traits or {}, indent=2, ensure_ascii=False, sort_keys=True)


def _can_edit(request: ProjectRequest) -> bool:
    # as PATCH /api/companies/{id}: any member of the project
    return request.membership is not None


@require_POST
@project_page
def company_update_view(request: ProjectRequest, company_id: int) -> HttpResponse:
    """Change a company's name and traits, as the API's PATCH does; then back to the company, or its errors."""
    if not _can_edit(request):
        raise PermissionDenied("Only project members change companies.")
    company = _company(request, company_id)
    form = CompanyUpdateForm(request.POST)
    if form.is_valid():
        try:
            company = company_update(company=company, data=form.validated_data)
        except ApplicationError as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
        else:
            messages.success(request, "Company saved; its scores are recomputed.")
            return redirect(reverse("companies:company_detail", args=[company.id]) + _model_choice(request).query)
    return _company_render(request, company.id, form=form, status=400)


@project_page
def company_merge_view(request: ProjectRequest, company_id: int) -> HttpResponse:
    """Ask (`?into=<id>`: both companies side by side), then merge this company into the other one, keeping
    every member and trait (owners and admins)."""
    if not request.membership.is_admin:
        raise PermissionDenied("Only project owners and admins merge companies.")
    source = _company(request, company_id)
    data = request.POST if request.method == "POST" else (request.GET if "into" in request.GET else None)
    form = CompanyMergeForm(data)
    target = None
    if form.is_valid():
        target = _company(request, form.cleaned_data["into"])
        if target.id == source.id:
            form.add_error("into", "A company cannot be merged into itself.")
            target = None
    if request.method == "POST" and target is not None:
        try:
            survivor = company_merge(source=source, target=target)
        except ApplicationError as error:  # merged meanwhile by someone else
            messages.error(request, error.message)
            return redirect("companies:company_detail", company_id=source.id)
        messages.success(request, f"{source} merged into {survivor}: its members now count here.")
        return redirect("companies:company_detail", company_id=survivor.id)
    context = {"source": source, "target": target, "form": form}
    return render(request, "companies/company_merge.html", context, status=200 if target or not form.is_bound else 400)
