from django.urls import path

from . import views

app_name = "scoring"
urlpatterns = [
    path("leads/", views.lead_list_view, name="lead_list"),
    path("leads/<int:lead_id>/", views.lead_detail_view, name="lead_detail"),
    path("leads/<int:lead_id>/adjustments/", views.lead_adjust_view, name="lead_adjust"),
    path("rules/", views.rule_list_view, name="rule_list"),
    path("leads/export.csv", views.lead_export_view, name="lead_export"),
    path("rules/<int:rule_id>/", views.rule_update_view, name="rule_update"),
    path("rules/<int:rule_id>/toggle/", views.rule_toggle_view, name="rule_toggle"),
    path("rules/<int:rule_id>/delete/", views.rule_delete_view, name="rule_delete"),
    path("rules/settings/", views.scoring_settings_update_view, name="scoring_settings_update"),
    path("rules/rescore-jobs/", views.rescore_job_list_view, name="rescore_job_list"),
    path("rules/draft/", views.rule_draft_start_view, name="rule_draft_start"),
    path("rules/draft/rules/", views.rule_draft_create_view, name="rule_draft_create"),
    path("rules/draft/rules/<int:index>/", views.rule_draft_update_view, name="rule_draft_update"),
    path("rules/draft/rules/<int:index>/delete/", views.rule_draft_delete_view, name="rule_draft_delete"),
    path("rules/draft/settings/", views.rule_draft_settings_view, name="rule_draft_settings"),
    path("rules/draft/preview/", views.rule_draft_preview_view, name="rule_draft_preview"),
    path("rules/draft/publish/", views.rule_draft_publish_view, name="rule_draft_publish"),
    path("rules/draft/discard/", views.rule_draft_discard_view, name="rule_draft_discard"),
    path("models/", views.scoring_model_list_view, name="scoring_model_list"),
    path("models/<str:key>/", views.scoring_model_update_view, name="scoring_model_update"),
    path("models/<str:key>/primary/", views.scoring_model_primary_set_view, name="scoring_model_primary_set"),
    path("models/<str:key>/versions/", views.scoring_model_versions_view, name="scoring_model_versions"),
    path(
        "models/<str:key>/versions/<int:number>/rollback/",
        views.scoring_model_version_rollback_view,
        name="scoring_model_version_rollback",
    ),
    path("models/<str:key>/delete/", views.scoring_model_delete_view, name="scoring_model_delete"),
]
