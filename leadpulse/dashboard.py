"""The dashboard shell: navigation and the project switcher on every page."""

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from accounts.models import Membership

NAV = [
    ("project_overview", "Overview"),
    ("ingest:event_list", "Events"),
    ("scoring:lead_list", "Leads"),
    ("scoring:rule_list", "Rules"),
    ("automations:automation_list", "Automations"),
    ("ingest:event_simulate", "Simulator"),
    ("ingest:integration_list", "Integrations"),
    ("system_status", "System"),
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
