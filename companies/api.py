"""The companies API: list, leaderboard, export, one company (change, merge) and the roll-up settings."""

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.scoping import ProjectApiView
from core.errors import ApplicationError, NotFound
from core.openapi import page_of
from core.pagination import StrictPageNumberPagination, page_parameters
from core.queries import query_int
from scoring.contracts import STAGES
from scoring.selectors import scoring_model_get

from .selectors import (
    COMPANY_ORDERINGS,
    companies_export_csv,
    companies_for_project,
    company_for_project,
    company_leaderboard,
    company_members,
    company_merged_ids,
    company_model_scores,
    company_rollup_settings,
)
from .serializers import (
    CompanyDetailSerializer,
    CompanyMemberSerializer,
    CompanyMergeSerializer,
    CompanyRollupSettingsSerializer,
    CompanySerializer,
    CompanyUpdateSerializer,
)
from .services import company_merge, company_rollup_settings_update, company_update

TAGS = ["Companies"]
MEMBERS_SHOWN = 200
MODEL_PARAMETER = OpenApiParameter(
    "model", OpenApiTypes.STR, description="A scoring model's key: its scores and stages (default: the primary model)."
)
COMPANY_ID = OpenApiParameter(
    "company_id",
    OpenApiTypes.INT,
    OpenApiParameter.PATH,
    description="A company id; a merged-away company's id answers with the company it was merged into.",
)
FILTER_PARAMETERS = [
    MODEL_PARAMETER,
    OpenApiParameter("stage", OpenApiTypes.STR, enum=["", *STAGES], description="Only companies in this stage."),
    OpenApiParameter("search", OpenApiTypes.STR, description="Case-insensitive substring of the name or domain."),
    OpenApiParameter(
        "ordering",
        OpenApiTypes.STR,
        enum=["", *COMPANY_ORDERINGS, *(f"-{name}" for name in COMPANY_ORDERINGS)],
        description="Sort key (`members`: member count), `-` for descending; ties by id. Default (or empty) `-score`.",
    ),
]


class CompanyPagination(StrictPageNumberPagination):
    max_page_size = 500


def _companies(view: ProjectApiView, request: Request) -> Any:
    params = request.query_params
    return companies_for_project(
        project=view.project,
        model=_model(view, request),
        stage=params.get("stage"),
        search=params.get("search"),
        ordering=params.get("ordering"),
    )


def _model(view: ProjectApiView, request: Request) -> Any:
    """The `?model=` scoring model (404 when the project has none with that key); the primary one without."""
    return scoring_model_get(project=view.project, key=request.query_params.get("model") or None)


def company_data(view: ProjectApiView, company_id: Any, model: Any) -> dict[str, Any]:
    """One company on the wire: under `model`, with every model's result, its best members and its aliases."""
    company = company_for_project(project=view.project, company_id=company_id, model=model)
    members = company_members(project=view.project, company_id=company.id, model=model)[:MEMBERS_SHOWN]
    scores = [
        {"model": s.model, "primary": s.primary, "score": s.score, "stage": s.stage, "breakdown": s.breakdown,
         "updatedAt": s.updated_at}
        for s in company_model_scores(company=company)
    ]  # fmt: skip
    return {
        **CompanySerializer(company).data,
        "model": model.key,
        "traits": company.traits,
        "mergedIds": company_merged_ids(company=company),
        "breakdown": company.breakdown,  # type: ignore[attr-defined]  # annotated by the selector
        "scores": scores,
        "topMembers": CompanyMemberSerializer(members, many=True).data,
    }


class CompanyListApi(ProjectApiView):
    @extend_schema(
        summary="List the project's companies with their scores",
        description="Companies (accounts) roll their member leads up into a score per scoring model: the best "
        "members' scores, breadth points for engaged members and company fit rules (see the roll-up settings).",
        tags=TAGS,
        parameters=[*FILTER_PARAMETERS, *page_parameters(CompanyPagination.max_page_size)],
        responses=page_of(CompanySerializer, "CompanyPage"),
    )
    def get(self, request: Request) -> Response:
        paginator = CompanyPagination()
        page: list[Any] | None = paginator.paginate_queryset(_companies(self, request), request, view=self)
        return paginator.get_paginated_response(CompanySerializer(page, many=True).data)


