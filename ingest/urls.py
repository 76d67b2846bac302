from django.urls import path

from . import api

urlpatterns = [
    path("api/ingest/event", api.SdkEventIngestApi.as_view(), name="ingest-sdk-event"),
    path("api/events", api.ServerEventIngestApi.as_view(), name="ingest-server-event"),
    path("api/events/batch", api.ServerBatchIngestApi.as_view(), name="ingest-server-batch"),
]
