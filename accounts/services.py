"""Writes for users, projects, memberships and keys."""

import hashlib
import secrets
from datetime import timedelta
from typing import Any, cast

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import models, transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from core.errors import ApplicationError, Forbidden, NotFound

from .authentication import user_for_token
from .models import ApiKey, Invitation, Membership, Project, User

WRITE_KEY_PREFIX = "lp_pub_"


def key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def write_key_cache_key(digest: str) -> str:
    return f"lp:write-key:{digest}"


def _write_key_create(*, project: Project) -> ApiKey:
    raw = WRITE_KEY_PREFIX + secrets.token_urlsafe(24)  # 192 bits of randomness
    return ApiKey.objects.create(
        project=project, kind=ApiKey.Kind.WRITE, prefix=raw[:12], key_hash=key_hash(raw), key=raw
    )


@transaction.atomic
def project_create(*, owner: User, name: str, domain: str = "") -> Project:
    """Create a project owned by `owner`, with a write key and its provisioned defaults."""
    project = Project.objects.create(name=name, domain=domain)
    Membership.objects.create(user=owner, project=project, role=Membership.Role.OWNER)
    _write_key_create(project=project)
    # Apps above accounts (scoring's default rules, ...) provision through this hook list,
    # which keeps the app graph acyclic.
    for path in settings.LEADPULSE_PROJECT_PROVISIONERS:
        import_string(path)(project=project)
    return project


@transaction.atomic
def user_register(*, email: str, password: str, name: str = "") -> tuple[User, Project]:
    """Create a user and their own first project."""
    user = User.objects.create_user(email=email, password=password, name=name)
    domain = user.email.split("@")[-1]
    project_name = f"{name}'s project" if name else f"{domain} project"
    # an email's domain may be longer than a project's name can be
    max_length = Project._meta.get_field("name").max_length or len(project_name)
    project = project_create(owner=user, name=project_name[:max_length], domain=domain)
    return user, project


@transaction.atomic
def write_key_rotate(*, project: Project) -> ApiKey:
    """Revoke the project's write key at once and issue a new one."""
    old_keys = list(
        ApiKey.objects.select_for_update().filter(project=project, kind=ApiKey.Kind.WRITE, revoked_at__isnull=True)
    )
    ApiKey.objects.filter(pk__in=[k.pk for k in old_keys]).update(revoked_at=timezone.now())
    new_key = _write_key_create(project=project)
    transaction.on_commit(lambda: cache.delete_many([write_key_cache_key(k.key_hash) for k in old_keys]))
    return new_key


INVITATION_LIFETIME = timedelta(days=7)
INVITATION_GONE = {
    "accepted": "This invitation was already accepted.",
    "revoked": "This invitation was withdrawn by the project's admins.",
    "expired": "This invitation expired. Ask the project's admins for a new one.",
}


def invitation_check_open(invitation: Invitation) -> Invitation:
    """The invitation if it can still be accepted; 410 `invitation_accepted|revoked|expired` otherwise."""
    status = invitation.status
    if status != "pending":
        raise ApplicationError(INVITATION_GONE[status], code=f"invitation_{status}", status_code=410)
    return invitation