class CompanyExportApi(ProjectApiView):
    """The project's companies as CSV, streamed, with the filters of the list."""

    def perform_content_negotiation(self, request, force=False):
        # `Accept: text/csv` must not 406: errors still render as JSON
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        summary="Export the project's companies as CSV",
        tags=TAGS,
        parameters=FILTER_PARAMETERS,
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="A header row, then one row per company (formula-safe cells), streamed as an attachment.",
            )
        },
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        response = StreamingHttpResponse(
            companies_export_csv(companies=_companies(self, request)), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = 'attachment; filename="companies.csv"'
        return response


class CompanyLeaderboardApi(ProjectApiView):
    @extend_schema(
        summary="The project's top companies by score",
        tags=TAGS,
        parameters=[
            OpenApiParameter(
                "limit", {"type": "integer", "minimum": 1, "maximum": 100}, description="How many (default 10)."
            ),
            MODEL_PARAMETER,
        ],
        responses=inline_serializer(
            "CompanyLeaderboard",
            fields={"model": serializers.CharField(), "results": CompanySerializer(many=True)},
        ),
    )
    def get(self, request: Request) -> Response:
        limit = query_int(request, "limit", default=10, minimum=1, maximum=100)
        model = _model(self, request)
        companies = company_leaderboard(project=self.project, model=model, limit=limit)
        return Response({"model": model.key, "results": CompanySerializer(companies, many=True).data})


class CompanyDetailApi(ProjectApiView):
    @extend_schema(
        summary="Get a company: traits, score, stage and breakdown under every model, members with their scores",
        tags=TAGS,
        parameters=[COMPANY_ID, MODEL_PARAMETER],
        responses=CompanyDetailSerializer,
    )
    def get(self, request: Request, company_id: str) -> Response:
        return Response(company_data(self, company_id, _model(self, request)))

    @extend_schema(
        summary="Change a company's name or traits (members); recomputes its scores",
        description="`traits` replaces the stored traits (company fit rules read them); later `group` calls "
        "add to them again.",
        tags=TAGS,
        parameters=[COMPANY_ID, MODEL_PARAMETER],
        request=CompanyUpdateSerializer,
        responses=CompanyDetailSerializer,
    )
    def patch(self, request: Request, company_id: str) -> Response:
        model = _model(self, request)
        company = company_for_project(project=self.project, company_id=company_id, model=model)
        serializer = CompanyUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        company = company_update(company=company, data=serializer.validated_data)
        return Response(company_data(self, company.id, model))


class CompanyMergeApi(ProjectApiView):
    @extend_schema(
        summary="Merge this company into another (admins)",
        description="Every member moves into `into`; traits merge, the survivor's winning a conflict; the "
        "survivor's scores are recomputed. The merged company's id, and its key (domain or group id), lead to "
        "the survivor from now on: leads keyed to it later join the survivor. Answers with the survivor.",
        tags=TAGS,
        parameters=[COMPANY_ID, MODEL_PARAMETER],
        request=CompanyMergeSerializer,
        responses=CompanyDetailSerializer,
    )
    def post(self, request: Request, company_id: str) -> Response:
        # a merge cannot be undone: owners and admins only, as on the company page
        self.require_admin()
        model = _model(self, request)
        source = company_for_project(project=self.project, company_id=company_id, model=model)
        serializer = CompanyMergeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            target = company_for_project(project=self.project, company_id=serializer.validated_data["into"])
        except NotFound:
            raise ApplicationError("No company of this project has this id.", field="into") from None
        survivor = company_merge(source=source, target=target)
        return Response(company_data(self, survivor.id, model))


class CompanySettingsApi(ProjectApiView):
    @extend_schema(
        summary="How a scoring model rolls companies up (`?model=`, default: the primary model)",
        tags=TAGS,
        parameters=[MODEL_PARAMETER],
        responses=CompanyRollupSettingsSerializer,
    )
    def get(self, request: Request) -> Response:
        return Response(CompanyRollupSettingsSerializer(company_rollup_settings(model=_model(self, request))).data)

    @extend_schema(
        summary="Replace a scoring model's company roll-up (admins); recomputes the project's companies",
        description="score = the sum of the best `topN` members' scores + `breadthPoints` for each engaged member "
        "(warm or better, active within `windowDays`; at most `breadthCap` of them) + the points of every "
        "fit rule whose conditions hold on the company's traits; clamped to the model's score range. The stage "
        "comes from `thresholds`, or the model's when null. Many companies are recomputed in the background.",
        tags=TAGS,
        parameters=[MODEL_PARAMETER],
        request=CompanyRollupSettingsSerializer,
        responses=CompanyRollupSettingsSerializer,
    )
    def put(self, request: Request) -> Response:
        self.require_admin()
        model = _model(self, request)
        serializer = CompanyRollupSettingsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        row = company_rollup_settings_update(model=model, data=serializer.validated_data)
        return Response(CompanyRollupSettingsSerializer(row).data)
