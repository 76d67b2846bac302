"""One log line per HTTP request and per Celery task, with the request id on every line.

Production formats records as JSON (`JsonFormatter`); development and tests keep plain
lines (settings/base.py `logging_config`). Neither ever writes a query string, a header,
a cookie or a body: only the fields named here, and path segments whose URL parameter is
named like a secret (`<token>`, `<key>`…) are masked.
"""

import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

from core import metrics

request_logger = logging.getLogger("leadpulse.request")
task_logger = logging.getLogger("leadpulse.task")

# What the current request or task is about: request_id, project_id, lead_id, user_id.
log_context: ContextVar[dict[str, Any] | None] = ContextVar("leadpulse_log_context", default=None)

REQUEST_ID_HEADER = "X-Request-ID"
# An incoming id is kept only when it cannot smuggle anything into a log line.
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
SECRET_PARAMETER_RE = re.compile(r"token|key|secret|password|uidb64", re.IGNORECASE)


def log_bind(**fields: Any) -> None:
    """Add fields (e.g. `project_id=`) to every log line of the current request or task."""
    context = log_context.get()
    if context is not None:
        context.update({name: value for name, value in fields.items() if value is not None})


class ContextFilter(logging.Filter):
    """Copy the current request's or task's fields onto every record (`request_id`, `project_id`, …)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (log_context.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(BaseJsonFormatter):
    """python-json-logger, minus the extras that would serialise a whole request or a task's arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "taskName", "request", "data", "scope", "color_message"])
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", False)
        super().__init__(*args, **kwargs)


def _loaded_user_id(request: HttpRequest) -> int | None:
    """The signed-in user's id if the request already loaded it (never costs a query here)."""
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject):
        user = None if user._wrapped is empty else user._wrapped  # type: ignore[attr-defined]
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return getattr(user, "pk", None)


def _loggable_path(request: HttpRequest) -> str:
    path = request.path
    match = getattr(request, "resolver_match", None)
    for name, value in (match.kwargs if match else {}).items():
        if SECRET_PARAMETER_RE.search(name) and str(value):
            path = path.replace(str(value), "***")
    return path


class RequestLogMiddleware:
    """Give each request an id (the client's `X-Request-ID` when well-formed), echo it, log one line."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        context: dict[str, Any] = {"request_id": request_id}
        token = log_context.set(context)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request_id
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            path = _loggable_path(request)
            fields = {
                "method": request.method,
                "path": path,
                "status": response.status_code,
                "duration_ms": duration_ms,
                "user_id": _loaded_user_id(request),
            }
            request_logger.info(
                "%s %s %s %.1fms",
                request.method,
                path,
                response.status_code,
                duration_ms,
                extra={name: value for name, value in fields.items() if value is not None},
            )
            return response
        finally:
            log_context.reset(token)


# --- Celery: one line and one duration per task (connected in leadpulse/celery.py) -------------

_task_started: dict[str, tuple[float, Any]] = {}


def _task_fields(kwargs: dict[str, Any]) -> dict[str, Any]:
    change: dict[str, Any] = kwargs["change"] if isinstance(kwargs.get("change"), dict) else {}
    return {
        "project_id": kwargs.get("project_id") or change.get("projectId"),
        "lead_id": kwargs.get("lead_id") or change.get("leadId"),
    }


def task_started(task_id: str, task: Any, kwargs: dict[str, Any] | None = None, **_: Any) -> None:
    context = {"task_id": task_id, "task": task.name, **_task_fields(kwargs or {})}
    token = log_context.set({name: value for name, value in context.items() if value is not None})
    _task_started[task_id] = (time.perf_counter(), token)


def task_ended(task_id: str, task: Any, state: str | None = None, **_: Any) -> None:
    started, token = _task_started.pop(task_id, (None, None))
    if started is None:
        return
    seconds = time.perf_counter() - started
    outcome = {"SUCCESS": "success", "RETRY": "retry"}.get(state or "", "failure")
    metrics.task_finished(task=task.name, outcome=outcome, seconds=seconds)
    task_logger.info(
        "task %s %s %.1fms",
        task.name,
        outcome,
        seconds * 1000,
        extra={"outcome": outcome, "duration_ms": round(seconds * 1000, 1)},
    )
    try:
        log_context.reset(token)  # type: ignore[arg-type]
    except ValueError:  # ended in another context than it started (a pool that switches them)
        log_context.set(None)
