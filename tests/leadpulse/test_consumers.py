"""The live channel: who may subscribe, and to what (real Redis channel layer)."""

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.testing.websocket import WebsocketCommunicator
from django.test import Client
from rest_framework_simplejwt.tokens import RefreshToken

from core.realtime import project_broadcast
from leadpulse.asgi import application
from tests.accounts.factories import project_with_owner
from tests.sockets import refused_or_open

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = (b"origin", b"http://localhost")


def session_cookie(user) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


async def connect(path, headers=(), subprotocols=None, origin=ORIGIN):
    """(socket, connected, subprotocol) for a socket kept open; (socket, False, close code) for a refused one."""
    communicator = WebsocketCommunicator(application, path, headers=[origin, *headers], subprotocols=subprotocols)
    return (communicator, *await refused_or_open(communicator))


def test_a_session_user_receives_only_their_projects_messages():
    mine, owner, _ = project_with_owner(name="Mine")
    theirs, _, _ = project_with_owner(name="Theirs")

    cookie = session_cookie(owner)

    async def scenario():
        socket, connected, _ = await connect("/ws/project/", [cookie])
        assert connected
        assert socket.hello == {"type": "hello", "payload": {"projectId": mine.id}}
        project_broadcast(project_id=theirs.id, type="lead.updated", payload={"id": 1}).result(timeout=5)
        project_broadcast(project_id=mine.id, type="lead.updated", payload={"id": 2}).result(timeout=5)
        assert (await socket.receive_json_from(timeout=5)) == {"type": "lead.updated", "payload": {"id": 2}}
        assert await socket.receive_nothing(timeout=0.3)
        await socket.disconnect()

    async_to_sync(scenario)()


def test_anonymous_and_cross_project_subscriptions_are_refused():
    _mine, owner, _ = project_with_owner(name="Mine")
    theirs, _, _ = project_with_owner(name="Theirs")

    cookie = session_cookie(owner)

    async def scenario():
        _, connected, code = await connect("/ws/project/")
        assert not connected and code == 4401
        _, connected, code = await connect(f"/ws/project/?project={theirs.id}", [cookie])
        assert not connected and code == 4404
        socket, connected, _ = await connect("/ws/project/", [cookie])
        assert connected  # the same session from our own origin...
        await socket.disconnect()
        _, connected, _ = await connect("/ws/project/", [cookie], origin=(b"origin", b"http://evil.example"))
        assert not connected  # foreign origin

    async_to_sync(scenario)()


def test_api_clients_authenticate_with_a_jwt_query_token_or_subprotocol():
    _mine, owner, _ = project_with_owner(name="Mine")
    token = str(RefreshToken.for_user(owner).access_token)

    async def scenario():
        socket, connected, _ = await connect(f"/ws/project/?token={token}")
        assert connected
        await socket.disconnect()
        socket, connected, protocol = await connect("/ws/project/", subprotocols=[f"bearer.{token}"])
        assert connected and protocol == f"bearer.{token}"
        await socket.disconnect()
        _, connected, code = await connect("/ws/project/?token=garbage")
        assert not connected and code == 4401

    async_to_sync(scenario)()


def test_an_idle_socket_outlives_the_channel_layers_blocking_reads():
    """channels-redis waits for messages 5 s at a time: a consumer idle for longer still gets the next one."""
    mine, owner, _ = project_with_owner(name="Mine")
    cookie = session_cookie(owner)

    async def scenario():
        socket, connected, _ = await connect("/ws/project/", [cookie])
        assert connected
        assert socket.hello["type"] == "hello"
        await asyncio.sleep(11)  # two full blocking reads on Redis, and then some
        project_broadcast(project_id=mine.id, type="lead.updated", payload={"id": 3}).result(timeout=5)
        assert (await socket.receive_json_from(timeout=5)) == {"type": "lead.updated", "payload": {"id": 3}}
        await socket.disconnect()

    async_to_sync(scenario)()


def test_a_refused_socket_tells_a_real_client_its_close_code(tmp_path):
    """Over a real server: closing before the handshake would reach the browser as HTTP 403 (code 1006),
    so the page's "refused: stop retrying" branch could never run (a signed-out page retried forever)."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect as ws_connect

    from tests.live import web_server

    with web_server(tmp_path / "web.log") as base:
        url = base.replace("http://", "ws://") + "/ws/project/"
        with ws_connect(url, origin=base, open_timeout=10) as socket, pytest.raises(ConnectionClosed) as closed:  # type: ignore[arg-type]
            socket.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
