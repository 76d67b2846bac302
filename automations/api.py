from rest_framework import status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from leadpulse.api import ProjectApiView
from leadpulse.deadletter import failed_job_get, failed_job_replay, failed_jobs_for_project

from . import selectors, services
from .serializers import (
    AutomationExecutionSerializer,
    AutomationRuleSerializer,
    FailedJobSerializer,
    WebhookDeliverySerializer,
    WebhookSubscribeSerializer,
    WebhookSubscriptionSerializer,
)


def _page(view: ProjectApiView, queryset, serializer_class) -> Response:
    paginator = PageNumberPagination()
    page: list | None = paginator.paginate_queryset(queryset, view.request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


class AutomationListApi(ProjectApiView):
    def get(self, request):
        rules = selectors.automations_for_project(project=self.project)
        return Response({"results": AutomationRuleSerializer(rules, many=True).data})

    def post(self, request):
        self.require_admin()
        serializer = AutomationRuleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rule = services.automation_create(project=self.project, data=serializer.validated_data)
        return Response(
            AutomationRuleSerializer(rule, context={"show_secret": True}).data, status=status.HTTP_201_CREATED
        )


class AutomationDetailApi(ProjectApiView):
    def get(self, request, rule_id: str):
        return Response(AutomationRuleSerializer(selectors.automation_get(project=self.project, rule_id=rule_id)).data)

    def put(self, request, rule_id: str, partial: bool = False):
        self.require_admin()
        rule = selectors.automation_get(project=self.project, rule_id=rule_id)
        serializer = AutomationRuleSerializer(rule, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return Response(
            AutomationRuleSerializer(services.automation_update(rule=rule, data=serializer.validated_data)).data
        )

    def patch(self, request, rule_id: str):
        return self.put(request, rule_id, partial=True)

    def delete(self, request, rule_id: str):
        self.require_admin()
        services.automation_delete(rule=selectors.automation_get(project=self.project, rule_id=rule_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class AutomationExecutionListApi(ProjectApiView):
    def get(self, request, rule_id: str):
        rule = selectors.automation_get(project=self.project, rule_id=rule_id)
        return _page(self, selectors.executions_for_rule(rule=rule), AutomationExecutionSerializer)


class WebhookSubscribeApi(ProjectApiView):
    def post(self, request):
        self.require_admin()
        serializer = WebhookSubscribeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        subscription = services.webhook_subscribe(project=self.project, **serializer.validated_data)
        body = {**WebhookSubscriptionSerializer(subscription).data, "secret": subscription.secret}
        return Response(body, status=status.HTTP_201_CREATED)


class WebhookListApi(ProjectApiView):
    def get(self, request):
        subscriptions = selectors.subscriptions_for_project(project=self.project)
        return Response({"results": WebhookSubscriptionSerializer(subscriptions, many=True).data})


class WebhookDetailApi(ProjectApiView):
    def delete(self, request, subscription_id: str):
        self.require_admin()
        subscription = selectors.subscription_get(project=self.project, subscription_id=subscription_id)
        services.webhook_unsubscribe(subscription=subscription)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookTestApi(ProjectApiView):
    def post(self, request, subscription_id: str):
        self.require_admin()
        subscription = selectors.subscription_get(project=self.project, subscription_id=subscription_id)
        delivery = services.webhook_test_send(subscription=subscription)
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookDeliveryListApi(ProjectApiView):
    def get(self, request, subscription_id: str):
        subscription = selectors.subscription_get(project=self.project, subscription_id=subscription_id)
        deliveries = selectors.deliveries_for_project(project=self.project, subscription=subscription)
        return _page(self, deliveries, WebhookDeliverySerializer)


class FailedJobListApi(ProjectApiView):
    def get(self, request):
        return _page(self, failed_jobs_for_project(project=self.project), FailedJobSerializer)


class FailedJobReplayApi(ProjectApiView):
    def post(self, request, job_id: str):
        self.require_admin()
        job = failed_job_replay(job=failed_job_get(project=self.project, job_id=job_id))
        return Response(FailedJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
