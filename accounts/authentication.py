"""Server-to-server authentication of the API with a project's secret key."""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

if TYPE_CHECKING:
    from rest_framework.request import Request

    from .models import ApiKey, Project

# DRF imports this module while `rest_framework.views` (and so leadpulse.errors) is still
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
        api_key = secret_key_for_raw(raw_key=raw_key)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked secret key.", code="invalid_api_key")
        secret_key_touch(api_key=api_key)
        return ProjectKeyUser(project=api_key.project, api_key=api_key), api_key

    def authenticate_header(self, request: "Request") -> str:
        # being first in the list, this decides that unauthenticated requests get 401, not 403
        return f'{self.keyword} realm="api"'
