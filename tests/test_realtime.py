import asyncio

import pytest
from channels.layers import get_channel_layer

from leadpulse.realtime import project_broadcast, project_group


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
