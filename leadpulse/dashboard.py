"""Plumbing of the server-rendered dashboard: the signed-in user's current project."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from accounts.models import Membership
from accounts.selectors import membership_for_user
from accounts.services import project_create
from leadpulse.errors import NotFound
from leadpulse.logs import log_bind

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


def project_page(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Sign-in required; sets `request.membership` and `request.project` for the view."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        request.membership = membership_for_request(request)  # type: ignore[attr-defined]
        request.project = request.membership.project  # type: ignore[attr-defined]
        log_bind(project_id=request.project.id)  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)

    return wrapper


NAV = [
    ("overview", "Overview"),
    ("events", "Events"),
    ("leads", "Leads"),
    ("rules", "Rules"),
    ("automations", "Automations"),
    ("simulator", "Simulator"),
    ("integrations", "Integrations"),
    ("system", "System"),
]


def dashboard_context(request: HttpRequest) -> dict[str, Any]:
    """Navigation and the project switcher for every page."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {"google_sign_in": bool(settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY)}
    project = getattr(request, "project", None)
    memberships = Membership.objects.filter(user=request.user).select_related("project").order_by("created_at")
    return {
        "nav": NAV,
        "current_project": project,
        "memberships": memberships,
        "google_sign_in": bool(settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY),
    }
