import sys
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.defaults import page_not_found
from django.views.defaults import server_error as django_server_error
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.scoping import ProjectRequest, project_page
from core.charts import bar_chart
from core.errors import (
    API_PREFIXES,
    ApplicationError,
    NotFound,
    database_unavailable,
    database_unavailable_response,
    error_response,
)
from predictions.selectors import training_jobs_recent
from scoring.selectors import (
    lead_matrix_counts,
    lead_stage_counts,
    leaderboard,
    project_dashboard,
    scoring_model_choice,
)

from .health import system_health


class HealthApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    # the same shape with 200 and 503
    health = inline_serializer(
        "Health",
        fields={
            "status": serializers.ChoiceField(choices=[("ok", "Everything is up"), ("degraded", "Something is down")]),
            "database": serializers.ChoiceField(choices=[("ok", "Answers"), ("down", "Unreachable")]),
            "redis": serializers.ChoiceField(
                choices=[("ok", "Answers"), ("down", "Unreachable"), ("embedded", "None configured (in-process)")]
            ),
            "worker": inline_serializer(
                "HealthWorker",
                fields={
                    "status": serializers.ChoiceField(
                        choices=[("ok", "A recent heartbeat"), ("down", "No recent heartbeat")]
                    ),
                    "lastHeartbeat": serializers.DateTimeField(allow_null=True),
                },
            ),
        },
    )

    @extend_schema(
        summary="Liveness of the database, Redis and the workers",
        description="Unauthenticated; says nothing about any project's data.",
        tags=["Health"],
        auth=[],
        responses={
            200: OpenApiResponse(health, description="Everything is up."),
            503: OpenApiResponse(health, description="Degraded: the database, Redis or every worker is down."),
        },
    )
    def get(self, request: Request) -> Response:
        health = system_health()
        return Response(health, status=200 if health["status"] == "ok" else 503)


@project_page
def project_overview_view(request: ProjectRequest) -> HttpResponse:
    """KPIs, events per day, stages, event types and the top leads of the current project (stages, qualified
    and top leads by `?model=`'s scores)."""
    try:
        choice = scoring_model_choice(project=request.project, key=request.GET.get("model"))
    except NotFound:
        raise Http404 from None
    data = project_dashboard(project=request.project)
    model = choice.model
    top = [(lead, lead.current_score, lead.lead_stage) for lead in data["topLeads"]]
    if not model.is_primary:
        data["stageDistribution"] = lead_stage_counts(project=request.project, model=model)
        data["qualifiedLeads"] = data["stageDistribution"]["qualified"]
        leads, _ = leaderboard(project=request.project, limit=10, offset=0, model=model)
        top = [(lead, lead.model_score, lead.model_stage) for lead in leads]  # type: ignore[attr-defined]
    days = data["eventsPerDay"]
    nonce = request.csp_nonce
    charts = {
        "perDay": bar_chart(
            labels=[d["date"][5:] for d in days],
            values=[d["count"] for d in days],
            title="Events per day",
            every=5,
            nonce=nonce,
        ),
        "stages": bar_chart(
            labels=list(data["stageDistribution"]),
            values=list(data["stageDistribution"].values()),
            title="Leads by stage",
            width=480,
            nonce=nonce,
        ),
        "types": bar_chart(
            labels=list(data["eventsByType"]),
            values=list(data["eventsByType"].values()),
            title="Events by type",
            width=480,
            nonce=nonce,
        ),
    }
    switcher = {"choice": choice, "keep": []}
    matrix = matrix_heat_map(counts=lead_matrix_counts(project=request.project, model=model), model=model)
    context = {"data": data, "charts": charts, "top": top, "switcher": switcher, "matrix": matrix}
    return render(request, "overview.html", context)


HEAT_LEVELS = 5  # the stylesheet's .heat-1 … .heat-5 (.heat-0: no leads)


def matrix_heat_map(*, counts: dict[str, int], model: Any) -> list[dict[str, Any]]:
    """The matrix as rows A-D of cells 1-3, each with its count, colour level (by its share of the largest
    cell) and the link to the leads list filtered to it (under the model shown)."""
    largest = max(counts.values(), default=0)
    leads_url = reverse("scoring:lead_list")
    keep = {} if model.is_primary else {"model": model.key}
    rows: dict[str, list[dict[str, Any]]] = {}
    for cell, count in counts.items():
        level = 0 if not count else max(1, -(-count * HEAT_LEVELS // largest))  # ceiling: any lead shows
        href = f"{leads_url}?{urlencode({'matrix': cell, **keep})}"
        rows.setdefault(cell[0], []).append({"cell": cell, "count": count, "level": level, "href": href})
    return [{"grade": grade, "cells": cells} for grade, cells in rows.items()]


@project_page
def system_status_view(request: ProjectRequest) -> HttpResponse:
    training = training_jobs_recent(project=request.project, limit=1)
    context = {"health": system_health(project_id=request.project.id), "training": training[0] if training else None}
    return render(request, "system.html", context)


# The API answers in its one error shape even where no DRF view is reached: an unknown URL
# (or an id that does not match a route's converter) and an unhandled exception.


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith(API_PREFIXES):
        return error_response(NotFound("Not found."))
    return page_not_found(request, exception)  # type: ignore[arg-type]


def server_error(request: HttpRequest) -> HttpResponse:
    exc = sys.exc_info()[1]  # set when Django handles the exception in this thread
    if exc is not None and database_unavailable(exc):
        return database_unavailable_response(request, exc)
    if request.path.startswith(API_PREFIXES):
        return error_response(ApplicationError("Internal server error.", code="server_error", status_code=500))
    return django_server_error(request)
