"""Shared API plumbing: every tenant endpoint resolves the caller's project here."""

from functools import cached_property
from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.authentication import ProjectKeyUser
from accounts.models import Membership, Project, User
from accounts.selectors import membership_for_project_key, membership_for_user
from leadpulse.errors import Forbidden, NotFound
from leadpulse.logs import log_bind
from leadpulse.ratelimits import rate_limit

PROJECT_HEADER = "HTTP_X_LEADPULSE_PROJECT"


def require_admin(membership: Membership) -> None:
    if not membership.is_admin:
        raise Forbidden("Only project owners and admins can do this.")


class ProjectApiView(APIView):
    """An authenticated API view scoped to one project of the caller.

    The project is the caller's first one, or the one named by the
    `X-LeadPulse-Project` header (404 when the caller is not a member).
    A secret key reaches only its own project, as an admin.
    """

    request: Request

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        # Per caller once authenticated: a user's id, or "key:<id>" for a secret key.
        rate_limit(request, scope="api", key=f"caller:{request.user.pk}", rate=settings.LEADPULSE_RATE_API)

    @cached_property
    def membership(self) -> Membership:
        requested = self.request.META.get(PROJECT_HEADER)
        if requested is not None and not requested.strip().isdecimal():
            raise NotFound("Project not found.")  # present but empty or not an id: never "the default project"
        membership = self.membership_for(requested)
        log_bind(project_id=membership.project_id)
        return membership

    def membership_for(self, project_id: int | str | None) -> Membership:
        """The caller's rights in a project: a user's membership, or a secret key's admin rights in its own."""
        user = self.request.user
        if isinstance(user, ProjectKeyUser):
            return membership_for_project_key(project=user.project, project_id=project_id)
        assert isinstance(user, User)  # IsAuthenticated ran first
        return membership_for_user(user=user, project_id=project_id)

    @property
    def project(self) -> Project:
        return self.membership.project

    def require_admin(self) -> None:
        require_admin(self.membership)
