"""Public ingest endpoints, authenticated by a project's write key.

Each view parses, calls `events_ingest` once and shapes the answer its clients expect.
"""

import base64
import binascii
import json
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import status
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.scoping import ProjectApiView
from accounts.selectors import WriteKeyProject, project_for_write_key
from core import metrics
from core.errors import ApplicationError, database_unavailable_response, error_body
from core.logs import log_bind
from core.openapi import INGEST_ERRORS, PROJECT_PARAMETER, AutoSchema, cursor_page_of
from core.queries import query_datetime, query_id
from core.ratelimits import (
    FailedKeyLookups,
    IngestAdmission,
    RateLimited,
    ingest_ip_rate_limit,
    ingest_key_rate_limit,
)

from .schema import (
    SchemaError,
    batch_items,
    event_from_sdk,
    event_from_segment,
    event_from_server,
    gunzip,
    parse_json,
)
from .selectors import events_filtered_for_project
from .serializers import (
    SEGMENT_CALL_REQUESTS,
    BatchRejectedSerializer,
    BatchResultSerializer,
    EventSerializer,
    SdkDuplicateSerializer,
    SdkEventSerializer,
    SdkQueuedSerializer,
    SegmentBatchRejectedSerializer,
    SegmentBatchResultSerializer,
    SegmentBatchSerializer,
    SegmentCallResultSerializer,
    ServerBatchSerializer,
    ServerDuplicateSerializer,
    ServerEventSerializer,
    ServerQueuedSerializer,
)
from .services import events_ingest


def request_json(request: HttpRequest | Request) -> Any:
    """The body as JSON, whatever the content type; 413 past the request limit."""
    limit = settings.LEADPULSE_MAX_REQUEST_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise SchemaError("body", f"The request body is larger than {limit // 1024} KB.", too_large=True)
    try:
        raw = request.body
    except RequestDataTooBig:
        raise SchemaError("body", f"The request body is larger than {limit // 1024} KB.", too_large=True) from None
    if request.headers.get("Content-Encoding", "").strip().lower() == "gzip":
        raw = gunzip(raw, max_bytes=limit)
    return parse_json(raw, max_bytes=limit)


def segment_write_key(request: Request, body: Any) -> str | None:
    """Segment clients send the write key as the Basic-auth user name, or as `writeKey`."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic" and credentials:
        try:
            return base64.b64decode(credentials, validate=True).decode().split(":", 1)[0]
        except (binascii.Error, UnicodeDecodeError):
            return None
    return body.get("writeKey") if isinstance(body, dict) else None


def ingest_project(
    request: HttpRequest | Request, raw_key: str | None, *, field: str, events: int, count_ip: bool
) -> WriteKeyProject:
    """The write key's project, having spent `events` of its allowance and, with `count_ip`, a request
    of the client IP's (in the same round trip to Redis when this process knows the key)."""
    guard = FailedKeyLookups(request, scope="ingest-bad-key", rate=settings.LEADPULSE_RATE_INGEST_BAD_KEY_IP)
    admission = IngestAdmission(request, count_ip=count_ip, events=events)
    try:
        project = project_for_write_key(raw_key=raw_key, field=field, guard=guard, admission=admission)
    finally:
        if count_ip and not admission.ip_counted:
            ingest_ip_rate_limit(request)  # a missing or malformed key: the IP still spends one
    log_bind(project_id=project.id)
    return project


def server_event_ingest(request: HttpRequest | Request) -> tuple[int, dict[str, Any]]:
    """`POST /api/events`: (status, body) of the answer; raises the application's errors and 429s."""
    project = ingest_project(request, request.headers.get("X-API-Key"), field="apiKey", events=1, count_ip=True)
    body = request_json(request)
    event = event_from_server(body, received_at=timezone.now(), max_event_bytes=settings.LEADPULSE_MAX_EVENT_BYTES)
    result = events_ingest(project_id=project.id, events=[event])
    if result.duplicates:
        return 200, {"message": "Duplicate event ignored", "status": "duplicate", "eventId": event.event_id}
    return 202, {"message": "Event queued", "eventId": event.event_id}


