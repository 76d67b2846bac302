from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from .health import system_health


class HealthApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get(self, request):
        health = system_health()
        return Response(health, status=200 if health["status"] == "ok" else 503)


def home(request: HttpRequest) -> HttpResponse:
    """The landing page `make run` points at (the dashboard replaces it)."""
    return render(request, "home.html", {"health": system_health()})
