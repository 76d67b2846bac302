"""Dashboard pages of the automations app."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from leadpulse.dashboard import project_page


@project_page
def automations_page(request: HttpRequest) -> HttpResponse:
    return render(request, "stub.html", {"title": "Automations & webhooks"})