class IngestAutoSchema(AutoSchema):
    """Ingest bodies are JSON whatever their content type; `GET /api/events` is a project API view."""

    def map_parsers(self) -> list[Any]:
        return ["application/json"]

    def get_override_parameters(self) -> list[Any]:
        parameters = super().get_override_parameters()
        return [*parameters, PROJECT_PARAMETER] if self.method == "GET" else parameters

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation and "requestBody" in operation:
            operation["requestBody"]["required"] = True  # an empty body is a 400
        return operation


class SegmentCallAutoSchema(IngestAutoSchema):
    """One view class serves every `/v1/<call>`: document each call's own body."""

    def get_request_serializer(self) -> Any:
        return SEGMENT_CALL_REQUESTS[cast("SegmentCallApi", self.view).call_type]

    def get_summary(self) -> str:
        return f"Record a Segment `{cast('SegmentCallApi', self.view).call_type}` call"


# drf-spectacular's `auth` takes security requirement objects, though its hint says strings
NO_AUTH: Any = [{}]
WRITE_KEY_HEADER_AUTH: Any = [{"writeKeyHeader": []}]
SEGMENT_WRITE_KEY_AUTH: Any = [{"writeKeyBasic": []}, {}]
PROJECT_API_AUTH: Any = [{"jwtAuth": []}, {"secretKey": []}]

GZIP = "The body may be gzip-compressed (`Content-Encoding: gzip`) and is read as JSON whatever its content type. "
SIZE = "Bodies up to 500 KB, events up to 32 KB (413 beyond)."
SEGMENT_AUTH = (
    "The write key is the HTTP Basic user name (no password), as Segment's libraries send it, "
    "or the body's `writeKey`. "
)


class IngestApiView(APIView):
    """Write-key endpoints, rate-limited per client IP and per write key before anything is stored."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes: list = []
    schema = IngestAutoSchema()
    openapi_errors = INGEST_ERRORS
    batch = False  # a refused single-event request counts one rejected event; a batch counts its items
    # The key is in a header: the IP is counted with the key's lookup, in one round trip. Otherwise
    # it is counted before the body (which holds the key) is read.
    key_in_header = False

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if request.method == "POST" and not self.key_in_header:
            # Counted before the key is looked at, so random and invalid keys spend it too.
            ingest_ip_rate_limit(request)

    def project_for_key(self, raw_key: str | None, *, field: str = "apiKey", events: int = 1) -> WriteKeyProject:
        """The write key's project, having spent `events` of its allowance (batches pass 0 and spend
        their size once it is known, before anything is stored)."""
        return ingest_project(self.request, raw_key, field=field, events=events, count_ip=self.key_in_header)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, SchemaError) and not self.batch:
            metrics.ingest_events(rejected=1)
        return super().handle_exception(exc)

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        if request.method == "POST":  # counted once per ingest request, whatever the view answered
            metrics.ingest_request(endpoint=f"/{request.resolver_match.route}", status=response.status_code)  # type: ignore[union-attr]
            # JSON for SDKs and servers, never a page: django-csp need not build a policy per event
            response._csp_exempt = response._csp_exempt_ro = True  # type: ignore[attr-defined]
        return super().finalize_response(request, response, *args, **kwargs)


class SdkEventIngestApi(IngestApiView):
    """`POST /api/ingest/event`: the browser SDK's shape, write key in the body."""

    @extend_schema(
        summary="Record one browser SDK event",
        description="The browser SDK's shape, with the write key in the body's `apiKey` "
        "(so `navigator.sendBeacon` can post it as `text/plain`). " + GZIP + SIZE,
        tags=["Ingest"],
        auth=NO_AUTH,
        request=SdkEventSerializer,
        responses={
            202: OpenApiResponse(SdkQueuedSerializer, "Stored; scoring follows."),
            200: OpenApiResponse(SdkDuplicateSerializer, "An event with this `eventId` was stored before."),
        },
    )
    def post(self, request: Request) -> Response:
        body = request_json(request)
        if not isinstance(body, dict):
            raise SchemaError("body", "Must be a JSON object.")
        project = self.project_for_key(body.get("apiKey"))
        event = event_from_sdk(body, received_at=timezone.now(), max_event_bytes=settings.LEADPULSE_MAX_EVENT_BYTES)
        result = events_ingest(project_id=project.id, events=[event])
        if result.duplicates:
            return Response({"status": "duplicate", "eventId": event.event_id}, status=status.HTTP_200_OK)
        return Response({"status": "queued", "eventId": event.event_id}, status=status.HTTP_202_ACCEPTED)


