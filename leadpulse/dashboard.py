"""The dashboard shell: navigation and the project switcher on every page."""

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from accounts.models import Membership
from core.nav import nav


def dashboard_context(request: HttpRequest) -> dict[str, Any]:
    """Navigation and the project switcher for every page."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {"google_sign_in": bool(settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY)}
    project = getattr(request, "project", None)
    memberships = Membership.objects.filter(user=request.user).select_related("project").order_by("created_at")
    return {
        "nav": list(nav),
        "current_project": project,
        "memberships": memberships,
        "google_sign_in": bool(settings.SOCIAL_AUTH_GOOGLE_OAUTH2_KEY),
    }
