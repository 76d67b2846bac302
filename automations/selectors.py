"""Reads of automations and webhooks, always scoped to a project."""

import hmac

from django.db.models import QuerySet

from accounts.models import Project
from accounts.selectors import members_for_project
from core.errors import NotFound

from . import engine
from .models import AutomationExecution, AutomationRule, VerifiedRecipient, WebhookDelivery, WebhookSubscription


def _get(queryset: QuerySet, object_id: int | str, what: str):
    try:
        return queryset.get(id=int(object_id))
    except (TypeError, ValueError, queryset.model.DoesNotExist):
        raise NotFound(f"{what} not found.") from None


def automations_for_project(*, project: Project) -> QuerySet[AutomationRule]:
    return AutomationRule.objects.filter(project=project).order_by("id")


def automation_get(*, project: Project, rule_id: int | str) -> AutomationRule:
    return _get(AutomationRule.objects.filter(project=project), rule_id, "Automation")


def executions_for_rule(*, rule: AutomationRule) -> QuerySet[AutomationExecution]:
    return AutomationExecution.objects.filter(rule=rule, project_id=rule.project_id).order_by("-id")


def subscriptions_for_project(*, project: Project) -> QuerySet[WebhookSubscription]:
    return WebhookSubscription.objects.filter(project=project).order_by("-id")


def subscription_get(*, project: Project, subscription_id: int | str) -> WebhookSubscription:
    return _get(WebhookSubscription.objects.filter(project=project), subscription_id, "Webhook subscription")


def deliveries_for_project(*, project: Project, subscription: WebhookSubscription | None = None):
    deliveries = WebhookDelivery.objects.filter(project=project)
    if subscription is not None:
        deliveries = deliveries.filter(subscription=subscription)
    return deliveries.order_by("-id")


EXECUTION_LOG_SIZE = 20


def executions_by_rule(*, project: Project, limit: int = EXECUTION_LOG_SIZE) -> dict[int, list[AutomationExecution]]:
    """The latest `limit` executions of each of the project's rules, with their leads, in one query."""
    from django.db.models import F, Window  # imported here: this module's header is shared
    from django.db.models.functions import RowNumber

    latest = (
        AutomationExecution.objects.filter(project=project)
        .annotate(position=Window(RowNumber(), partition_by=F("rule_id"), order_by=F("id").desc()))
        .filter(position__lte=limit)
        .select_related("lead")
        .order_by("rule_id", "-id")
    )
    by_rule: dict[int, list[AutomationExecution]] = {}
    for execution in latest:
        by_rule.setdefault(execution.rule_id, []).append(execution)
    return by_rule


def recent_deliveries_for_project(*, project: Project, limit: int = 50) -> list[WebhookDelivery]:
    """The project's latest deliveries, with their subscriptions."""
    deliveries = deliveries_for_project(project=project).select_related("subscription")
    return list(deliveries[:limit])


def project_has_lead_listeners(*, project_id: int) -> bool:
    """Any active automation rule or webhook subscription in the project?"""
    return (
        AutomationRule.objects.filter(project_id=project_id, is_active=True).exists()
        or WebhookSubscription.objects.filter(project_id=project_id, is_active=True).exists()
    )


def email_recipients_for_project(*, project: Project) -> QuerySet[VerifiedRecipient]:
    return VerifiedRecipient.objects.filter(project=project).order_by("email")


def email_recipient_get(*, project: Project, recipient_id: int | str) -> VerifiedRecipient:
    return _get(VerifiedRecipient.objects.filter(project=project), recipient_id, "Recipient")


def email_recipients_allowed(*, project: Project, addresses: list[str]) -> list[str]:
    """Those of `addresses` the project may mail now: its active members' and its verified recipients' (any case)."""
    from django.db.models.functions import Lower  # imported here: this module's header is shared

    wanted = sorted({address.lower() for address in addresses})
    members = members_for_project(project=project).filter(user__is_active=True)
    allowed = set(
        members.annotate(address=Lower("user__email")).filter(address__in=wanted).values_list("address", flat=True)
    )
    verified = VerifiedRecipient.objects.filter(project=project, email__in=wanted, verified_at__isnull=False)
    allowed |= set(verified.values_list("email", flat=True))
    recipients: list[str] = []
    for address in addresses:
        if address.lower() in allowed and address.lower() not in {r.lower() for r in recipients}:
            recipients.append(address)
    return recipients


def email_recipient_for_token(*, token: str, lock: bool = False) -> VerifiedRecipient | None:
    """The not yet verified recipient a confirmation link names, if the link is genuine, recent and its latest."""
    recipient_id = engine.recipient_token_read(token)
    if recipient_id is None:
        return None
    recipients = VerifiedRecipient.objects.select_related("project").filter(id=recipient_id, verified_at__isnull=True)
    recipient = (recipients.select_for_update(of=("self",)) if lock else recipients).first()
    if recipient is None or not recipient.token_hash:
        return None
    return recipient if hmac.compare_digest(recipient.token_hash, engine.token_hash(token)) else None
