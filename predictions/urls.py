from django.urls import path

from . import views

app_name = "predictions"
urlpatterns = [
    path("leads/<int:lead_id>/outcome/", views.lead_outcome_view, name="lead_outcome"),
    path("leads/<int:lead_id>/outcome/clear/", views.lead_outcome_clear_view, name="lead_outcome_clear"),
    path("predictions/", views.predictions_view, name="report"),
    path("predictions/train/", views.predictions_train_view, name="train"),
    path("predictions/suggestions/apply/", views.predictions_apply_view, name="suggestions_apply"),
    path("predictions/jobs/<int:job_id>/", views.training_job_view, name="job"),
]
