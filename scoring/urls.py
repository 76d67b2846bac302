from django.urls import path

from . import api

urlpatterns = [
    path("api/leads", api.LeadListApi.as_view(), name="lead-list"),
    path("api/leads/<str:lead_id>", api.LeadDetailApi.as_view(), name="lead-detail"),
    path("api/leads/<str:lead_id>/timeline", api.LeadTimelineApi.as_view(), name="lead-timeline"),
]
