"""Public ingest endpoints, authenticated by a project's write key.

Each view parses, calls `events_ingest` once and shapes the answer its clients expect.
"""

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.utils import timezone
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import project_for_write_key
from leadpulse.errors import ApplicationError

from .schema import SchemaError, batch_items, event_from_sdk, event_from_server, parse_json
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
    return parse_json(raw, max_bytes=limit)


class IngestApiView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes: list = []


class SdkEventIngestApi(IngestApiView):
    """`POST /api/ingest/event`: the browser SDK's shape, write key in the body."""

    def post(self, request: Request) -> Response:
        body = request_json(request)
        if not isinstance(body, dict):
            raise SchemaError("body", "Must be a JSON object.")
        project = project_for_write_key(raw_key=body.get("apiKey"))
        event = event_from_sdk(body, received_at=timezone.now(), max_event_bytes=settings.LEADPULSE_MAX_EVENT_BYTES)
        result = events_ingest(project_id=project.id, events=[event])
        if result.duplicates:
            return Response({"status": "duplicate", "eventId": event.event_id}, status=status.HTTP_200_OK)
        return Response({"status": "queued", "eventId": event.event_id}, status=status.HTTP_202_ACCEPTED)


class ServerEventIngestApi(IngestApiView):
    """`POST /api/events`: server-side shape, write key in `X-API-Key`."""

    def post(self, request: Request) -> Response:
        project = project_for_write_key(raw_key=request.headers.get("X-API-Key"))
        body = request_json(request)
        event = event_from_server(body, received_at=timezone.now(), max_event_bytes=settings.LEADPULSE_MAX_EVENT_BYTES)
        result = events_ingest(project_id=project.id, events=[event])
        if result.duplicates:
            return Response(
                {"message": "Duplicate event ignored", "status": "duplicate", "eventId": event.event_id},
                status=status.HTTP_200_OK,
            )
        return Response({"message": "Event queued", "eventId": event.event_id}, status=status.HTTP_202_ACCEPTED)


class ServerBatchIngestApi(IngestApiView):
    """`POST /api/events/batch`: up to 500 server-shape events; valid ones are stored."""

    def post(self, request: Request) -> Response:
        project = project_for_write_key(raw_key=request.headers.get("X-API-Key"))
        items = batch_items(request_json(request), max_events=settings.LEADPULSE_MAX_BATCH_EVENTS)
        received_at = timezone.now()
        events, errors = [], []
        for index, item in enumerate(items):
            try:
                events.append(
                    event_from_server(item, received_at=received_at, max_event_bytes=settings.LEADPULSE_MAX_EVENT_BYTES)
                )
            except ApplicationError as exc:
                errors.append({"index": index, "field": exc.field, "message": exc.message})
        result = events_ingest(project_id=project.id, events=events)
        body = {
            "count": len(items),
            "accepted": len(result.accepted),
            "duplicates": len(result.duplicates),
            "errors": errors,
        }
        if not events:
            first = errors[0]
            body["error"] = {
                "code": "invalid",
                "message": f"No valid events: events[{first['index']}].{first['field']}: {first['message']}",
                "fields": {f"events[{e['index']}].{e['field']}": [e["message"]] for e in errors},
            }
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        return Response(body, status=status.HTTP_202_ACCEPTED)
