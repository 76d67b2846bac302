"""WebSocket test helpers for the ASGI application (channels' communicator)."""

import json

from channels.testing.websocket import WebsocketCommunicator


async def refused_or_open(communicator: WebsocketCommunicator) -> tuple[bool, object]:
    """A refusal is an accept followed at once by a close with its code (so browsers see the code)."""
    connected, detail = await communicator.connect(timeout=5)
    if not connected:
        return False, detail
    first = await communicator.receive_output(timeout=5)
    if first["type"] == "websocket.close":
        return False, first.get("code")
    assert first["type"] == "websocket.send"
    communicator.hello = json.loads(first["text"])  # type: ignore[attr-defined]
    return True, detail
