from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from automations.urls import unnamespaced_urlpatterns as automations_unnamespaced
from core.metrics import metrics_view

from .views import HealthApi, project_overview_view, system_status_view

urlpatterns = [
    # First: ingest is most of the traffic, and Django tries patterns in order (its routes are exact
    # paths no other pattern matches, so the order changes nothing else).
    path("", include("ingest.api_urls")),
    path("", project_overview_view, name="project_overview"),
    path("system/", system_status_view, name="system_status"),
    path("", include("social_django.urls", namespace="social")),
    path("admin/", admin.site.urls),
    path("api/health", HealthApi.as_view(), name="health"),
    path("metrics", metrics_view, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script from ?script, not inline (Content-Security-Policy).
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api_docs.html"),
        name="api-docs",
    ),
    # Each app's pages (namespace `<app>`, urls.py) and API (namespace `<app>_api`, api_urls.py).
    path("", include("accounts.urls")),
    path("", include("accounts.api_urls")),
    path("", include("ingest.urls")),
    path("", include("scoring.api_urls")),
    path("", include("scoring.urls")),
    path("", include("automations.api_urls")),
    path("", include("automations.urls")),
    path("", include("predictions.api_urls")),
    path("", include("predictions.urls")),
    *automations_unnamespaced,
]

handler404 = "leadpulse.views.not_found"
handler500 = "leadpulse.views.server_error"
