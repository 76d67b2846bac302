"""Dashboard pages of the ingest app: the live event stream, the simulator, integrations."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from leadpulse.dashboard import project_page


@project_page
def events_page(request: HttpRequest) -> HttpResponse:
    return render(request, "stub.html", {"title": "Events"})


@project_page
def simulator_page(request: HttpRequest) -> HttpResponse:
    return render(request, "stub.html", {"title": "Simulator"})


@project_page
def integrations_page(request: HttpRequest) -> HttpResponse:
    return render(request, "stub.html", {"title": "Integrations"})
