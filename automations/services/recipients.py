"""Who a project's automation emails may go to (members and verified recipients), and the daily email budget."""

import secrets
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from accounts.models import Project
from core.errors import ApplicationError
from core.ratelimits import RateLimited

from .. import engine, selectors
from ..models import EmailSendDay, VerifiedRecipient


class EmailBudgetExhausted(RateLimited):
    default_detail = "The project's emails for today are spent."
    default_code = "email_budget_exhausted"


def recipients_validate(*, project: Project, addresses: list[str], field: str) -> None:
    """Refuse an address that is neither a project member's nor verified by its owner (no open relay)."""
    allowed = {address.lower() for address in selectors.email_recipients_allowed(project=project, addresses=addresses)}
    for address in addresses:
        if address.lower() not in allowed:
            raise ApplicationError(
                f"{address} is neither a member of this project nor a verified recipient: request its verification.",
                field=field,
                code="recipient_not_allowed",
            )


def email_budget_spend(*, project_id: int, count: int) -> bool:
    """Take `count` emails from the project's budget for today (UTC); False, taking none, when too few are left.

    Counted by one conditional UPDATE of a row per project and day: concurrent workers on any host
    queue on its lock and each sees the others' counts.
    """
    day = timezone.now().date()
    with transaction.atomic():
        EmailSendDay.objects.get_or_create(project_id=project_id, day=day)
        spent = EmailSendDay.objects.filter(
            project_id=project_id, day=day, sent__lte=settings.LEADPULSE_EMAIL_DAILY_BUDGET - count
        ).update(sent=F("sent") + count)
    return spent == 1


def _seconds_to_tomorrow() -> int:
    now = timezone.now()
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(int((tomorrow - now).total_seconds()), 1)


@transaction.atomic
def email_recipient_request(*, project: Project, email: str) -> tuple[VerifiedRecipient, bool]:
    """Mail `email` a link that makes it a verified recipient of the project's automation emails.

    Returns the recipient and whether a link was sent (not when it is verified already). Each request
    replaces the previous link; the mail counts against the daily email budget (429 when spent).
    """
    email = email.lower()
    if email in selectors.email_recipients_allowed(project=project, addresses=[email]):
        recipient = VerifiedRecipient.objects.filter(project=project, email=email, verified_at__isnull=False).first()
        if recipient is None:
            raise ApplicationError(
                f"{email} is a member of this project: it needs no verification.", field="email", code="member"
            )
        return recipient, False
    if not email_budget_spend(project_id=project.id, count=1):
        raise EmailBudgetExhausted(wait=_seconds_to_tomorrow())
    recipient, _ = VerifiedRecipient.objects.get_or_create(project=project, email=email)
    token = engine.recipient_token_make(recipient_id=recipient.id, nonce=secrets.token_urlsafe(16))
    recipient.token_hash = engine.token_hash(token)
    recipient.save(update_fields=["token_hash", "updated_at"])
    link = settings.LEADPULSE_PUBLIC_URL.rstrip("/") + reverse("email-recipient-confirm-page", args=[token])
    message = (
        f"The LeadPulse project “{engine.one_line(project.name)}” asks to send its automation emails to "
        f"{email}.\n\nTo agree, open this link within 7 days and confirm:\n{link}\n\n"
        "If you did not expect this, ignore this email: nothing will be sent to you."
    )
    transaction.on_commit(
        partial(send_mail, "Confirm LeadPulse automation emails", message, None, [email]), robust=True
    )
    return recipient, True


def email_recipient_confirm(*, token: str) -> VerifiedRecipient:
    """Mark the recipient a confirmation link names as verified; the link works once, and only the latest one."""
    with transaction.atomic():
        recipient = selectors.email_recipient_for_token(token=token, lock=True)
        if recipient is None:
            raise ApplicationError(
                "This link is invalid, expired, used or replaced by a newer one.", code="invalid_token"
            )
        recipient.verified_at = timezone.now()
        recipient.token_hash = ""
        recipient.save(update_fields=["verified_at", "token_hash", "updated_at"])
    return recipient


def email_recipient_delete(*, recipient: VerifiedRecipient) -> None:
    """Forget a recipient: rules naming it stop mailing it at once (recipients are checked at send time)."""
    recipient.delete()
