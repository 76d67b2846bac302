from django.urls import path

from . import api

app_name = "predictions_api"
urlpatterns = [
    path("api/leads/<str:lead_id>/outcome", api.LeadOutcomeApi.as_view(), name="lead-outcome"),
    path("api/outcomes", api.OutcomeListApi.as_view(), name="outcome-list"),
    path("api/outcomes/bulk", api.OutcomeBulkApi.as_view(), name="outcome-bulk"),
    path("api/outcomes/upload", api.OutcomeUploadApi.as_view(), name="outcome-upload"),
    path("api/predictions/settings", api.PredictionSettingsApi.as_view(), name="settings"),
    path("api/predictions/train", api.TrainApi.as_view(), name="train"),
    path("api/predictions/jobs/<str:job_id>", api.TrainingJobApi.as_view(), name="job"),
    path("api/predictions/report", api.ReportApi.as_view(), name="report"),
    path("api/predictions/suggestions", api.SuggestionsApi.as_view(), name="suggestions"),
    path("api/predictions/suggestions/apply", api.SuggestionsApplyApi.as_view(), name="suggestions-apply"),
]
