"""The OpenAPI document: one error shape, the auth schemes, and which routes it lists.

`AutoSchema` adds the error responses every operation can give, from the kind of view (a
project API view, an ingest view: their `openapi_errors`), so views declare only their own
success shapes.
"""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, inline_serializer
from rest_framework import serializers

from core.fields import StrictSerializerMixin

# The error responses a kind of view can give, by method ("*": any other). Views say which applies
# (`openapi_errors`), so this module needs none of them.
PROJECT_ERRORS = {"GET": [400, 401, 404, 429], "*": [400, 401, 403, 404, 429]}
# GET /api/events shares its URL with ingest but hands over to a project API view
INGEST_ERRORS = {**PROJECT_ERRORS, "POST": [400, 401, 403, 413, 429]}

PROJECT_PARAMETER = OpenApiParameter(
    "X-LeadPulse-Project",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    description="The project to act on (default: the caller's first project). 404 when the caller is not a member.",
)

ERROR_DESCRIPTIONS = {
    400: "Bad input: `fields` names each rejected field.",
    401: "Missing or invalid credentials.",
    403: "Authenticated, but not allowed (e.g. a member changing what only admins may).",
    404: "No such object in this project (other projects' objects are 404 too).",
    413: "The request body or an event is too large.",
    429: "Rate limited; retry after `Retry-After` seconds.",
}


class ErrorSerializer(serializers.Serializer):
    """`{"error": {"code", "message", "fields"}}` (a field named `fields` cannot be declared on a class)."""

    error = inline_serializer(
        "ErrorDetail",
        fields={
            "code": serializers.CharField(help_text="Stable machine-readable code, e.g. `invalid`, `not_found`."),
            "message": serializers.CharField(help_text="Human-readable summary."),
            "fields": serializers.DictField(
                child=serializers.JSONField(),
                help_text="Rejected fields: name → list of messages (nested per item for lists). Empty when none.",
            ),
        },
    )


class SecretKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.SecretKeyAuthentication"
    name = "secretKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        scheme = build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Bearer")  # noqa: S106
        return {**scheme, "description": "A project's secret key: `Authorization: Bearer lp_sec_…`."}


def canonical_endpoints(endpoints: list[tuple[str, str, str, Any]]) -> list[tuple[str, str, str, Any]]:
    """Only API routes, once each: the Segment one-letter and /api/v1 aliases and the
    /api/scoring-rules alias answer exactly like the routes they mirror."""

    def listed(path: str) -> bool:
        if path.startswith("/v1/"):
            return len(path.rsplit("/", 1)[1]) > 1
        return path.startswith("/api/") and not path.startswith(("/api/v1/", "/api/scoring-rules"))

    return [endpoint for endpoint in endpoints if listed(endpoint[0])]


def page_of(serializer: type[serializers.Serializer], name: str) -> Any:
    """A page of `PageNumberPagination`: count, next, previous, results."""
    return inline_serializer(
        name,
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer(many=True),
        },
    )


def cursor_page_of(serializer: type[serializers.Serializer], name: str) -> Any:
    """A page of `CursorPagination`: next, previous, results (no count)."""
    return inline_serializer(
        name,
        fields={
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer(many=True),
        },
    )


def results_of(serializer: type[serializers.Serializer], name: str) -> Any:
    """An unpaginated `{"results": [...]}`."""
    return inline_serializer(name, fields={"results": serializer(many=True)})


ACTIONS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "partial_update", "DELETE": "delete"}


class AutoSchema(SpectacularAutoSchema):
    def _map_basic_serializer(self, serializer: Any, direction: Any) -> Any:
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "request" and isinstance(serializer, StrictSerializerMixin):
            schema["additionalProperties"] = False  # the server refuses unknown fields: say so
        return schema

    def get_operation_id(self) -> str:
        # the path with its parameters, so `/api/leads` and `/api/leads/{lead_id}` differ: leads_get, leads_lead_id_get
        tokens = [t.strip("{}").replace("-", "_") for t in self.path.split("/") if t and t != "api"]
        return "_".join([*tokens, ACTIONS[self.method]])

    def error_codes(self) -> list[int]:
        """The view's `openapi_errors` for this method (`"*"`: any other method); none declared: none."""
        errors: dict[str, list[int]] = getattr(self.view, "openapi_errors", {})
        return errors.get(self.method, errors.get("*", []))

    def get_override_parameters(self) -> list[Any]:
        parameters = list(super().get_override_parameters())
        if getattr(self.view, "openapi_project_scoped", False):
            parameters.append(PROJECT_PARAMETER)
        return parameters

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query" and not parameter.get("required"):
                # one rule for every optional query parameter: empty is the same as leaving it out
                parameter["allowEmptyValue"] = True
        error = self.resolve_serializer(ErrorSerializer, "response").ref
        for code in self.error_codes():
            response: dict[str, Any] = {
                "description": ERROR_DESCRIPTIONS[code],
                "content": {"application/json": {"schema": error}},
            }
            if code == 429:
                response["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}}
            operation["responses"].setdefault(str(code), response)
        return operation
