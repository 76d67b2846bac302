"""Authentication of the API: a project's secret key (server to server), or a user's JWT.

Both count failed lookups per client IP (`core.ratelimits.FailedKeyLookups`).
"""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import ExpiredTokenError, InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import Token

if TYPE_CHECKING:
    from rest_framework.request import Request

    from .models import ApiKey, Project, User

# DRF imports this module while `rest_framework.views` (and so core.errors) is still
# loading, so the services and selectors are imported when a request arrives.


@dataclass(frozen=True, eq=False)
class ProjectKeyUser:
    """The caller behind a secret key: a project, not a person (no user row, no memberships)."""

    project: "Project"
    api_key: "ApiKey" = field(repr=False)
    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    @property
    def pk(self) -> str:
        # stable and distinct from user ids, for per-caller rate limits and logs
        return f"key:{self.api_key.pk}"

    def __str__(self) -> str:
        return f"secret key {self.api_key.prefix}… of project {self.project.pk}"


class SecretKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer lp_sec_…`; any other bearer token is left to the next authenticator.

    Write keys are public and authenticate only ingest, so one offered here is refused.
    """

    keyword = "Bearer"

    def authenticate(self, request: "Request") -> tuple[ProjectKeyUser, "ApiKey"] | None:
        from core.ratelimits import FailedKeyLookups

        from .selectors import secret_key_for_raw
        from .services import SECRET_KEY_PREFIX, WRITE_KEY_PREFIX, secret_key_touch

        parts = get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].decode("latin-1") != self.keyword:
            return None
        try:
            raw_key = parts[1].decode()
        except UnicodeDecodeError:
            return None
        if raw_key.startswith(WRITE_KEY_PREFIX):
            raise exceptions.AuthenticationFailed(
                "Write keys authenticate only ingest; use a secret key.", code="invalid_api_key"
            )
        if not raw_key.startswith(SECRET_KEY_PREFIX):
            return None
        guard = FailedKeyLookups(request, scope="api-bad-key", rate=settings.LEADPULSE_RATE_API_BAD_KEY_IP)
        api_key = secret_key_for_raw(raw_key=raw_key, guard=guard)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked secret key.", code="invalid_api_key")
        secret_key_touch(api_key=api_key)
        return ProjectKeyUser(project=api_key.project, api_key=api_key), api_key

    def authenticate_header(self, request: "Request") -> str:
        # being first in the list, this decides that unauthenticated requests get 401, not 403
        return f'{self.keyword} realm="api"'


class UserJWTAuthentication(JWTAuthentication):
    """simplejwt's bearer JWT, refused for an inactive user and once the user's password changed.

    With `CHECK_REVOKE_TOKEN` every token carries a digest of the password hash, so a reset or a
    change anywhere (dashboard, admin, shell) refuses all earlier access and refresh tokens. That
    refusal is `token_not_valid`, as for any other dead token (simplejwt calls it `password_changed`).
    """

    def authenticate(self, request: "Request") -> Any:
        try:
            return super().authenticate(request)
        except InvalidToken:
            # A forged or garbled token counts against the IP's allowance of failed key lookups (429 past it).
            # One of ours, correctly signed, is no guess: expired, or revoked by a password change.
            header = self.get_header(request)
            raw_token = self.get_raw_token(header) if header is not None else None
            if raw_token is not None and not _signed_by_us(raw_token):
                from core.ratelimits import FailedKeyLookups

                FailedKeyLookups(request, scope="api-bad-key", rate=settings.LEADPULSE_RATE_API_BAD_KEY_IP).failed()
            raise

    def get_user(self, validated_token: Token) -> Any:
        try:
            return super().get_user(validated_token)
        except exceptions.AuthenticationFailed as exc:
            # simplejwt's errors carry their code in the detail: {"detail": ..., "code": "password_changed"}
            if isinstance(exc.detail, dict) and exc.detail.get("code") == "password_changed":
                raise InvalidToken("Token is no longer valid: the password was changed after it was issued.") from exc
            raise


def user_for_token(token: Token) -> "User":
    """The user a verified token belongs to, under the API's checks (active, password unchanged); else 401."""
    return UserJWTAuthentication().get_user(token)


def user_for_access_token(raw_token: str) -> "User | None":
    """The user of a raw access JWT under the API's checks, or None when it is refused (for WebSocket handshakes)."""
    auth = UserJWTAuthentication()
    try:
        return auth.get_user(auth.get_validated_token(raw_token.encode()))
    except (TokenError, exceptions.AuthenticationFailed):
        return None


def _signed_by_us(raw_token: bytes) -> bool:
    """Whether a refused token is one of ours, correctly signed (so expired, revoked or of the wrong user)."""
    for token_class in jwt_settings.AUTH_TOKEN_CLASSES:
        try:
            token_class(raw_token)
        except ExpiredTokenError:  # PyJWT checks the signature before the expiry
            return True
        except TokenError:
            continue
        return True
    return False
