"""Reporting: the leaderboard, stage counts and the dashboard's numbers."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.scoping import ProjectApiView
from core.queries import query_int

from ..selectors import lead_stage_counts, leaderboard, project_dashboard
from ..serializers import DashboardSerializer, LeaderboardSerializer, LeadSerializer, StageCountsSerializer

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
    def get(self, request: Request) -> Response:
        limit = query_int(request, "limit", default=10, minimum=1, maximum=100)
        offset = query_int(request, "offset", default=0, minimum=0, maximum=MAX_OFFSET)
        leads, count = leaderboard(project=self.project, limit=limit, offset=offset)
        return Response({"results": LeadSerializer(leads, many=True).data, "count": count})


class LeaderboardByStageApi(ProjectApiView):
    @extend_schema(summary="How many live leads sit in each stage", tags=["Reports"], responses=StageCountsSerializer)
    def get(self, request: Request) -> Response:
        return Response(lead_stage_counts(project=self.project))


class AnalyticsDashboardApi(ProjectApiView):
    @extend_schema(summary="The overview dashboard's numbers", tags=["Reports"], responses=DashboardSerializer)
    def get(self, request: Request) -> Response:
        dashboard = project_dashboard(project=self.project)
        return Response({**dashboard, "topLeads": LeadSerializer(dashboard["topLeads"], many=True).data})
