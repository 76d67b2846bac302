"""Pages of the ingest app: the live event stream, the simulator, integrations, and the browser SDK's file."""

import uuid
from functools import cache
from pathlib import Path
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts.scoping import ProjectRequest, project_page
from accounts.selectors import invitations_for_project, members_for_project, write_key_for_project
from accounts.services import write_key_rotate

from . import selectors
from .forms import RotateKeyForm, SimulatorForm
from .schema import CanonicalEvent
from .services import events_ingest

SDK_PATH = Path(__file__).resolve().parent / "sdk" / "ls.js"


def _require_admin(request: ProjectRequest) -> None:
    if not request.membership.is_admin:
        raise PermissionDenied


def _ingest_results(*, project: Any, events: list[CanonicalEvent]) -> list[dict[str, Any]]:
    """Store events; report each as stored or duplicate, with the lead it went to."""
    result = events_ingest(project_id=project.id, events=events)
    stored = selectors.events_by_event_id(project=project, event_ids=[event.event_id for event in events])
    return [
        {
            "status": "stored" if event.event_id in result.accepted else "duplicate",
            "event": event,
            "lead": stored[event.event_id].lead if event.event_id in stored else None,
        }
        for event in events
    ]


@project_page
def event_list_view(request: ProjectRequest) -> HttpResponse:
    project = request.project
    event_type = request.GET.get("type", "")
    events = selectors.events_for_project(project=project, name=event_type)
    context = {
        "events": events,
        "event_types": selectors.event_names_for_project(project=project),
        "event_type": event_type,
    }
    return render(request, "ingest/events.html", context)


def _event_type_suggestions(request: ProjectRequest) -> list[tuple[str, str]]:
    """(event name, what scores it): the names the rules score (with the rules' names), then the others seen."""
    project = request.project
    scored = selectors.rule_suggestions_for_project(project=project)
    seen = [name for name in selectors.event_names_for_project(project=project) if name not in dict(scored)]
    return [(name, "rule: " + ", ".join(rules) if rules else "scored by a rule") for name, rules in scored] + [
        (name, "seen, no rule") for name in seen
    ]


@project_page
def event_simulate_view(request: ProjectRequest) -> HttpResponse:
    project = request.project
    form = SimulatorForm(request.POST or None)
    results = None
    if request.method == "POST" and form.is_valid():
        results = _ingest_results(project=project, events=form.cleaned_data["events"])
    context = {
        "form": form,
        "results": results,
        "event_type_suggestions": _event_type_suggestions(request),
    }
    return render(request, "ingest/simulator.html", context)


def _integrations_render(request: ProjectRequest, **extra: Any) -> HttpResponse:
    project = request.project
    context = {
        "write_key": write_key_for_project(project=project),
        "host": request.build_absolute_uri("/").rstrip("/"),
        "is_admin": request.membership.is_admin,
        "members": members_for_project(project=project),
        "invitations": invitations_for_project(project=project) if request.membership.is_admin else [],
        "rotate_form": RotateKeyForm(),
        **extra,
    }
    context["host_name"] = context["host"].split("://", 1)[-1]
    context["scheme"] = context["host"].split("://", 1)[0]
    return render(request, "ingest/integrations.html", context)


@project_page
def integration_list_view(request: ProjectRequest) -> HttpResponse:
    return _integrations_render(request)


@project_page
@require_POST
def write_key_rotate_view(request: ProjectRequest) -> HttpResponse:
    _require_admin(request)
    form = RotateKeyForm(request.POST)
    if not form.is_valid():
        return _integrations_render(request, rotate_form=form)
    write_key_rotate(project=request.project)
    messages.success(request, "Write key rotated: the old key no longer works. Update your clients.")
    return redirect("ingest:integration_list")


@project_page
@require_POST
def test_event_send_view(request: ProjectRequest) -> HttpResponse:
    event = CanonicalEvent(
        event_id=f"test-{uuid.uuid4()}",
        name="test_event",
        anonymous_id="leadpulse-test",
        timestamp=timezone.now(),
        properties={"source": "integrations page"},
    )
    results = _ingest_results(project=request.project, events=[event])
    return _integrations_render(request, test_results=results)


@cache
def _sdk_source() -> bytes:
    return SDK_PATH.read_bytes()


@require_GET
def sdk_script_view(request: HttpRequest) -> HttpResponse:
    """Serve the browser SDK; any site may load it (CORS is open on /sdk/)."""
    response = HttpResponse(_sdk_source(), content_type="application/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=300"
    return response
