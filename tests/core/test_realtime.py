import asyncio

import pytest
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.conf import settings

from core.realtime import project_broadcast, project_group


@pytest.mark.parametrize("project_id", [41])
def test_broadcasts_reach_the_projects_group_and_no_other(project_id):
    layer = get_channel_layer()

    async def subscribe(group):
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        return channel

    loop = asyncio.new_event_loop()
    try:
        mine = loop.run_until_complete(subscribe(project_group(project_id)))
        other = loop.run_until_complete(subscribe(project_group(project_id + 1)))

        project_broadcast(project_id=project_id, type="lead.updated", payload={"id": 7}).result(timeout=5)

        message = loop.run_until_complete(asyncio.wait_for(layer.receive(mine), timeout=5))
        assert message == {"type": "project.message", "event": "lead.updated", "payload": {"id": 7}}
        with pytest.raises(asyncio.TimeoutError):
            loop.run_until_complete(asyncio.wait_for(layer.receive(other), timeout=0.5))
        loop.run_until_complete(layer.group_discard(project_group(project_id), mine))
        loop.run_until_complete(layer.group_discard(project_group(project_id + 1), other))
    finally:
        loop.close()


def test_the_channel_layer_has_no_read_timeout_under_its_blocking_reads():
    # channels-redis blocks 5 s per read: a read timeout at or below that fails every idle receive.
    layer = get_channel_layer()
    assert layer.create_pool(0).make_connection().socket_timeout is None


def test_a_cancelled_receive_ends_at_once():
    """A consumer cancels its receive when its socket closes; uvicorn waits for that consumer to end."""

    async def scenario():
        for attempt in range(40):
            layer = RedisChannelLayer(**settings.CHANNEL_LAYERS["default"]["CONFIG"])  # connects afresh
            receive = asyncio.ensure_future(layer.receive(await layer.new_channel()))
            await asyncio.sleep(attempt / 2000)  # cancel it while connecting, sending, then blocking
            receive.cancel()
            done, _ = await asyncio.wait([receive], timeout=2)
            assert done, f"a receive cancelled after {attempt / 2000} s is still running"
            await layer.close_pools()

    asyncio.run(scenario())
