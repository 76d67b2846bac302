from django.contrib import admin
from django.urls import include, path

from .views import HealthApi, home

urlpatterns = [
    path("", home, name="home"),
    path("admin/", admin.site.urls),
    path("api/health", HealthApi.as_view(), name="health"),
    path("", include("accounts.urls")),
    path("", include("ingest.urls")),
    path("", include("scoring.urls")),
    path("", include("automations.urls")),
]
