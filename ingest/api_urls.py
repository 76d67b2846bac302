from django.urls import path

from . import api

app_name = "ingest_api"
urlpatterns = [
    path("api/ingest/event", api.SdkEventIngestApi.as_view(), name="ingest-sdk-event"),
    path("api/events", api.server_event_view, name="ingest-server-event"),
    path("api/events/batch", api.ServerBatchIngestApi.as_view(), name="ingest-server-batch"),
]

# Segment's tracking API, so Segment, RudderStack and similar clients only change their host.
# analytics.js (analytics-next) posts to one-letter paths: /t /i /p /s /g /a, and /b for batches.
SEGMENT_CALLS = ("track", "identify", "page", "screen", "group", "alias")
for prefix in ("v1", "api/v1"):
    for route in ("batch", "b"):
        urlpatterns.append(path(f"{prefix}/{route}", api.SegmentBatchApi.as_view(), name=f"segment-{route}-{prefix}"))
    for call in SEGMENT_CALLS:
        view = api.SegmentCallApi.as_view(call_type=call)
        urlpatterns += [
            path(f"{prefix}/{call}", view, name=f"segment-{call}-{prefix}"),
            path(f"{prefix}/{call[0]}", view, name=f"segment-{call[0]}-{prefix}"),
        ]
