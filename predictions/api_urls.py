from django.urls import path

from . import api

app_name = "predictions_api"
urlpatterns = [
    path("api/leads/<str:lead_id>/outcome", api.LeadOutcomeApi.as_view(), name="lead-outcome"),
    path("api/outcomes", api.OutcomeListApi.as_view(), name="outcome-list"),
    path("api/outcomes/bulk", api.OutcomeBulkApi.as_view(), name="outcome-bulk"),
    path("api/outcomes/upload", api.OutcomeUploadApi.as_view(), name="outcome-upload"),
    path("api/predictions/settings", api.PredictionSettingsApi.as_view(), name="settings"),
]
