from django.urls import path

from . import views

app_name = "predictions"
urlpatterns = [
    path("leads/<int:lead_id>/outcome/", views.lead_outcome_view, name="lead_outcome"),
    path("leads/<int:lead_id>/outcome/clear/", views.lead_outcome_clear_view, name="lead_outcome_clear"),
]
