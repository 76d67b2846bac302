from django.urls import path

from . import api

urlpatterns = [
    path("api/automations", api.AutomationListApi.as_view(), name="automation-list"),
    path("api/automations/<str:rule_id>", api.AutomationDetailApi.as_view(), name="automation-detail"),
    path(
        "api/automations/<str:rule_id>/executions",
        api.AutomationExecutionListApi.as_view(),
        name="automation-executions",
    ),
    path("api/webhooks", api.WebhookListApi.as_view(), name="webhook-list"),
    path("api/webhooks/subscribe", api.WebhookSubscribeApi.as_view(), name="webhook-subscribe"),
    path("api/webhooks/<str:subscription_id>", api.WebhookDetailApi.as_view(), name="webhook-detail"),
    path("api/webhooks/<str:subscription_id>/test", api.WebhookTestApi.as_view(), name="webhook-test"),
    path(
        "api/webhooks/<str:subscription_id>/deliveries",
        api.WebhookDeliveryListApi.as_view(),
        name="webhook-deliveries",
    ),
    path("api/email-recipients", api.EmailRecipientListApi.as_view(), name="email-recipient-list"),
    path(
        "api/email-recipients/<str:recipient_id>", api.EmailRecipientDetailApi.as_view(), name="email-recipient-detail"
    ),
    path("api/failed-jobs", api.FailedJobListApi.as_view(), name="failed-job-list"),
    path("api/failed-jobs/<str:job_id>/replay", api.FailedJobReplayApi.as_view(), name="failed-job-replay"),
]

from . import views  # noqa: E402

urlpatterns += [
    path("automations/", views.automation_list_view, name="automations"),
    path("automations/rules/", views.automation_create_view, name="automation-create-page"),
    path("automations/rules/<int:rule_id>/toggle/", views.automation_toggle_view, name="automation-toggle-page"),
    path("automations/rules/<int:rule_id>/delete/", views.automation_delete_view, name="automation-delete-page"),
    path("automations/webhooks/", views.webhook_subscribe_view, name="webhook-subscribe-page"),
    path("automations/webhooks/<int:subscription_id>/delete/", views.webhook_delete_view, name="webhook-delete-page"),
    path("automations/webhooks/<int:subscription_id>/test/", views.webhook_test_view, name="webhook-test-page"),
    path("automations/failed-jobs/<int:job_id>/replay/", views.failed_job_replay_view, name="failed-job-replay-page"),
    path("automations/recipients/", views.email_recipient_request_view, name="email-recipient-request-page"),
    path(
        "automations/recipients/<int:recipient_id>/delete/",
        views.email_recipient_delete_view,
        name="email-recipient-delete-page",
    ),
    # public: the recipient, who may have no account, confirms from the link in their mail
    path(
        "automations/recipients/confirm/<str:token>/",
        views.email_recipient_confirm_view,
        name="email-recipient-confirm-page",
    ),
]
