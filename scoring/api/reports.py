"""Reporting: the leaderboard, stage counts and the dashboard's numbers."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.scoping import ProjectApiView
from core.queries import query_int

from ..selectors import lead_matrix_counts, lead_stage_counts, leaderboard, project_dashboard, scoring_model_get
from ..serializers import DashboardSerializer, LeaderboardSerializer, MatrixSerializer, StageCountsSerializer
from .leads import MODEL_PARAMETER, leads_data, request_model

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
            MODEL_PARAMETER,
        ],
        responses=LeaderboardSerializer,
    )
    def get(self, request: Request) -> Response:
        limit = query_int(request, "limit", default=10, minimum=1, maximum=100)
        offset = query_int(request, "offset", default=0, minimum=0, maximum=MAX_OFFSET)
        model = request_model(self, request)
        leads, count = leaderboard(project=self.project, limit=limit, offset=offset, model=model)
        return Response({"results": leads_data(self, leads), "count": count})


class LeaderboardByStageApi(ProjectApiView):
    @extend_schema(
        summary="How many live leads sit in each stage",
        tags=["Reports"],
        parameters=[MODEL_PARAMETER],
        responses=StageCountsSerializer,
    )
    def get(self, request: Request) -> Response:
        return Response(lead_stage_counts(project=self.project, model=request_model(self, request)))


class AnalyticsDashboardApi(ProjectApiView):
    @extend_schema(
        summary="The overview dashboard's numbers",
        tags=["Reports"],
        parameters=[MODEL_PARAMETER],
        responses=DashboardSerializer,
    )
    def get(self, request: Request) -> Response:
        dashboard = project_dashboard(project=self.project, model=request_model(self, request))
        return Response({**dashboard, "topLeads": leads_data(self, dashboard["topLeads"])})


class AnalyticsMatrixApi(ProjectApiView):
    @extend_schema(
        summary="How many live leads sit in each fit x engagement cell",
        description="The 12 cells A1 … D3 of a scoring model (the primary one by default): the fit grade (A-D), "
        "then the engagement tier (1: engagement score ≥ the model's hot threshold, 2: ≥ its warm threshold, "
        "3: below). `GET /api/leads?matrix=<cell>&model=<key>` lists a cell's leads.",
        tags=["Reports"],
        parameters=[MODEL_PARAMETER],
        responses=MatrixSerializer,
    )
    def get(self, request: Request) -> Response:
        model = scoring_model_get(project=self.project, key=request.query_params.get("model") or None)
        cells = lead_matrix_counts(project=self.project, model=model)
        return Response(
            {
                "model": model.key,
                "warmThreshold": model.warm_threshold,
                "hotThreshold": model.hot_threshold,
                "total": sum(cells.values()),
                "cells": cells,
            }
        )
