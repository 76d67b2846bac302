"""The lead endpoints: list, create, get, change, erase, export, timeline, breakdown, intelligence, history and
manual adjustments."""

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.scoping import ProjectApiView, request_person
from core.errors import ApplicationError, NotFound
from core.leadfacets import lead_facets
from core.openapi import page_of
from core.queries import query_int
from ingest.services import lead_create

from .. import engine
from ..models import ScoringModel
from ..selectors import (
    MATRIX_FILTER_PATTERN,
    adjustment_data,
    adjustment_summary,
    lead_adjustments,
    lead_export,
    lead_get,
    lead_history_for_project,
    lead_intelligence,
    lead_orderings,
    lead_score_breakdown,
    lead_timeline,
    leads_export_csv,
    leads_for_project,
    leads_model_scores,
    scoring_model_get,
)
from ..serializers import (
    AdjustedSerializer,
    AdjustmentCreateSerializer,
    AdjustmentListSerializer,
    IntelligenceSerializer,
    LeadCreateSerializer,
    LeadExportSerializer,
    LeadSerializer,
    LeadUpdateSerializer,
    ScoreBreakdownSerializer,
    ScoreHistorySerializer,
    TimelineSerializer,
)
from ..services import lead_erase, lead_update
from ..services.adjustments import adjustment_author, lead_adjust
from .pagination import StrictPageNumberPagination, page_parameters

MODEL_PARAMETER = OpenApiParameter(
    "model", OpenApiTypes.STR, description="A scoring model's key: its scores and stages (default: the primary model)."
)


def request_model(view: ProjectApiView, request: Request) -> ScoringModel | None:
    """The `?model=` of the request (404 when the project has none with that key); None: the primary one."""
    key = request.query_params.get("model")
    return scoring_model_get(project=view.project, key=key) if key else None


def leads_data(view: ProjectApiView, leads: list[Any]) -> Any:
    """Leads on the wire, with every model's scores and every lead facet read for the whole page at once."""
    ids = [lead.id for lead in leads]
    scores = leads_model_scores(project=view.project, lead_ids=ids)
    facets = lead_facets.values_for(project_id=view.project.id, lead_ids=ids)
    return LeadSerializer(leads, many=True, context={"scores": scores, "facets": facets}).data


def facet_filters(request: Request) -> dict[str, str | None]:
    """The lead facets' filters of the request (`?company=…`), by facet key."""
    return {facet.key: request.query_params.get(facet.key) for facet in lead_facets.filters()}


class LeadPagination(StrictPageNumberPagination):
    max_page_size = 500


STAGE_PARAMETER = OpenApiParameter(
    "stage", OpenApiTypes.STR, enum=["", *engine.STAGES], description="Only leads in this stage (empty: all)."
)
MATRIX_PARAMETER = OpenApiParameter(
    "matrix",
    {"type": "string", "pattern": MATRIX_FILTER_PATTERN},
    description="Only leads in these fit x engagement cells of the model, comma-separated (e.g. `A1,B1`; "
    f"cells {', '.join(engine.MATRIX_CELLS)}: the fit grade, then the engagement tier — 1 when the engagement "
    "score reaches the model's hot threshold, 2 when it reaches its warm threshold, 3 below). Empty: all.",
)
LEAD_FILTER_PARAMETERS = [
    STAGE_PARAMETER,
    MODEL_PARAMETER,
    MATRIX_PARAMETER,
    OpenApiParameter(
        "anonymousId",
        OpenApiTypes.STR,
        description="Only the lead with this anonymous id, or the lead a device with this id was merged into.",
    ),
    OpenApiParameter(
        "search",
        OpenApiTypes.STR,
        description="Case-insensitive substring of email, name, company, anonymous id or user id; "
        "a number also matches the lead id.",
    ),
    OpenApiParameter(
        "ordering",
        OpenApiTypes.STR,
        enum=["", *lead_orderings(), *(f"-{name}" for name in lead_orderings())],
        description="Sort key, `-` for descending; ties by id. Default (or empty) `-currentScore`. "
        "`matrix`: by the model's matrix cell, A1 first, ties by score (highest first); `-matrix` is its reverse.",
    ),
    # the lead facets' filters (`core.leadfacets`): registered as the apps are ready, before the URLs load
    *(
        OpenApiParameter(facet.key, facet.filter_schema, description=facet.filter_description)
        for facet in lead_facets.filters()
    ),
]


