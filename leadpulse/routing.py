"""WebSocket routes. The dashboard's live consumers register here."""

websocket_urlpatterns: list = []