class ServerEventIngestApi(IngestApiView):
    """`POST /api/events`: server-side shape, write key in `X-API-Key`."""

    key_in_header = True

    @extend_schema(
        summary="Record one server-side event",
        description="The server shape, with the write key in `X-API-Key`. " + GZIP + SIZE,
        tags=["Ingest"],
        auth=WRITE_KEY_HEADER_AUTH,
        request=ServerEventSerializer,
        responses={
            202: OpenApiResponse(ServerQueuedSerializer, "Stored; scoring follows."),
            200: OpenApiResponse(ServerDuplicateSerializer, "An event with this `eventId` was stored before."),
        },
    )
    def post(self, request: Request) -> Response:
        # served by `server_event_view` (the URLconf's); kept for the schema and as its reference
        answer_status, body = server_event_ingest(request)
        return Response(body, status=answer_status)

    @extend_schema(
        summary="List the project's events",
        description="The project's event log, newest first, one cursor page at a time (follow `next`). "
        "Takes a user's JWT or a secret key, not a write key.",
        tags=["Events"],
        auth=PROJECT_API_AUTH,
        parameters=[
            OpenApiParameter("eventType", OpenApiTypes.STR, description="Only events of this name."),
            OpenApiParameter(
                "leadId",
                {"type": "integer", "minimum": 0, "maximum": 10**18 - 1},
                description="Only this lead's events.",
            ),
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="Only events at or after this time."),
            OpenApiParameter("until", OpenApiTypes.DATETIME, description="Only events at or before this time."),
            OpenApiParameter("cursor", OpenApiTypes.STR, description="The page: taken from `next` or `previous`."),
            OpenApiParameter(
                "pageSize",
                {"type": "integer", "minimum": 1},
                description="Events per page: 50 by default; more than 200 is capped at 200.",
            ),
        ],
        responses={200: cursor_page_of(EventSerializer, "IngestEventPage")},
    )
    def get(self, request: Request) -> HttpResponseBase:
        # The same URL lists events for dashboard users: hand over to a JWT-authenticated view.
        return EventListApi.as_view()(request._request)


_server_event_api = ServerEventIngestApi.as_view()
_SERVER_EVENT_ALLOW = "GET, POST, HEAD, OPTIONS"  # what DRF's view announces


def _json_response(body: dict[str, Any], status_code: int) -> HttpResponse:
    """JSON as DRF's renderer writes it (compact, UTF-8)."""
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    return HttpResponse(content, status=status_code, content_type="application/json")


@csrf_exempt
def server_event_view(request: HttpRequest) -> HttpResponseBase:
    """`/api/events`: POST, one event per request (most of ingest's traffic), answered without DRF's
    request wrapping, content negotiation and rendering; the same answers and error shapes as
    `ServerEventIngestApi` (tests/ingest/test_server_event_view.py compares them). Anything else is
    that view's: the event list (GET), OPTIONS, 405s."""
    if request.method != "POST":
        return _server_event_api(request)
    try:
        answer_status, body = server_event_ingest(request)
        response = _json_response(body, answer_status)
    except ApplicationError as exc:
        if isinstance(exc, SchemaError):
            metrics.ingest_events(rejected=1)
        response = _json_response(error_body(code=exc.code, message=exc.message, fields=exc.fields), exc.status_code)
    except RateLimited as exc:
        response = _json_response(error_body(code=RateLimited.default_code, message=str(exc.detail)), 429)
        if wait := getattr(exc, "wait", None):  # as DRF's exception handler writes it
            response["Retry-After"] = f"{int(wait)}"
    except (OperationalError, InterfaceError) as exc:
        response = database_unavailable_response(request, exc)
    response["Allow"] = _SERVER_EVENT_ALLOW
    metrics.ingest_request(endpoint="/api/events", status=response.status_code)
    response._csp_exempt = response._csp_exempt_ro = True  # type: ignore[attr-defined]
    return response


