"""Broadcasts to a project's WebSocket group: fire-and-forget, never failing the caller.

Sync callers (ingest views, Celery tasks) hand the send to one long-lived event loop
instead of spinning one up per call with `async_to_sync` (which cost ~2 ms per ingest
request). In production that loop is a daemon thread of each process (re-created after
a fork); in embedded mode `runembedded` makes it the server's own loop, so the in-memory
channel layer is only ever touched from the loop its consumers run on.
"""

import asyncio
import logging
import os
import threading
from concurrent.futures import Future
from typing import Any

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0


def project_group(project_id: int) -> str:
    return f"project-{project_id}"


def broadcast_loop_use(loop: asyncio.AbstractEventLoop) -> None:
    """Send broadcasts on `loop` (embedded mode: the ASGI server's loop)."""
    global _loop, _loop_pid
    with _lock:
        _loop, _loop_pid = loop, os.getpid()


def _broadcast_loop() -> asyncio.AbstractEventLoop:
    global _loop, _loop_pid
    with _lock:
        if _loop is None or _loop.is_closed() or _loop_pid != os.getpid():
            _loop, _loop_pid = asyncio.new_event_loop(), os.getpid()
            threading.Thread(target=_loop.run_forever, name="leadpulse-broadcast", daemon=True).start()
        return _loop


def _log_failure(future: Future) -> None:
    if future.exception() is not None:
        logger.warning("broadcast failed: %r", future.exception())


def project_broadcast(*, project_id: int, type: str, payload: dict[str, Any]) -> Future | None:
    """Send `{type, payload}` to everyone watching the project; returns the pending send."""
    layer = get_channel_layer()
    if layer is None:
        return None
    message = {"type": "project.message", "event": type, "payload": payload}
    send = layer.group_send(project_group(project_id), message)
    try:
        future = asyncio.run_coroutine_threadsafe(send, _broadcast_loop())
    except RuntimeError:  # interpreter shutting down
        return None
    future.add_done_callback(_log_failure)
    return future
