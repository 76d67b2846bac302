from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework import status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.scoping import ProjectApiView
from core.deadletter import failed_job_get, failed_job_replay, failed_jobs_for_project
from core.fields import EmptySerializer
from core.openapi import page_of, results_of

from . import selectors, services
from .serializers import (
    AutomationExecutionSerializer,
    AutomationRuleSerializer,
    EmailRecipientRequestSerializer,
    EmailRecipientSerializer,
    FailedJobSerializer,
    WebhookDeliverySerializer,
    WebhookSubscribeSerializer,
    WebhookSubscriptionCreatedSerializer,
    WebhookSubscriptionSerializer,
)

PAGE = OpenApiParameter(
    "page",
    # DRF reads an empty `page=` as the first page
    {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "maxLength": 0}]},
    OpenApiParameter.QUERY,
    description="1-based (empty: 1); 404 past the last page.",
)


def _id(name: str, what: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.INT, OpenApiParameter.PATH, description=f"The {what}'s id.")


RULE_ID = _id("rule_id", "automation rule")
SUBSCRIPTION_ID = _id("subscription_id", "webhook subscription")
JOB_ID = _id("job_id", "failed job")
RECIPIENT_ID = _id("recipient_id", "email recipient")


def _page(view: ProjectApiView, queryset, serializer_class) -> Response:
    paginator = PageNumberPagination()
    page: list | None = paginator.paginate_queryset(queryset, view.request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


class AutomationListApi(ProjectApiView):
    @extend_schema(
        summary="List automation rules",
        description="Every rule of the project, oldest first; webhook signing secrets are not shown.",
        tags=["Automations"],
        responses={200: results_of(AutomationRuleSerializer, "AutomationRuleList")},
    )
    def get(self, request: Request) -> Response:
        rules = selectors.automations_for_project(project=self.project)
        return Response({"results": AutomationRuleSerializer(rules, many=True).data})

    @extend_schema(
        summary="Create an automation rule",
        description="When a lead does or becomes `trigger` (and meets `leadConditions`), run `action`, once per "
        "lead per cooldown. A webhook action's signing secret is in this response only. Owners and admins only.",
        tags=["Automations"],
        request=AutomationRuleSerializer,
        responses={201: AutomationRuleSerializer},
    )
    def post(self, request: Request) -> Response:
        self.require_admin()
        serializer = AutomationRuleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rule = services.automation_create(project=self.project, data=serializer.validated_data)
        return Response(
            AutomationRuleSerializer(rule, context={"show_secret": True}).data, status=status.HTTP_201_CREATED
        )


@extend_schema(parameters=[RULE_ID])
class AutomationDetailApi(ProjectApiView):
    @extend_schema(summary="Get an automation rule", tags=["Automations"], responses={200: AutomationRuleSerializer})
    def get(self, request: Request, rule_id: str) -> Response:
        return Response(AutomationRuleSerializer(selectors.automation_get(project=self.project, rule_id=rule_id)).data)

    @extend_schema(
        summary="Replace an automation rule",
        description="Fields left out keep their values; the webhook signing secret survives a changed URL. "
        "Owners and admins only.",
        tags=["Automations"],
        request=AutomationRuleSerializer,
        responses={200: AutomationRuleSerializer},
    )
    def put(self, request: Request, rule_id: str, partial: bool = False) -> Response:
        self.require_admin()
        rule = selectors.automation_get(project=self.project, rule_id=rule_id)
        serializer = AutomationRuleSerializer(rule, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        return Response(
            AutomationRuleSerializer(services.automation_update(rule=rule, data=serializer.validated_data)).data
        )

    @extend_schema(
        summary="Update some fields of an automation rule",
        description="The result is checked as a whole: e.g. a new `trigger` needs a `triggerConfig` that fits it. "
        "Owners and admins only.",
        tags=["Automations"],
        request=AutomationRuleSerializer,
        responses={200: AutomationRuleSerializer},
    )
    def patch(self, request: Request, rule_id: str) -> Response:
        return self.put(request, rule_id, partial=True)

    @extend_schema(
        summary="Delete an automation rule", description="Owners and admins only.", tags=["Automations"],
        responses={204: None},
    )  # fmt: skip
    def delete(self, request: Request, rule_id: str) -> Response:
        self.require_admin()
        services.automation_delete(rule=selectors.automation_get(project=self.project, rule_id=rule_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class AutomationExecutionListApi(ProjectApiView):
    @extend_schema(
        summary="List a rule's executions",
        description="Newest first, 50 a page.",
        tags=["Automations"],
        parameters=[RULE_ID, PAGE],
        responses={200: page_of(AutomationExecutionSerializer, "AutomationExecutionPage")},
    )
    def get(self, request: Request, rule_id: str) -> Response:
        rule = selectors.automation_get(project=self.project, rule_id=rule_id)
        return _page(self, selectors.executions_for_rule(rule=rule), AutomationExecutionSerializer)


class WebhookSubscribeApi(ProjectApiView):
    @extend_schema(
        summary="Subscribe a URL to lead events",
        description="Deliveries are signed with the returned secret, shown here only. Owners and admins only.",
        tags=["Webhooks"],
        request=WebhookSubscribeSerializer,
        responses={201: WebhookSubscriptionCreatedSerializer},
    )
    def post(self, request: Request) -> Response:
        self.require_admin()
        serializer = WebhookSubscribeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        subscription = services.webhook_subscribe(project=self.project, **serializer.validated_data)
        return Response(WebhookSubscriptionCreatedSerializer(subscription).data, status=status.HTTP_201_CREATED)


class WebhookListApi(ProjectApiView):
    @extend_schema(
        summary="List webhook subscriptions",
        description="Newest first; signing secrets are not shown.",
        tags=["Webhooks"],
        responses={200: results_of(WebhookSubscriptionSerializer, "WebhookSubscriptionList")},
    )
    def get(self, request: Request) -> Response:
        subscriptions = selectors.subscriptions_for_project(project=self.project)
        return Response({"results": WebhookSubscriptionSerializer(subscriptions, many=True).data})


class WebhookDetailApi(ProjectApiView):
    @extend_schema(
        summary="Unsubscribe",
        description="Owners and admins only.",
        tags=["Webhooks"],
        parameters=[SUBSCRIPTION_ID],
        responses={204: None},
    )
    def delete(self, request: Request, subscription_id: str) -> Response:
        self.require_admin()
        subscription = selectors.subscription_get(project=self.project, subscription_id=subscription_id)
        services.webhook_unsubscribe(subscription=subscription)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookTestApi(ProjectApiView):
    @extend_schema(
        summary="Send a test delivery",
        description="Queues a signed `ping` to the subscription, answering with the pending delivery. "
        "Owners and admins only.",
        tags=["Webhooks"],
        parameters=[SUBSCRIPTION_ID],
        request=None,
        responses={202: WebhookDeliverySerializer},
    )
    def post(self, request: Request, subscription_id: str) -> Response:
        self.require_admin()
        subscription = selectors.subscription_get(project=self.project, subscription_id=subscription_id)
        EmptySerializer(data=request.data).is_valid(raise_exception=True)
        delivery = services.webhook_test_send(subscription=subscription)
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class WebhookDeliveryListApi(ProjectApiView):
    @extend_schema(
        summary="List a subscription's deliveries",
        description="Newest first, 50 a page.",
        tags=["Webhooks"],
        parameters=[SUBSCRIPTION_ID, PAGE],
        responses={200: page_of(WebhookDeliverySerializer, "WebhookDeliveryPage")},
    )
    def get(self, request: Request, subscription_id: str) -> Response:
        subscription = selectors.subscription_get(project=self.project, subscription_id=subscription_id)
        deliveries = selectors.deliveries_for_project(project=self.project, subscription=subscription)
        return _page(self, deliveries, WebhookDeliverySerializer)


class FailedJobListApi(ProjectApiView):
    @extend_schema(
        summary="List failed jobs (the dead-letter queue)",
        description="Work that exhausted its retries (e.g. webhook deliveries), newest first, 50 a page.",
        tags=["Automations"],
        parameters=[PAGE],
        responses={200: page_of(FailedJobSerializer, "FailedJobPage")},
    )
    def get(self, request: Request) -> Response:
        return _page(self, failed_jobs_for_project(project_id=self.project.id), FailedJobSerializer)


class FailedJobReplayApi(ProjectApiView):
    @extend_schema(
        summary="Replay a failed job",
        description="Runs the job's task again; 202 with the job, now with `replayedAt`. Owners and admins only.",
        tags=["Automations"],
        parameters=[JOB_ID],
        request=None,
        responses={202: FailedJobSerializer},
    )
    def post(self, request: Request, job_id: str) -> Response:
        self.require_admin()
        job = failed_job_get(project_id=self.project.id, job_id=job_id)
        EmptySerializer(data=request.data).is_valid(raise_exception=True)
        job = failed_job_replay(job=job)
        return Response(FailedJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class EmailRecipientListApi(ProjectApiView):
    @extend_schema(
        summary="List email recipients outside the project",
        description="Addresses an email action may mail besides the project's members: verified, or pending "
        "their owner's confirmation.",
        tags=["Automations"],
        responses={200: results_of(EmailRecipientSerializer, "EmailRecipientList")},
    )
    def get(self, request: Request) -> Response:
        recipients = selectors.email_recipients_for_project(project=self.project)
        return Response({"results": EmailRecipientSerializer(recipients, many=True).data})

    @extend_schema(
        summary="Request an email recipient's verification",
        description="Mails the address a confirmation link (valid 7 days; a new request replaces it); once its "
        "owner confirms, email actions may mail it. 202 with the pending recipient; 200 when it is verified "
        "already; 400 for a member's address (members need no verification); 429 when the project's daily "
        "email budget is spent. Owners and admins only.",
        tags=["Automations"],
        request=EmailRecipientRequestSerializer,
        responses={200: EmailRecipientSerializer, 202: EmailRecipientSerializer},
    )
    def post(self, request: Request) -> Response:
        self.require_admin()
        serializer = EmailRecipientRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        recipient, sent = services.email_recipient_request(project=self.project, **serializer.validated_data)
        return Response(
            EmailRecipientSerializer(recipient).data, status=status.HTTP_202_ACCEPTED if sent else status.HTTP_200_OK
        )


class EmailRecipientDetailApi(ProjectApiView):
    @extend_schema(
        summary="Remove an email recipient",
        description="Email actions stop mailing it at once. Owners and admins only.",
        tags=["Automations"],
        parameters=[RECIPIENT_ID],
        responses={204: None},
    )
    def delete(self, request: Request, recipient_id: str) -> Response:
        self.require_admin()
        recipient = selectors.email_recipient_get(project=self.project, recipient_id=recipient_id)
        services.email_recipient_delete(recipient=recipient)
        return Response(status=status.HTTP_204_NO_CONTENT)
