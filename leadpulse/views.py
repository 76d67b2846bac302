from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from scoring.selectors import project_dashboard

from .charts import bar_chart
from .dashboard import project_page
from .health import system_health


class HealthApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request):
        health = system_health()
        return Response(health, status=200 if health["status"] == "ok" else 503)


@project_page
def overview(request: HttpRequest) -> HttpResponse:
    """KPIs, events per day, stages, event types and the top leads of the current project."""
    data = project_dashboard(project=request.project)  # type: ignore[attr-defined]
    days = data["eventsPerDay"]
    charts = {
        "perDay": bar_chart(
            labels=[d["date"][5:] for d in days], values=[d["count"] for d in days], title="Events per day", every=5
        ),
        "stages": bar_chart(
            labels=list(data["stageDistribution"]),
            values=list(data["stageDistribution"].values()),
            title="Leads by stage",
            width=480,
        ),
        "types": bar_chart(
            labels=list(data["eventsByType"]),
            values=list(data["eventsByType"].values()),
            title="Events by type",
            width=480,
        ),
    }
    return render(request, "overview.html", {"data": data, "charts": charts})


@project_page
def system(request: HttpRequest) -> HttpResponse:
    return render(request, "system.html", {"health": system_health(project_id=request.project.id)})  # type: ignore[attr-defined]
