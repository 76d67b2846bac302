"""The dashboard's live channel: one WebSocket per page, joined to its project's group only."""

from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth.models import AnonymousUser

from accounts.authentication import user_for_access_token
from accounts.models import Membership
from accounts.selectors import membership_for_user
from core.errors import NotFound
from core.realtime import project_group

BEARER_PROTOCOL = "bearer."


@database_sync_to_async
def _user_for_token(token: str) -> Any:
    # the API's own checks: signature, expiry, active user, password unchanged since the token was issued
    return user_for_access_token(token) or AnonymousUser()


@database_sync_to_async
def _membership(user: Any, project_id: str | None, session_project: Any) -> Membership | None:
    try:
        return membership_for_user(user=user, project_id=project_id or session_project)
    except NotFound:
        return None


class ProjectConsumer(AsyncJsonWebsocketConsumer):
    """Authenticate (session, or a JWT as a `bearer.<jwt>` subprotocol or the older `?token=`), join, forward."""

    group: str | None = None

    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode())
        user = self.scope.get("user") or AnonymousUser()
        protocol = next((p for p in self.scope.get("subprotocols", []) if p.startswith(BEARER_PROTOCOL)), None)
        token = (query.get("token") or [None])[0] or (protocol[len(BEARER_PROTOCOL) :] if protocol else None)
        if token:
            user = await _user_for_token(token)
        if not user.is_authenticated:
            await self.refuse(code=4401, subprotocol=protocol)
            return
        session = self.scope.get("session")
        membership = await _membership(
            user, (query.get("project") or [None])[0], session.get("project_id") if session else None
        )
        if membership is None:
            # not a member: same answer as a project that does not exist
            await self.refuse(code=4404, subprotocol=protocol)
            return
        self.group = project_group(membership.project_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept(subprotocol=protocol)
        await self.send_json({"type": "hello", "payload": {"projectId": membership.project_id}})

    async def refuse(self, *, code: int, subprotocol: str | None) -> None:
        """Accept, then close with `code`: a close before the handshake reaches the browser as a bare
        HTTP 403 (close code 1006), and the page could not tell "refused, stop" from "network, retry"."""
        await self.accept(subprotocol=subprotocol)
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """The channel is one-way: clients only listen."""

    async def project_message(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": event["event"], "payload": event["payload"]})
