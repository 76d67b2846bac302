"""Webhook subscriptions: subscribe a public URL to lead events, unsubscribe, send a test `ping`."""

from django.conf import settings
from django.db import transaction

from accounts.models import Project
from core.errors import ApplicationError
from core.pipeline import lead_listeners_changed

from ..models import WebhookDelivery, WebhookSubscription
from ..ssrf import UnsafeUrl, url_check
from .deliveries import delivery_create


def url_validate(url: str, *, field: str = "url") -> str:
    """Refuse non-http(s) and internal addresses at save time (checked again at delivery)."""
    try:
        url_check(url, allow_private=settings.LEADPULSE_WEBHOOK_ALLOW_PRIVATE)
    except UnsafeUrl as exc:
        raise ApplicationError(str(exc), field=field, code="unsafe_url") from None
    return url


@transaction.atomic
def webhook_subscribe(*, project: Project, url: str, events: list[str]) -> WebhookSubscription:
    """Subscribe a URL to lead events; its signing secret is returned once, here."""
    lead_listeners_changed(project_id=project.id)
    return WebhookSubscription.objects.create(project=project, url=url_validate(url), events=sorted(set(events)))


@transaction.atomic
def webhook_unsubscribe(*, subscription: WebhookSubscription) -> None:
    lead_listeners_changed(project_id=subscription.project_id)
    subscription.delete()


def webhook_test_send(*, subscription: WebhookSubscription) -> WebhookDelivery:
    """Queue a signed `ping` to the subscription now."""
    with transaction.atomic():
        delivery = delivery_create(
            project_id=subscription.project_id,
            url=subscription.url,
            event="ping",
            data={"message": "A test delivery from LeadPulse."},
            subscription=subscription,
        )
    assert delivery is not None  # only deliveries of a change are deduplicated
    return delivery
