from django.urls import path

from . import api, views

urlpatterns = [
    path("api/ingest/event", api.SdkEventIngestApi.as_view(), name="ingest-sdk-event"),
    path("api/events", api.ServerEventIngestApi.as_view(), name="ingest-server-event"),
    path("api/events/batch", api.ServerBatchIngestApi.as_view(), name="ingest-server-batch"),
    path("sdk/ls.js", views.sdk_script, name="sdk-script"),
]

# Segment's tracking API, so Segment, RudderStack and similar clients only change their host.
for prefix in ("v1", "api/v1"):
    urlpatterns += [
        path(f"{prefix}/batch", api.SegmentBatchApi.as_view(), name=f"segment-batch-{prefix}"),
        *[
            path(f"{prefix}/{call}", api.SegmentCallApi.as_view(call_type=call), name=f"segment-{call}-{prefix}")
            for call in ("track", "identify", "page", "screen", "group", "alias")
        ],
    ]
