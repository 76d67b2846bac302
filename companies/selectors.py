"""Reads of companies and their scores, always scoped to a project; each a constant number of queries.

Scores and stages are a scoring model's (`model=`, the project's primary one when None), from the
company's `CompanyScore` row: a company not yet rolled up under that model is 0 and cold.
"""

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from django.db.models import Count, F, FilteredRelation, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from accounts.models import Project
from core.errors import ApplicationError, NotFound
from ingest.models import Lead
from scoring.contracts import STAGES
from scoring.models import ScoringModel
from scoring.selectors import csv_safe, scoring_model_get

from .models import Company, CompanyMembership, CompanyRollupSettings, CompanyScore, CompanyScoreHistory
from .rollup import RollupConfig, rollup_config

# `ordering=` of the company list: the API's names, then the annotations and columns they sort
COMPANY_ORDERING_FIELDS = {"score": "score", "name": "name", "members": "member_count", "updated": "updated_at"}
COMPANY_ORDERINGS = tuple(COMPANY_ORDERING_FIELDS)
COMPANY_HISTORY_LIMIT = 500


def _model(project: Project, model: ScoringModel | None) -> ScoringModel:
    return model if model is not None else scoring_model_get(project=project)


def _scored(companies: QuerySet[Company], model: ScoringModel) -> QuerySet[Company]:
    """Annotate `score`, `stage`, `breakdown` (the model's) and `member_count`."""
    members = (
        CompanyMembership.objects.filter(company=OuterRef("pk"))
        .order_by()
        .values("company")
        .annotate(n=Count("id"))
        .values("n")
    )
    return companies.annotate(
        own=FilteredRelation("scores", condition=Q(scores__model=model)),
        score=Coalesce("own__score", Value(0)),
        stage=Coalesce("own__stage", Value("cold")),
        breakdown=F("own__breakdown"),
        scored_at=F("own__updated_at"),
        member_count=Coalesce(Subquery(members, output_field=IntegerField()), Value(0)),
    )


def companies_for_project(
    *,
    project: Project,
    model: ScoringModel | None = None,
    search: str | None = "",
    stage: str | None = "",
    ordering: str | None = "-score",
) -> QuerySet[Company]:
    """The project's companies (not merged away) under `model`: filtered by stage and a name or domain search,
    sorted by score, name, members or updated (`-` descending; ties by id). Two queries with `model=None`, one
    otherwise."""
    companies = _scored(Company.objects.filter(project=project, merged_into__isnull=True), _model(project, model))
    if stage:
        if stage not in STAGES:
            raise ApplicationError(f"Must be one of {', '.join(STAGES)}.", field="stage")
        companies = companies.filter(**{"stage": stage})  # an annotation (the stubs know only fields)
    search = (search or "").replace("\x00", "").strip()
    if search:
        companies = companies.filter(Q(name__icontains=search) | Q(domain__icontains=search))
    ordering = ordering or "-score"
    column = COMPANY_ORDERING_FIELDS.get(ordering.lstrip("-"))
    if column is None:
        raise ApplicationError(
            f"Must be one of {', '.join(COMPANY_ORDERINGS)} (prefix - for descending).", field="ordering"
        )
    if ordering.startswith("-"):
        return companies.order_by(f"-{column}", "-id")
    return companies.order_by(column, "id")


def company_for_project(*, project: Project, company_id: int | str, model: ScoringModel | None = None) -> Company:
    """The project's company with this id (a merged-away one's id gives its survivor), annotated as in
    `companies_for_project`; 404 otherwise."""
    try:
        pk = int(company_id)
    except (TypeError, ValueError):
        raise NotFound("Company not found.") from None
    if not -(2**63) <= pk < 2**63:
        raise NotFound("Company not found.")
    companies = _scored(Company.objects.filter(project=project), _model(project, model))
    # one query: the company, or the survivor it was merged into (merges keep it one hop)
    company = companies.filter(Q(id=pk, merged_into__isnull=True) | Q(merged_companies__id=pk)).first()
    if company is None:
        raise NotFound("Company not found.")
    return company


def company_members(*, project: Project, company_id: int, model: ScoringModel | None = None) -> QuerySet[Lead]:
    """The company's live member leads with `member_score` and `member_stage` under `model`, best first (one
    query; two with `model=None`)."""
    model = _model(project, model)
    leads = Lead.objects.filter(
        project=project, merged_into__isnull=True, company_membership__company_id=company_id
    ).annotate(company_id=F("company_membership__company_id"))
    if model.is_primary:
        leads = leads.annotate(member_score=F("current_score"), member_stage=F("lead_stage"))
    else:
        leads = leads.annotate(
            own=FilteredRelation("model_scores", condition=Q(model_scores__model=model)),
            member_score=Coalesce("own__score", Value(0)),
            member_stage=Coalesce("own__stage", Value("cold")),
        )
    return leads.order_by("-member_score", "id")


class LeadCompany(NamedTuple):
    id: int
    name: str
    domain: str


def lead_companies(*, project: Project, lead_ids: Iterable[int]) -> dict[int, LeadCompany]:
    """The company of each of these leads that has one: {lead id: (company id, name, domain)} (one query)."""
    rows = CompanyMembership.objects.filter(project=project, lead_id__in=list(lead_ids)).values_list(
        "lead_id", "company_id", "company__name", "company__domain", "company__key"
    )
    return {lead_id: LeadCompany(company_id, name or key, domain) for lead_id, company_id, name, domain, key in rows}


def company_rollup_settings(*, model: ScoringModel) -> CompanyRollupSettings:
    """The model's roll-up settings: its stored row, or the defaults (unsaved) when it has none."""
    found = CompanyRollupSettings.objects.filter(model=model).first()
    return found if found is not None else CompanyRollupSettings(project_id=model.project_id, model=model)