# It serves exactly `ServerEventIngestApi`'s methods and answers: say so as `as_view()` does, for
# drf-spectacular (the OpenAPI document) and whatever else reads a URL's view class (tests/api/test_access.py).
server_event_view.cls = server_event_view.view_class = ServerEventIngestApi  # type: ignore[attr-defined]
server_event_view.initkwargs = server_event_view.view_initkwargs = {}  # type: ignore[attr-defined]


def _batch_response(
    *, items: list[Any], parse, project_id: int, list_field: str, ok_status: int, extra: dict[str, Any]
) -> Response:
    """Store the valid items of a batch and report the others by index; 400 when none is valid."""
    events, errors = [], []
    for index, item in enumerate(items):
        try:
            events.append(parse(item))
        except ApplicationError as exc:
            errors.append({"index": index, "field": exc.field, "message": exc.message})
    result = events_ingest(project_id=project_id, events=events)
    metrics.ingest_events(rejected=len(errors))
    body = {
        **extra,
        "count": len(items),
        "accepted": len(result.accepted),
        "duplicates": len(result.duplicates),
        "errors": errors,
    }
    if events:
        return Response(body, status=ok_status)
    fields = {f"{list_field}[{e['index']}].{e['field']}": [e["message"]] for e in errors}
    first = next(iter(fields))
    body = {**body, "success": False} if "success" in body else body
    body["error"] = {"code": "invalid", "message": f"No valid events: {first}: {fields[first][0]}", "fields": fields}
    return Response(body, status=status.HTTP_400_BAD_REQUEST)


class ServerBatchIngestApi(IngestApiView):
    """`POST /api/events/batch`: up to 500 server-shape events; valid ones are stored."""

    batch = True
    key_in_header = True

    @extend_schema(
        summary="Record a batch of server-side events",
        description='Up to 500 server-shape events, as `{"events": [...]}` or a bare array, with the write key '
        "in `X-API-Key`. Valid events are stored and the others reported in `errors` by index; "
        "when none is valid the answer is 400 with the same counts. " + GZIP + SIZE,
        tags=["Ingest"],
        auth=WRITE_KEY_HEADER_AUTH,
        request=ServerBatchSerializer,
        responses={
            202: OpenApiResponse(BatchResultSerializer, "The valid events are stored."),
            400: OpenApiResponse(
                BatchRejectedSerializer, "Bad input, or no valid event (then with the counts and `errors`)."
            ),
        },
    )
    def post(self, request: Request) -> Response:
        project = self.project_for_key(request.headers.get("X-API-Key"), events=0)
        items = batch_items(request_json(request), max_events=settings.LEADPULSE_MAX_BATCH_EVENTS)
        ingest_key_rate_limit(request, project=project, events=len(items))
        received_at = timezone.now()
        return _batch_response(
            items=items,
            parse=lambda item: event_from_server(
                item, received_at=received_at, max_event_bytes=settings.LEADPULSE_MAX_EVENT_BYTES
            ),
            project_id=project.id,
            list_field="events",
            ok_status=status.HTTP_202_ACCEPTED,
            extra={},
        )


