from django.urls import path

from . import api

app_name = "automations_api"
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
