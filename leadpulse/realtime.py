"""Broadcasts to a project's WebSocket group. Best effort: never fails the caller."""

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def project_group(project_id: int) -> str:
    return f"project-{project_id}"


def project_broadcast(*, project_id: int, type: str, payload: dict[str, Any]) -> None:
    """Send `{type, payload}` to everyone watching the project."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            project_group(project_id), {"type": "project.message", "event": type, "payload": payload}
        )
    except Exception:  # a dropped live update must never fail ingest or scoring
        logger.warning("broadcast %s to project %s failed", type, project_id, exc_info=True)
