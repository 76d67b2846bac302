from django.contrib import admin
from django.urls import include, path

from .views import HealthApi, overview, system

urlpatterns = [
    path("", overview, name="overview"),
    path("system/", system, name="system"),
    path("", include("social_django.urls", namespace="social")),
    path("admin/", admin.site.urls),
    path("api/health", HealthApi.as_view(), name="health"),
    path("", include("accounts.urls")),
    path("", include("ingest.urls")),
    path("", include("scoring.urls")),
    path("", include("automations.urls")),
]
