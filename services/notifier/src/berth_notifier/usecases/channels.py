"""A team's notification channels: ``rpc.notifier.channel.create``, ``rpc.notifier.channel.list``,
``rpc.notifier.channel.get``, ``rpc.notifier.channel.update``, ``rpc.notifier.channel.delete`` and
``rpc.notifier.channel.test``.

A channel's secrets (webhook URLs, tokens, passwords) are sealed at rest and never leave the notifier: a
channel is shown with a hint of its target only. The test query queues one message, not grouped and tried
once, and waits for its outcome.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from berth_common.catalogue import (
    ChannelCreate,
    ChannelDelete,
    ChannelGet,
    ChannelList,
    ChannelListReply,
    ChannelReply,
    ChannelTest,
    ChannelUpdate,
    DeletedReply,
    DeliveryReply,
)
from berth_common.envelope import new_id
from berth_notifier.adapters import queue, store
from berth_notifier.adapters.queue import Grouping
from berth_notifier.domain.notice import probe_notice
from berth_notifier.domain.problems import not_found
from berth_notifier.usecases.deps import Deps


async def create(deps: Deps, req: ChannelCreate) -> ChannelReply:
    async with deps.sessionmaker() as s, s.begin():
        return ChannelReply(channel=await store.create_channel(s, deps.box, req))


async def list_all(deps: Deps, req: ChannelList) -> ChannelListReply:
    async with deps.sessionmaker() as s:
        return ChannelListReply(channels=await store.list_channels(s, req.team_id))


async def get(deps: Deps, req: ChannelGet) -> ChannelReply:
    async with deps.sessionmaker() as s:
        row = await store.get_channel(s, req.team_id, req.channel_id)
    if row is None:
        return ChannelReply(problem=not_found("channel_id", "channel"))
    return ChannelReply(channel=store.channel_view(row))


async def update(deps: Deps, req: ChannelUpdate) -> ChannelReply:
    async with deps.sessionmaker() as s, s.begin():
        view = await store.update_channel(s, deps.box, req)
    if view is None:
        return ChannelReply(problem=not_found("channel_id", "channel"))
    return ChannelReply(channel=view)


async def delete(deps: Deps, req: ChannelDelete) -> DeletedReply:
    async with deps.sessionmaker() as s, s.begin():
        deleted = await store.delete_channel(s, req.team_id, req.channel_id)
    if not deleted:
        return DeletedReply(problem=not_found("channel_id", "channel"))
    return DeletedReply(deleted=True)


async def send_test(deps: Deps, req: ChannelTest) -> DeliveryReply:
    """Queue a test message (one attempt, not grouped), wake the channel, wait for the outcome."""
    now = datetime.now(UTC)
    event_id = f"test-{new_id()}"
    async with deps.sessionmaker() as s, s.begin():
        row = await store.get_channel(s, req.team_id, req.channel_id)
        if row is None:
            return DeliveryReply(problem=not_found("channel_id", "channel"))
        notice = probe_notice(
            event_id=event_id,
            time=now,
            public_url=deps.settings.public_url,
            team_id=req.team_id,
            channel_name=row.name,
        )
        ids = await queue.enqueue(
            s,
            team_id=req.team_id,
            channel_ids=[row.id],
            notice=notice,
            group=Grouping(f"test:{event_id}", False, 0.0, 0.0),
            max_attempts=1,
            now=now,
            is_test=True,
        )
    deps.dispatcher.wake([req.channel_id])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + req.wait_s
    while True:
        async with deps.sessionmaker() as s:
            view = await queue.get_delivery(s, req.team_id, ids[0])
        if view is None or view.status in ("delivered", "failed") or loop.time() >= deadline:
            return DeliveryReply(delivery=view)
        await asyncio.sleep(0.05)