class SegmentCallApi(IngestApiView):
    """`POST /v1/<type>`: one Segment spec call; answers `{"success": true}` as Segment does."""

    call_type = "track"
    schema = SegmentCallAutoSchema()

    @extend_schema(
        description="One call of Segment's tracking API spec, so Segment, RudderStack and similar clients only "
        "change their host. " + SEGMENT_AUTH + "Answers `success: true` like Segment, with `duplicate: true` "
        "when the `messageId` was seen before. " + GZIP + SIZE,
        tags=["Segment"],
        auth=SEGMENT_WRITE_KEY_AUTH,
        responses={200: OpenApiResponse(SegmentCallResultSerializer, "Stored (or a duplicate).")},
    )
    def post(self, request: Request) -> Response:
        body = request_json(request)
        if not isinstance(body, dict):
            raise SchemaError("body", "Must be a JSON object.")
        project = self.project_for_key(segment_write_key(request, body), field="writeKey")
        event = event_from_segment(
            body,
            call_type=self.call_type,
            received_at=timezone.now(),
            max_event_bytes=settings.LEADPULSE_MAX_EVENT_BYTES,
        )
        result = events_ingest(project_id=project.id, events=[event])
        return Response({"success": True, "messageId": event.event_id, "duplicate": bool(result.duplicates)})


class SegmentBatchApi(IngestApiView):
    """`POST /v1/batch`: `{batch: [...], sentAt?, writeKey?}`; per-message results, valid ones stored."""

    batch = True

    @extend_schema(
        summary="Record a batch of Segment calls",
        description="Up to 500 Segment messages of any type (the `type` of each names its call). "
        + SEGMENT_AUTH
        + "Valid messages are stored and the others reported in `errors` by index; when none is valid the "
        "answer is 400 with `success: false` and the same counts. " + GZIP + SIZE,
        tags=["Segment"],
        auth=SEGMENT_WRITE_KEY_AUTH,
        request=SegmentBatchSerializer,
        responses={
            200: OpenApiResponse(SegmentBatchResultSerializer, "The valid messages are stored."),
            400: OpenApiResponse(
                SegmentBatchRejectedSerializer,
                "Bad input, or no valid message (then with `success: false`, the counts and `errors`).",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        body = request_json(request)
        if not isinstance(body, dict):
            raise SchemaError("body", "Must be a JSON object.")
        project = self.project_for_key(segment_write_key(request, body), field="writeKey", events=0)
        items = batch_items({"batch": body.get("batch")}, max_events=settings.LEADPULSE_MAX_BATCH_EVENTS, field="batch")
        ingest_key_rate_limit(request, project=project, events=len(items))
        received_at = timezone.now()
        return _batch_response(
            items=items,
            parse=lambda item: event_from_segment(
                item,
                call_type=None,
                received_at=received_at,
                batch_sent_at=body.get("sentAt"),
                max_event_bytes=settings.LEADPULSE_MAX_EVENT_BYTES,
            ),
            project_id=project.id,
            list_field="batch",
            ok_status=status.HTTP_200_OK,
            extra={"success": True},
        )


# `GET /api/events`: the project's event log for dashboard users (JWT), newest first.


class EventCursorPagination(CursorPagination):
    ordering = ("-timestamp", "-id")
    page_size = 50
    page_size_query_param = "pageSize"
    max_page_size = 200

    def get_page_size(self, request: Request) -> int:
        """`pageSize` if given (capped); 400 naming it unless it is a positive integer."""
        raw = request.query_params.get(self.page_size_query_param, "").strip()
        if not raw:
            return self.page_size
        digits = raw.lstrip("0")
        if not (raw.isascii() and raw.isdecimal() and digits):
            raise ApplicationError("Must be a positive integer.", field=self.page_size_query_param)
        return self.max_page_size if len(digits) > 6 else min(int(digits), self.max_page_size)


class EventListApi(ProjectApiView):
    def get(self, request: Request) -> Response:
        events = events_filtered_for_project(
            project=self.project,
            event_type=request.query_params.get("eventType", "").replace("\x00", ""),
            lead_id=query_id(request, "leadId"),
            since=query_datetime(request, "since"),
            until=query_datetime(request, "until"),
        )
        paginator = EventCursorPagination()
        page = paginator.paginate_queryset(events, request, view=self)
        return paginator.get_paginated_response(EventSerializer(page, many=True).data)
