from django.urls import path

from . import views

app_name = "automations"
urlpatterns = [
    path("automations/", views.automation_list_view, name="automation_list"),
    path("automations/rules/", views.automation_create_view, name="automation_create"),
    path("automations/rules/<int:rule_id>/toggle/", views.automation_toggle_view, name="automation_toggle"),
    path("automations/rules/<int:rule_id>/delete/", views.automation_delete_view, name="automation_delete"),
    path("automations/webhooks/", views.webhook_subscribe_view, name="webhook_subscribe"),
    path("automations/webhooks/<int:subscription_id>/delete/", views.webhook_delete_view, name="webhook_delete"),
    path("automations/webhooks/<int:subscription_id>/test/", views.webhook_test_view, name="webhook_test"),
    path("automations/failed-jobs/<int:job_id>/replay/", views.failed_job_replay_view, name="failed_job_replay"),
    path("automations/recipients/", views.email_recipient_request_view, name="email_recipient_request"),
    path(
        "automations/recipients/<int:recipient_id>/delete/",
        views.email_recipient_delete_view,
        name="email_recipient_delete",
    ),
]

# Outside the namespace, under its old name, until services.py (split on another branch) builds the
# emailed link with reverse("automations:email_recipient_confirm"); leadpulse/urls.py includes it.
# Public: the recipient, who may have no account, confirms from the link in their mail.
unnamespaced_urlpatterns = [
    path(
        "automations/recipients/confirm/<str:token>/",
        views.email_recipient_confirm_view,
        name="email-recipient-confirm-page",
    ),
]