def company_leaderboard(*, project: Project, model: ScoringModel | None = None, limit: int = 10) -> list[Company]:
    """The project's top `limit` companies by score under `model`."""
    return list(companies_for_project(project=project, model=model, ordering="-score")[:limit])


def rollup_configs(*, project_ids: Iterable[int]) -> dict[int, RollupConfig]:
    """The roll-up configuration of every model of these projects that has settings, by model id (one query);
    a model without any rolls up with the defaults (`RollupConfig()`)."""
    return {row.model_id: settings_config(row) for row in CompanyRollupSettings.objects.filter(
        project_id__in=list(project_ids))}  # fmt: skip


def settings_config(row: CompanyRollupSettings) -> RollupConfig:
    """A settings row as the pure roll-up's configuration."""
    thresholds = None
    if row.warm_threshold is not None and row.hot_threshold is not None and row.qualified_threshold is not None:
        thresholds = (row.warm_threshold, row.hot_threshold, row.qualified_threshold)
    return rollup_config(top_n=row.top_n, breadth_points=row.breadth_points, breadth_cap=row.breadth_cap,
                         window_days=row.window_days, fit_rules=row.fit_rules, thresholds=thresholds)  # fmt: skip


@dataclass(frozen=True)
class CompanyModelScore:
    model: str
    primary: bool
    score: int
    stage: str
    breakdown: dict[str, Any] | None
    updated_at: datetime | None


def company_model_scores(*, company: Company) -> list[CompanyModelScore]:
    """The company's result under every model of its project, the primary first (one query; 0 and cold where
    not rolled up yet)."""
    models = (
        ScoringModel.objects.filter(project_id=company.project_id)
        .annotate(own=FilteredRelation("company_scores", condition=Q(company_scores__company=company)))
        .order_by("-is_primary", "id")
        .values_list("key", "is_primary", "own__score", "own__stage", "own__breakdown", "own__updated_at")
    )
    return [
        CompanyModelScore(key, primary, score or 0, stage or "cold", breakdown, updated_at)
        for key, primary, score, stage, breakdown, updated_at in models
    ]


def company_merged_ids(*, company: Company) -> list[int]:
    """The companies merged into this one."""
    return list(Company.objects.filter(merged_into=company).order_by("id").values_list("id", flat=True))


COMPANY_EXPORT_COLUMNS = (
    ("id", "id"),
    ("name", "name"),
    ("domain", "domain"),
    ("key", "key"),
    ("score", "score"),
    ("stage", "stage"),
    ("members", "member_count"),
    ("updatedAt", "updated_at"),
)


class _Echo:
    def write(self, value: str) -> str:
        return value


def companies_export_csv(*, companies: QuerySet[Company]) -> Iterator[str]:
    """The companies (`companies_for_project`) as formula-safe CSV lines, a header first, streamed."""
    writer = csv.writer(_Echo())
    yield writer.writerow([header for header, _ in COMPANY_EXPORT_COLUMNS])
    for row in companies.values_list(*(column for _, column in COMPANY_EXPORT_COLUMNS)).iterator(chunk_size=2000):
        yield writer.writerow([csv_safe(value) for value in row])


def company_history(
    *,
    project: Project,
    company_id: int | str,
    model: ScoringModel | None = None,
    limit: int = COMPANY_HISTORY_LIMIT,
) -> list[CompanyScoreHistory]:
    """The company's latest score and stage changes, newest first: under one model, or under every model.

    Another project's company (or none) is not found.
    """
    try:
        company = Company.objects.filter(project=project).only("id").get(id=int(company_id))
    except (TypeError, ValueError, Company.DoesNotExist):
        raise NotFound("Company not found.") from None
    rows = CompanyScoreHistory.objects.filter(project=project, company=company)
    if model is not None:
        rows = rows.filter(model_id=model.id)
    return list(rows.select_related("model").order_by("-occurred_at", "-id")[: max(limit, 0)])


def lead_company_results(*, project_id: int, lead_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Each of these leads' company under the project's primary model: {lead id: {id, name, domain, score, stage,
    members}} for the leads that have one (one query; the lead facet `associatedCompany`)."""
    members = (
        CompanyMembership.objects.filter(company=OuterRef("company_id"))
        .order_by()
        .values("company")
        .annotate(n=Count("id"))
        .values("n")
    )
    primary = CompanyScore.objects.filter(company=OuterRef("company_id"), model__is_primary=True)
    rows = (
        CompanyMembership.objects.filter(project_id=project_id, lead_id__in=list(lead_ids))
        .annotate(
            primary_score=Subquery(primary.values("score")[:1]),
            primary_stage=Subquery(primary.values("stage")[:1]),
            member_count=Subquery(members, output_field=IntegerField()),
        )
        .values_list(
            "lead_id", "company_id", "company__name", "company__key", "company__domain", "primary_score",
            "primary_stage", "member_count",
        )
    )  # fmt: skip
    return {
        lead_id: {
            "id": company_id,
            "name": name or key,
            "domain": domain,
            "score": score or 0,
            "stage": stage or "cold",
            "members": count or 0,
        }
        for lead_id, company_id, name, key, domain, score, stage, count in rows
    }


def leads_of_company(*, project_id: int, company_id: int | str) -> QuerySet[CompanyMembership, Any]:
    """The ids of the project's leads in this company (or in the survivor of this merged-away one), as a
    subquery (`values("lead_id")`)."""
    pk = int(company_id)
    return CompanyMembership.objects.filter(
        Q(company_id=pk) | Q(company__merged_companies__id=pk), project_id=project_id
    ).values("lead_id")
