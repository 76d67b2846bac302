"""Application errors and the one JSON error shape of the API.

Every error leaves as `{"error": {"code", "message", "fields"}}`, where `fields` maps
a field name to its messages (empty when the error is not about one field).
"""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApplicationError(Exception):
    """A failure a client can act on, rendered as a 4xx with a stable code."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    code: str = "invalid"

    def __init__(
        self, message: str, *, field: str | None = None, code: str | None = None, status_code: int | None = None
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code
        if status_code:
            self.status_code = status_code

    @property
    def fields(self) -> dict[str, list[str]]:
        return {self.field: [self.message]} if self.field else {}


class NotAuthenticated(ApplicationError):
    status_code = status.HTTP_401_UNAUTHORIZED
    code = "not_authenticated"


class Forbidden(ApplicationError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "forbidden"


class NotFound(ApplicationError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class PayloadTooLarge(ApplicationError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"


logger = logging.getLogger(__name__)

# Paths answered in the JSON error shape even outside DRF views (unknown URLs, crashes).
API_PREFIXES = ("/api/", "/v1/")
DATABASE_RETRY_AFTER_SECONDS = 5
DATABASE_UNAVAILABLE_MESSAGE = "The database is unavailable; retry shortly."


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot answer now (down, restarting, no free connection).

    Django wraps the driver's errors, psycopg_pool's `PoolTimeout` included, in these two.
    """
    return isinstance(exc, OperationalError | InterfaceError)


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def database_unavailable_response(request: HttpRequest, exc: BaseException) -> HttpResponse:
    """503 with Retry-After outside DRF: JSON in the one error shape under the API, a short page otherwise."""
    logger.warning("database unavailable: %s", first_line(exc))
    response: HttpResponse
    if request.path.startswith(API_PREFIXES):
        body = error_body(code="database_unavailable", message=DATABASE_UNAVAILABLE_MESSAGE)
        response = JsonResponse(body, status=503)
    else:
        response = HttpResponse(
            "<!doctype html><title>Unavailable</title><h1>LeadPulse is unavailable</h1>"
            "<p>The database cannot be reached. This page will work again shortly.</p>",
            status=503,
        )
    response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response


class DatabaseUnavailableMiddleware(MiddlewareMixin):
    """Plain Django views (pages, non-DRF endpoints) answer 503 rather than 500 while the database is away.

    DRF views get the same from `api_exception_handler`; `leadpulse.views.server_error` covers the rest.
    """

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return database_unavailable_response(request, exception) if database_unavailable(exception) else None


def error_body(*, code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def error_response(error: ApplicationError) -> JsonResponse:
    """Render an application error outside DRF (plain Django views)."""
    return JsonResponse(
        error_body(code=error.code, message=error.message, fields=error.fields), status=error.status_code
    )


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def _first_error(detail: Any, path: str = "") -> tuple[str, str]:
    """The path and message of the first error in a (nested) DRF error detail, e.g. `rules[0].window`."""
    if isinstance(detail, str):
        return path, detail
    if isinstance(detail, list):  # a field's messages, or a list serializer's items
        for index, item in enumerate(detail):
            found = _first_error(item, path if isinstance(item, str) else f"{path}[{index}]")
            if found[1]:
                return found
    elif isinstance(detail, dict):  # fields; a ListField keys its items' errors by index
        for key, value in detail.items():
            found = _first_error(value, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}".lstrip("."))
            if found[1]:
                return found
    return path, ""


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render DRF, Django and application errors in the one error shape."""
    if isinstance(exc, ApplicationError):
        body = error_body(code=exc.code, message=exc.message, fields=exc.fields)
        return Response(body, status=exc.status_code)
    if database_unavailable(exc):
        logger.warning("database unavailable: %s", first_line(exc))
        return Response(
            error_body(code="database_unavailable", message=DATABASE_UNAVAILABLE_MESSAGE),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response

    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        fields = _flatten(detail)
        first_field, first = _first_error(fields)
        message = f"{first_field}: {first}" if first else "Invalid input."
        response.data = error_body(code="invalid", message=message, fields=fields)
    else:
        words: Any = exc.detail
        codes: Any = exc.get_codes()
        if isinstance(words, dict) and isinstance(codes, dict):
            # simplejwt refuses a token with {"detail", "code", "messages"}: keep the words and the code
            words, codes = words.get("detail", exc.default_detail), codes.get("code", exc.default_code)
        code = codes if isinstance(codes, str) else exc.default_code
        response.data = error_body(code=code, message=str(words))
    return response