class LeadListApi(ProjectApiView):
    @extend_schema(
        summary="Create a lead, or return the one with this anonymous id",
        tags=["Leads"],
        request=LeadCreateSerializer,
        responses={
            201: OpenApiResponse(LeadSerializer, description="Created."),
            200: OpenApiResponse(LeadSerializer, description="A lead with this anonymous id already exists."),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = LeadCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        lead, created = lead_create(
            project_id=self.project.id,
            anonymous_id=data["anonymousId"],
            email=data["email"].lower(),
            name=data["name"],
            company=data["company"],
        )
        return Response(LeadSerializer(lead).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(
        summary="List the project's leads",
        tags=["Leads"],
        parameters=[*LEAD_FILTER_PARAMETERS, *page_parameters(LeadPagination.max_page_size)],
        responses=page_of(LeadSerializer, "LeadPage"),
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        leads = leads_for_project(
            project=self.project,
            stage=params.get("stage"),
            anonymous_id=params.get("anonymousId"),
            search=params.get("search"),
            ordering=params.get("ordering"),
            model=request_model(self, request),
            matrix=params.get("matrix"),
            facets=facet_filters(request),
        )
        paginator = LeadPagination()
        page = paginator.paginate_queryset(leads, request, view=self)
        return paginator.get_paginated_response(leads_data(self, list(page or [])))


LEAD_ID = OpenApiParameter(
    "lead_id",
    OpenApiTypes.INT,
    OpenApiParameter.PATH,
    description="A lead id; a merged-away lead's id answers with the lead it was merged into.",
)


class LeadDetailApi(ProjectApiView):
    @extend_schema(summary="Get a lead", tags=["Leads"], parameters=[LEAD_ID], responses=LeadSerializer)
    def get(self, request: Request, lead_id: str) -> Response:
        return Response(LeadSerializer(lead_get(project=self.project, lead_id=lead_id)).data)

    @extend_schema(
        summary="Replace a lead's editable fields",
        tags=["Leads"],
        parameters=[LEAD_ID],
        request=LeadUpdateSerializer,
        responses=LeadSerializer,
    )
    def put(self, request: Request, lead_id: str, partial: bool = False) -> Response:
        lead = lead_get(project=self.project, lead_id=lead_id)
        serializer = LeadUpdateSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return Response(LeadSerializer(lead_update(lead=lead, data=serializer.validated_data)).data)

    @extend_schema(
        summary="Change some of a lead's editable fields",
        tags=["Leads"],
        parameters=[LEAD_ID],
        request=LeadUpdateSerializer,
        responses=LeadSerializer,
    )
    def patch(self, request: Request, lead_id: str) -> Response:
        return self.put(request, lead_id, partial=True)

    @extend_schema(
        summary="Erase a lead and everything stored about it (GDPR; admins)",
        tags=["Leads"],
        parameters=[LEAD_ID],
        responses={204: OpenApiResponse(description="Erased.")},
    )
    def delete(self, request: Request, lead_id: str) -> Response:
        self.require_admin()
        lead_erase(lead=lead_get(project=self.project, lead_id=lead_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class LeadExportApi(ProjectApiView):
    """Everything stored about one lead, as JSON (GDPR access)."""

    @extend_schema(
        summary="Export everything stored about a lead (GDPR access)",
        tags=["Leads"],
        parameters=[LEAD_ID],
        responses=LeadExportSerializer,
    )
    def get(self, request: Request, lead_id: str) -> Response:
        return Response(lead_export(lead=lead_get(project=self.project, lead_id=lead_id)))


class LeadsCsvExportApi(ProjectApiView):
    """The project's leads as CSV, streamed, with the filters of the lead list."""

    def perform_content_negotiation(self, request, force=False):
        # `Accept: text/csv` must not 406: errors still render as JSON
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        summary="Export the project's leads as CSV",
        tags=["Leads"],
        parameters=LEAD_FILTER_PARAMETERS,
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="A header row, then one row per lead (formula-safe cells), streamed as an attachment.",
            )
        },
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        params = request.query_params
        leads = leads_for_project(
            project=self.project,
            stage=params.get("stage"),
            anonymous_id=params.get("anonymousId"),
            search=params.get("search"),
            ordering=params.get("ordering"),
            model=request_model(self, request),
            matrix=params.get("matrix"),
            facets=facet_filters(request),
        )
        response = StreamingHttpResponse(leads_export_csv(leads=leads), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="leads.csv"'
        return response


class LeadTimelineApi(ProjectApiView):
    @extend_schema(
        summary="A lead's newest events with the score change each made",
        tags=["Leads"],
        parameters=[
            LEAD_ID,
            MODEL_PARAMETER,
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 1000},
                description="How many events (default 200).",
            ),
        ],
        responses=TimelineSerializer,
    )
    def get(self, request: Request, lead_id: str) -> Response:
        lead = lead_get(project=self.project, lead_id=lead_id)
        limit = query_int(request, "limit", default=200, minimum=1, maximum=1000)
        events = [
            {
                "eventId": event.event_id,
                "eventType": event.name,
                "timestamp": event.timestamp,
                "properties": event.properties,
                "scoreDelta": history.delta if history else None,
                "newScore": history.new_score if history else None,
                "adjustment": adjustment_summary(event),
            }
            for event, history in lead_timeline(lead=lead, limit=limit, model=request_model(self, request))
        ]
        return Response({"lead": LeadSerializer(lead).data, "events": events})


class LeadScoreBreakdownApi(ProjectApiView):
    @extend_schema(
        summary="Where a lead's score comes from",
        tags=["Leads"],
        parameters=[LEAD_ID, MODEL_PARAMETER],
        responses=ScoreBreakdownSerializer,
    )
    def get(self, request: Request, lead_id: str) -> Response:
        lead = lead_get(project=self.project, lead_id=lead_id)
        return Response(lead_score_breakdown(lead=lead, model=request_model(self, request)))


class LeadIntelligenceApi(ProjectApiView):
    @extend_schema(
        summary="A lead's velocity, trend, risk and next sales action",
        tags=["Leads"],
        parameters=[LEAD_ID],
        responses=IntelligenceSerializer,
    )
    def get(self, request: Request, lead_id: str) -> Response:
        return Response(lead_intelligence(lead=lead_get(project=self.project, lead_id=lead_id)))


class ScoreHistoryPagination(StrictPageNumberPagination):
    max_page_size = 200


class LeadHistoryApi(ProjectApiView):
    @extend_schema(
        summary="A lead's score changes, newest first",
        tags=["Leads"],
        parameters=[LEAD_ID, MODEL_PARAMETER, *page_parameters(ScoreHistoryPagination.max_page_size)],
        responses=page_of(ScoreHistorySerializer, "LeadScoreHistoryPage"),
    )
    def get(self, request: Request, lead_id: str) -> Response:
        lead = lead_get(project=self.project, lead_id=lead_id)
        paginator = ScoreHistoryPagination()
        history = lead_history_for_project(project=self.project, lead=lead, model=request_model(self, request))
        page = paginator.paginate_queryset(history, request, view=self)
        return paginator.get_paginated_response(ScoreHistorySerializer(page, many=True).data)


class LeadAdjustmentListApi(ProjectApiView):
    @extend_schema(
        summary="A lead's manual score adjustments, newest first",
        tags=["Leads"],
        parameters=[LEAD_ID],
        responses=AdjustmentListSerializer,
    )
    def get(self, request: Request, lead_id: str) -> Response:
        lead = lead_get(project=self.project, lead_id=lead_id)
        return Response({"results": lead_adjustments(lead=lead)})

    @extend_schema(
        summary="Adjust a lead's score by hand (members): add points, or set the engagement score",
        description="Appends an adjustment event to the lead's log, attributed to the caller, and scores the lead "
        "at once: refolds, re-scores and versions replay it. `points` adds to the engagement score, `setTo` sets "
        "it (the fit still adds); exactly one of the two. `model` defaults to the primary model.",
        tags=["Leads"],
        parameters=[LEAD_ID],
        request=AdjustmentCreateSerializer,
        responses={201: AdjustedSerializer},
    )
    def post(self, request: Request, lead_id: str) -> Response:
        lead = lead_get(project=self.project, lead_id=lead_id)
        serializer = AdjustmentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            model = scoring_model_get(project=self.project, key=data["model"]) if "model" in data else None
        except NotFound:
            raise ApplicationError("No scoring model of this project has this key.", field="model") from None
        person = request_person(request)
        key = None if person is not None else getattr(request.user, "api_key", None)  # a secret key's caller
        adjusted = lead_adjust(
            lead=lead, points=data.get("points"), set_to=data.get("setTo"), reason=data["reason"], model=model,
            author=adjustment_author(user=person, api_key=key),
        )  # fmt: skip
        scores = leads_model_scores(project=self.project, lead_ids=[adjusted.lead.id])
        result = scores.for_lead(adjusted.lead)[adjusted.model.key]
        body = {
            "adjustment": adjustment_data(adjusted.event, adjusted.history),
            "score": result["score"],
            "stage": result["stage"],
            "lead": LeadSerializer(adjusted.lead, context={"scores": scores}).data,
        }
        return Response(body, status=status.HTTP_201_CREATED)