@transaction.atomic
def invitation_create(*, project: Project, email: str, role: str, invited_by: User, base_url: str) -> Invitation:
    """Invite an address to a project (renewing its open invitation) and email it a link to accept.

    Nothing changes for the invitee until they accept: no account is created, no membership added.
    """
    if role not in (Membership.Role.ADMIN, Membership.Role.MEMBER):
        raise ApplicationError("Invitations grant admin or member.", field="role")
    email = email.strip().lower()
    # Invitations to one project queue here, so one address never gets two open invitations.
    Project.objects.select_for_update(no_key=True).filter(pk=project.pk).first()
    if Membership.objects.filter(project=project, user__email__iexact=email).exists():
        raise ApplicationError(
            f"{email} is already a member of this project.", field="email", code="already_member", status_code=409
        )
    invitation = Invitation.objects.filter(
        project=project, email=email, accepted_at__isnull=True, revoked_at__isnull=True
    ).first() or Invitation(project=project, email=email)
    token = secrets.token_urlsafe(32)  # 256 bits; only its hash is stored, and a renewal replaces it
    invitation.role = role
    invitation.invited_by = invited_by
    invitation.token_hash = key_hash(token)
    invitation.expires_at = timezone.now() + INVITATION_LIFETIME
    invitation.save()
    inviter = invited_by.name or invited_by.email
    body = (
        f"{inviter} invited you to join the LeadPulse project {project.name} as {role}.\n\n"
        f"Accept the invitation: {base_url}/invitations/{token}/\n\n"
        f"The link works for {INVITATION_LIFETIME.days} days. Sign in as {email}, or create an account with "
        "this address if you have none. If you did not expect this, ignore it: nothing happens unless you accept.\n"
    )
    transaction.on_commit(
        lambda: send_mail(
            subject=f"You're invited to {project.name} on LeadPulse",
            message=body,
            from_email=None,
            recipient_list=[email],
        )
    )
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, user: User) -> Membership:
    """Join the project of an open invitation addressed to the user's email; the invitation is used up."""
    invitation = (
        Invitation.objects.select_for_update(of=("self",))
        .select_related("project")
        .filter(token_hash=key_hash(token))
        .first()
    )
    if invitation is None:
        raise NotFound("Invitation not found.")
    invitation_check_open(invitation)
    if invitation.email != user.email.lower():
        raise Forbidden(
            f"This invitation is for {invitation.email}: sign in with that address to accept it.",
            code="invitation_for_another_user",
        )
    # someone already a member (added since) keeps their role: an invitation never demotes anyone
    membership, _ = Membership.objects.get_or_create(
        user=user, project=invitation.project, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at", "updated_at"])
    return membership


def invitation_revoke(*, invitation: Invitation) -> Invitation:
    """Withdraw an invitation that was not accepted: its link stops working (revoking twice is a no-op)."""
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at", "updated_at"])
    return invitation


def project_keys_forget(*, project: Project) -> None:
    """Drop the cached write-key lookups of a project (after it is deactivated or reactivated)."""
    digests = ApiKey.objects.filter(project=project, kind=ApiKey.Kind.WRITE).values_list("key_hash", flat=True)
    keys = [write_key_cache_key(digest) for digest in digests]
    transaction.on_commit(lambda: cache.delete_many(keys))


SECRET_KEY_PREFIX = "lp_sec_"  # noqa: S105 (a key prefix, not a password)
SECRET_KEY_TOUCH_SECONDS = 60


def secret_key_create(*, project: Project) -> tuple[ApiKey, str]:
    """Issue a secret key; return the row and the plaintext, which is never stored."""
    raw = SECRET_KEY_PREFIX + secrets.token_urlsafe(32)  # 256 bits of randomness
    api_key = ApiKey.objects.create(
        project=project, kind=ApiKey.Kind.SECRET, prefix=raw[:12], key_hash=key_hash(raw), key=""
    )
    return api_key, raw


def secret_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a secret key at once (revoking twice keeps the first time)."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at", "updated_at"])
    return api_key


def secret_key_touch(*, api_key: ApiKey) -> None:
    """Record that a secret key was used, writing at most once a minute per key."""
    now = timezone.now()
    if api_key.last_used_at and (now - api_key.last_used_at).total_seconds() < SECRET_KEY_TOUCH_SECONDS:
        return
    # a conditional UPDATE, so concurrent requests do not all write
    stale = models.Q(last_used_at__isnull=True) | models.Q(
        last_used_at__lt=now - timedelta(seconds=SECRET_KEY_TOUCH_SECONDS)
    )
    ApiKey.objects.filter(stale, pk=api_key.pk).update(last_used_at=now)
    api_key.last_used_at = now


@transaction.atomic
def project_update(
    *, project: Project, name: str | None = None, domain: str | None = None, is_active: bool | None = None
) -> Project:
    """Rename, re-domain or (de)activate a project; ingest sees an activity change at once."""
    fields = []
    if name is not None:
        project.name = name
        fields.append("name")
    if domain is not None:
        project.domain = domain
        fields.append("domain")
    activity_changed = is_active is not None and is_active != project.is_active
    if is_active is not None:
        project.is_active = is_active
        fields.append("is_active")
    if fields:
        project.save(update_fields=[*fields, "updated_at"])
    if activity_changed:
        project_keys_forget(project=project)
    return project


def session_tokens_issue(*, user: User) -> tuple[str, str]:
    """Sign a user in to the API: an access token and a single-use refresh token."""
    refresh = RefreshToken.for_user(user)
    return str(refresh.access_token), str(refresh)


def _refresh_token(raw_refresh: str) -> RefreshToken:
    try:
        return RefreshToken(raw_refresh)  # type: ignore[arg-type]  # verifies signature, expiry, type, blacklist
    except TokenError as exc:
        raise InvalidToken(exc.args[0]) from exc


@transaction.atomic
def session_refresh(*, raw_refresh: str) -> tuple[str, str]:
    """Spend a refresh token for a new access and refresh token; a spent, revoked or outdated one is 401."""
    refresh = _refresh_token(raw_refresh)
    user = user_for_token(refresh)  # still active, password unchanged since it was issued
    # simplejwt annotates blacklist() as the row; it returns get_or_create's (row, created). The
    # unique blacklist row decides a race: of two requests spending one token, one creates it.
    _row, spent_now = cast(tuple[Any, bool], refresh.blacklist())
    if not spent_now:
        raise InvalidToken("Token is blacklisted")
    return session_tokens_issue(user=user)


def session_revoke(*, raw_refresh: str) -> None:
    """Sign out: the refresh token can no longer be exchanged (access tokens expire on their own)."""
    _refresh_token(raw_refresh).blacklist()


def expired_tokens_flush() -> int:
    """Delete the records of refresh tokens that expired (a blacklist entry goes with its token)."""
    deleted, _ = OutstandingToken.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
