from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    OpenApiTypes,
    extend_schema,
)
from rest_framework import status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.scoping import ProjectApiView
from core.errors import ApplicationError
from core.openapi import page_of, results_of
from core.queries import query_int
from ingest.services import lead_create

from . import engine
from .models import ScoringRule
from .selectors import (
    LEAD_ORDERING_FIELDS,
    lead_export,
    lead_get,
    lead_history_for_project,
    lead_intelligence,
    lead_score_breakdown,
    lead_stage_counts,
    lead_timeline,
    leaderboard,
    leads_export_csv,
    leads_for_project,
    project_dashboard,
    rescore_job_get,
    rule_get,
    rules_for_project,
    rules_preview_proposed,
)
from .serializers import (
    DashboardSerializer,
    IntelligenceSerializer,
    LeadCreateSerializer,
    LeaderboardSerializer,
    LeadExportSerializer,
    LeadSerializer,
    LeadUpdateSerializer,
    PreviewSerializer,
    RescoreJobSerializer,
    RulePreviewSerializer,
    RuleSerializer,
    ScoreBreakdownSerializer,
    ScoreHistorySerializer,
    ScoringSettingsSerializer,
    StageCountsSerializer,
    TimelineSerializer,
)
from .services import lead_erase, lead_update, rule_create, rule_delete, rule_update, scoring_settings_update


class StrictPageNumberPagination(PageNumberPagination):
    """`page` and `pageSize` as documented: a malformed value is an error, not silently the default
    (an empty one, like every empty query parameter, is the same as leaving it out)."""

    page_size = 50
    page_size_query_param = "pageSize"

    def get_page_number(self, request: Request, paginator: Any) -> Any:
        return request.query_params.get(self.page_query_param) or 1

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param, "").strip()
        if not raw:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            raise ApplicationError("Must be an integer.", field=self.page_size_query_param) from None
        if size < 1:
            raise ApplicationError("Must be at least 1.", field=self.page_size_query_param)
        return min(size, self.max_page_size or size)


class LeadPagination(StrictPageNumberPagination):
    max_page_size = 500


STAGE_PARAMETER = OpenApiParameter(
    "stage", OpenApiTypes.STR, enum=["", *engine.STAGES], description="Only leads in this stage (empty: all)."
)
LEAD_FILTER_PARAMETERS = [
    STAGE_PARAMETER,
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
        enum=["", *LEAD_ORDERING_FIELDS, *(f"-{name}" for name in LEAD_ORDERING_FIELDS)],
        description="Sort key, `-` for descending; ties by id. Default (or empty) `-currentScore`.",
    ),
]


def page_parameters(max_page_size: int) -> list[OpenApiParameter]:
    return [
        OpenApiParameter(
            "page", {"type": "integer", "minimum": 1}, description="1-based page number (404 past the last page)."
        ),
        OpenApiParameter(
            "pageSize",
            {"type": "integer", "minimum": 1},
            description=f"Items per page, default 50, capped at {max_page_size}.",
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
    def post(self, request):
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
    def get(self, request):
        params = request.query_params
        leads = leads_for_project(
            project=self.project,
            stage=params.get("stage"),
            anonymous_id=params.get("anonymousId"),
            search=params.get("search"),
            ordering=params.get("ordering"),
        )
        paginator = LeadPagination()
        page = paginator.paginate_queryset(leads, request, view=self)
        return paginator.get_paginated_response(LeadSerializer(page, many=True).data)


LEAD_ID = OpenApiParameter(
    "lead_id",
    OpenApiTypes.INT,
    OpenApiParameter.PATH,
    description="A lead id; a merged-away lead's id answers with the lead it was merged into.",
)


class LeadDetailApi(ProjectApiView):
    @extend_schema(summary="Get a lead", tags=["Leads"], parameters=[LEAD_ID], responses=LeadSerializer)
    def get(self, request, lead_id: str):
        return Response(LeadSerializer(lead_get(project=self.project, lead_id=lead_id)).data)

    @extend_schema(
        summary="Replace a lead's editable fields",
        tags=["Leads"],
        parameters=[LEAD_ID],
        request=LeadUpdateSerializer,
        responses=LeadSerializer,
    )
    def put(self, request, lead_id: str, partial: bool = False):
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
    def patch(self, request, lead_id: str):
        return self.put(request, lead_id, partial=True)

    @extend_schema(
        summary="Erase a lead and everything stored about it (GDPR; admins)",
        tags=["Leads"],
        parameters=[LEAD_ID],
        responses={204: OpenApiResponse(description="Erased.")},
    )
    def delete(self, request, lead_id: str):
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
    def get(self, request, lead_id: str):
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
    def get(self, request):
        params = request.query_params
        leads = leads_for_project(
            project=self.project,
            stage=params.get("stage"),
            anonymous_id=params.get("anonymousId"),
            search=params.get("search"),
            ordering=params.get("ordering"),
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
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 1000},
                description="How many events (default 200).",
            ),
        ],
        responses=TimelineSerializer,
    )
    def get(self, request, lead_id: str):
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
            }
            for event, history in lead_timeline(lead=lead, limit=limit)
        ]
        return Response({"lead": LeadSerializer(lead).data, "events": events})


