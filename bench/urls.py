"""The application's URLs plus `POST /bench/bare`, the floor the ingest benchmark compares against.

The bare view is what any Django JSON endpoint costs on the same server process: the same
middleware, request parsing and JSON response, and nothing of ingest (no key, no database,
no Redis). Only `bench.settings` routes here.
"""

import json

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from leadpulse.urls import handler404, handler500  # noqa: F401 (the application's error pages)
from leadpulse.urls import urlpatterns as app_urlpatterns


@csrf_exempt
def bare(request: HttpRequest) -> JsonResponse:
    body = json.loads(request.body or b"{}")
    return JsonResponse({"message": "Event queued", "eventId": body.get("eventId")}, status=202)


urlpatterns = [path("bench/bare", bare, name="bench-bare"), *app_urlpatterns]
