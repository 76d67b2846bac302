"""Public ingest endpoints, authenticated by a project's write key.

Each view parses, calls `events_ingest` once and shapes the answer its clients expect.
"""

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import WriteKeyProject, project_for_write_key
from leadpulse.api import ProjectApiView
from leadpulse.errors import ApplicationError
from leadpulse.ratelimits import ingest_key_rate_limit, rate_limit

from .models import Event
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
from .services import events_ingest


def request_json(request: Request) -> Any:
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


class IngestApiView(APIView):
    """Write-key endpoints, rate-limited per client IP and per write key before anything is stored."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes: list = []

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if request.method == "POST":
            # Counted before the key is looked at, so random and invalid keys spend it too.
            rate_limit(request, scope="ingest-ip", rate=settings.LEADPULSE_RATE_INGEST_IP)

    def project_for_key(self, raw_key: str | None, *, field: str = "apiKey") -> WriteKeyProject:
        project = project_for_write_key(raw_key=raw_key, field=field)
        ingest_key_rate_limit(self.request, project=project)
        return project


class SdkEventIngestApi(IngestApiView):
    """`POST /api/ingest/event`: the browser SDK's shape, write key in the body."""

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

    def post(self, request: Request) -> Response:
        project = self.project_for_key(request.headers.get("X-API-Key"))
        body = request_json(request)
        event = event_from_server(body, received_at=timezone.now(), max_event_bytes=settings.LEADPULSE_MAX_EVENT_BYTES)
        result = events_ingest(project_id=project.id, events=[event])
        if result.duplicates:
            return Response(
                {"message": "Duplicate event ignored", "status": "duplicate", "eventId": event.event_id},
                status=status.HTTP_200_OK,
            )
        return Response({"message": "Event queued", "eventId": event.event_id}, status=status.HTTP_202_ACCEPTED)

    def get(self, request: Request) -> HttpResponseBase:
        # The same URL lists events for dashboard users: hand over to a JWT-authenticated view.
        return EventListApi.as_view()(request._request)


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

    def post(self, request: Request) -> Response:
        project = self.project_for_key(request.headers.get("X-API-Key"))
        items = batch_items(request_json(request), max_events=settings.LEADPULSE_MAX_BATCH_EVENTS)
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

    def post(self, request: Request) -> Response:
        body = request_json(request)
        if not isinstance(body, dict):
            raise SchemaError("body", "Must be a JSON object.")
        project = self.project_for_key(segment_write_key(request, body), field="writeKey")
        items = batch_items({"events": body.get("batch")}, max_events=settings.LEADPULSE_MAX_BATCH_EVENTS)
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


def query_datetime(request: Request, name: str) -> datetime | None:
    """An ISO-8601 query parameter (UTC when it names no offset); 400 naming it otherwise."""
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return None
    try:
        value = parse_datetime(raw)
    except ValueError:
        value = None
    if value is None:
        raise ApplicationError("Must be an ISO-8601 date-time, e.g. 2026-01-31T12:00:00Z.", field=name)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def query_lead_id(request: Request) -> int | None:
    raw = request.query_params.get("leadId", "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdecimal() and len(raw) < 19):
        raise ApplicationError("Must be an integer.", field="leadId")
    return int(raw)


class EventCursorPagination(CursorPagination):
    ordering = ("-timestamp", "-id")
    page_size = 50
    page_size_query_param = "pageSize"
    max_page_size = 200


class EventSerializer(serializers.ModelSerializer):
    eventId = serializers.CharField(source="event_id")
    eventType = serializers.CharField(source="name")
    leadId = serializers.IntegerField(source="lead_id")
    anonymousId = serializers.CharField(source="anonymous_id")
    userId = serializers.CharField(source="user_id")
    receivedAt = serializers.DateTimeField(source="received_at")
    processedAt = serializers.DateTimeField(source="processed_at")

    class Meta:
        model = Event
        fields = [
            "eventId",
            "eventType",
            "type",
            "leadId",
            "anonymousId",
            "userId",
            "timestamp",
            "receivedAt",
            "processedAt",
            "properties",
        ]


class EventListApi(ProjectApiView):
    def get(self, request: Request) -> Response:
        events = events_filtered_for_project(
            project=self.project,
            event_type=request.query_params.get("eventType", "").replace("\x00", ""),
            lead_id=query_lead_id(request),
            since=query_datetime(request, "since"),
            until=query_datetime(request, "until"),
        )
        paginator = EventCursorPagination()
        page = paginator.paginate_queryset(events, request, view=self)
        return paginator.get_paginated_response(EventSerializer(page, many=True).data)