class LeadScoreBreakdownApi(ProjectApiView):
    @extend_schema(
        summary="Where a lead's score comes from",
        tags=["Leads"],
        parameters=[LEAD_ID],
        responses=ScoreBreakdownSerializer,
    )
    def get(self, request, lead_id: str):
        return Response(lead_score_breakdown(lead=lead_get(project=self.project, lead_id=lead_id)))


class LeadIntelligenceApi(ProjectApiView):
    @extend_schema(
        summary="A lead's velocity, trend, risk and next sales action",
        tags=["Leads"],
        parameters=[LEAD_ID],
        responses=IntelligenceSerializer,
    )
    def get(self, request, lead_id: str):
        return Response(lead_intelligence(lead=lead_get(project=self.project, lead_id=lead_id)))


RULE_ID = OpenApiParameter("rule_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="A scoring rule id.")


class RuleListApi(ProjectApiView):
    @extend_schema(
        summary="List the project's scoring rules",
        tags=["Rules"],
        parameters=[
            OpenApiParameter(
                "kind",
                OpenApiTypes.STR,
                enum=["", *ScoringRule.Kind.values],
                description="Only rules of this kind (empty: all).",
            )
        ],
        responses=results_of(RuleSerializer, "ScoringRuleList"),
    )
    def get(self, request):
        kind = request.query_params.get("kind")
        if kind and kind not in ScoringRule.Kind.values:
            raise ApplicationError("Must be engagement or fit.", field="kind")
        return Response({"results": RuleSerializer(rules_for_project(project=self.project, kind=kind), many=True).data})

    @extend_schema(
        summary="Create a scoring rule (admins); re-scores the project's leads",
        tags=["Rules"],
        request=RuleSerializer,
        responses={201: RuleSerializer},
    )
    def post(self, request):
        self.require_admin()
        serializer = RuleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rule = rule_create(project=self.project, data=serializer.validated_data)
        return Response(RuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class RuleDetailApi(ProjectApiView):
    @extend_schema(summary="Get a scoring rule", tags=["Rules"], parameters=[RULE_ID], responses=RuleSerializer)
    def get(self, request, rule_id: str):
        return Response(RuleSerializer(rule_get(project=self.project, rule_id=rule_id)).data)

    @extend_schema(
        summary="Replace a scoring rule (admins); re-scores the project's leads",
        tags=["Rules"],
        parameters=[RULE_ID],
        request=RuleSerializer,
        responses=RuleSerializer,
    )
    def put(self, request, rule_id: str, partial: bool = False):
        self.require_admin()
        rule = rule_get(project=self.project, rule_id=rule_id)
        serializer = RuleSerializer(rule, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return Response(RuleSerializer(rule_update(rule=rule, data=serializer.validated_data)).data)

    @extend_schema(
        summary="Change some of a scoring rule's fields (admins); re-scores the project's leads",
        tags=["Rules"],
        parameters=[RULE_ID],
        request=RuleSerializer,
        responses=RuleSerializer,
    )
    def patch(self, request, rule_id: str):
        return self.put(request, rule_id, partial=True)

    @extend_schema(
        summary="Delete a scoring rule (admins); re-scores the project's leads",
        tags=["Rules"],
        parameters=[RULE_ID],
        responses={204: OpenApiResponse(description="Deleted.")},
    )
    def delete(self, request, rule_id: str):
        self.require_admin()
        rule_delete(rule=rule_get(project=self.project, rule_id=rule_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class RulePreviewApi(ProjectApiView):
    """What a proposed rule set (and settings) would do, without saving anything."""

    @extend_schema(
        summary="Preview what a proposed rule set and settings would do to the leads, saving nothing",
        tags=["Rules"],
        request=PreviewSerializer,
        responses=RulePreviewSerializer,
    )
    def post(self, request):
        project = self.project
        serializer = PreviewSerializer(data=request.data, context={"project": project})
        serializer.is_valid(raise_exception=True)
        rows = [ScoringRule(id=-(i + 1), **data) for i, data in enumerate(serializer.validated_data["rules"])]
        settings = serializer.validated_data.get("settings")
        return Response(rules_preview_proposed(project=project, rows=rows, settings=settings))


class ScoringSettingsApi(ProjectApiView):
    @extend_schema(
        summary="The project's stage thresholds, score cap and decay",
        tags=["Scoring"],
        responses=ScoringSettingsSerializer,
    )
    def get(self, request):
        return Response(ScoringSettingsSerializer(self.project).data)

    @extend_schema(
        summary="Replace the scoring settings (admins); re-scores the project's leads",
        description="Thresholds must rise: warmThreshold < hotThreshold < qualifiedThreshold <= maxScore.",
        tags=["Scoring"],
        request=ScoringSettingsSerializer,
        responses=ScoringSettingsSerializer,
    )
    def put(self, request, partial: bool = False):
        self.require_admin()
        serializer = ScoringSettingsSerializer(self.project, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return Response(
            ScoringSettingsSerializer(
                scoring_settings_update(project=self.project, data=serializer.validated_data)
            ).data
        )

    @extend_schema(
        summary="Change some scoring settings (admins); re-scores the project's leads",
        description="Thresholds must rise: warmThreshold < hotThreshold < qualifiedThreshold <= maxScore "
        "(unchanged ones keep their stored values).",
        tags=["Scoring"],
        request=ScoringSettingsSerializer,
        responses=ScoringSettingsSerializer,
    )
    def patch(self, request):
        return self.put(request, partial=True)


class RescoreJobListApi(ProjectApiView):
    @extend_schema(
        summary="The project's 20 newest re-score jobs",
        tags=["Scoring"],
        responses=results_of(RescoreJobSerializer, "ScoringRescoreJobList"),
    )
    def get(self, request):
        jobs = self.project.rescore_jobs.order_by("-id")[:20]
        return Response({"results": RescoreJobSerializer(jobs, many=True).data})


class RescoreJobDetailApi(ProjectApiView):
    @extend_schema(
        summary="A re-score job's progress",
        tags=["Scoring"],
        parameters=[
            OpenApiParameter("job_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="A re-score job id.")
        ],
        responses=RescoreJobSerializer,
    )
    def get(self, request, job_id: str):
        return Response(RescoreJobSerializer(rescore_job_get(project=self.project, job_id=job_id)).data)


# Reporting: leaderboard, stage counts, the dashboard's numbers and a lead's score history.

MAX_OFFSET = 1_000_000_000


class LeaderboardApi(ProjectApiView):
    @extend_schema(
        summary="The project's live leads by score, highest first",
        tags=["Reports"],
        parameters=[
            OpenApiParameter(
                "limit", {"type": "integer", "minimum": 1, "maximum": 100}, description="Page size (default 10)."
            ),
            OpenApiParameter(
                "offset",
                {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
                description="Leads to skip (default 0).",
            ),
        ],
        responses=LeaderboardSerializer,
    )
    def get(self, request):
        limit = query_int(request, "limit", default=10, minimum=1, maximum=100)
        offset = query_int(request, "offset", default=0, minimum=0, maximum=MAX_OFFSET)
        leads, count = leaderboard(project=self.project, limit=limit, offset=offset)
        return Response({"results": LeadSerializer(leads, many=True).data, "count": count})


class LeaderboardByStageApi(ProjectApiView):
    @extend_schema(summary="How many live leads sit in each stage", tags=["Reports"], responses=StageCountsSerializer)
    def get(self, request):
        return Response(lead_stage_counts(project=self.project))


class AnalyticsDashboardApi(ProjectApiView):
    @extend_schema(summary="The overview dashboard's numbers", tags=["Reports"], responses=DashboardSerializer)
    def get(self, request):
        dashboard = project_dashboard(project=self.project)
        return Response({**dashboard, "topLeads": LeadSerializer(dashboard["topLeads"], many=True).data})


class ScoreHistoryPagination(StrictPageNumberPagination):
    max_page_size = 200


class LeadHistoryApi(ProjectApiView):
    @extend_schema(
        summary="A lead's score changes, newest first",
        tags=["Leads"],
        parameters=[LEAD_ID, *page_parameters(ScoreHistoryPagination.max_page_size)],
        responses=page_of(ScoreHistorySerializer, "LeadScoreHistoryPage"),
    )
    def get(self, request, lead_id: str):
        lead = lead_get(project=self.project, lead_id=lead_id)
        paginator = ScoreHistoryPagination()
        history = lead_history_for_project(project=self.project, lead=lead)
        page = paginator.paginate_queryset(history, request, view=self)
        return paginator.get_paginated_response(ScoreHistorySerializer(page, many=True).data)
