"""Project scoping for every tenant view: the API base class and the dashboard's page decorator.

Every tenant endpoint and page resolves the caller's project here, so no query of another
project's data can start anywhere else.
"""

from collections.abc import Callable
from functools import cached_property, wraps
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.authentication import ProjectKeyUser
from accounts.models import Membership, Project, User
from accounts.selectors import membership_for_project_key, membership_for_user
from accounts.services import project_create
from core.errors import Forbidden, NotFound
from core.logs import log_bind
from core.openapi import PROJECT_ERRORS
from core.ratelimits import rate_limit

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
    openapi_errors = PROJECT_ERRORS
    openapi_project_scoped = True  # documents the X-LeadPulse-Project header

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


def request_person(request: Request) -> User | None:
    """The signed-in person behind an API request; None for a secret key (a project, not a person)."""
    return request.user if isinstance(request.user, User) else None


SESSION_PROJECT = "project_id"


def membership_for_request(request: HttpRequest) -> Membership:
    """The membership of the project chosen in the session (the first project otherwise).

    A user without any project (e.g. made with createsuperuser) gets one, as registration does.
    """
    try:
        return membership_for_user(user=request.user, project_id=request.session.get(SESSION_PROJECT))
    except NotFound:
        request.session.pop(SESSION_PROJECT, None)
    try:
        return membership_for_user(user=request.user)
    except NotFound:
        user = request.user
        project_create(owner=user, name=f"{user.name or user.email}'s project")  # type: ignore[union-attr,arg-type]
        return membership_for_user(user=user)


class ProjectRequest(HttpRequest):
    """What a page view behind `project_page` receives: a signed-in user's request, scoped to one project.

    Only a type: `project_page` sets `membership` and `project` on Django's request, and
    django-csp its `csp_nonce`; views annotate `request: ProjectRequest` to read them checked.
    """

    user: User
    membership: Membership
    project: Project
    csp_nonce: str


P = ParamSpec("P")
R = TypeVar("R", bound=HttpResponseBase)


def project_page(view: Callable[Concatenate[ProjectRequest, P], R]) -> Callable[Concatenate[HttpRequest, P], R]:
    """Sign-in required; sets `request.membership` and `request.project` for the view (a `ProjectRequest`)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: P.args, **kwargs: P.kwargs) -> R:
        scoped = cast(ProjectRequest, request)
        scoped.membership = membership_for_request(request)
        scoped.project = scoped.membership.project
        log_bind(project_id=scoped.project.id)
        return view(scoped, *args, **kwargs)

    return cast(Callable[Concatenate[HttpRequest, P], R], login_required(wrapper))
