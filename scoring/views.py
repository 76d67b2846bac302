"""Dashboard pages of the scoring app: leads, a lead, rules."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from leadpulse.dashboard import project_page


@project_page
def leads_page(request: HttpRequest) -> HttpResponse:
    return render(request, "stub.html", {"title": "Leads"})


@project_page
def lead_page(request: HttpRequest, lead_id: int) -> HttpResponse:
    return render(request, "stub.html", {"title": "Lead"})


@project_page
def rules_page(request: HttpRequest) -> HttpResponse:
    return render(request, "stub.html", {"title": "Rules"})
