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

from berth_common import catalogue
from berth_common.envelope import new_id
from berth_notifier.adapters import queue, store
from berth_notifier.adapters.queue import Grouping
from berth_notifier.domain.notice import probe_notice
from berth_notifier.domain.problems import not_found
from berth_notifier.usecases.deps import Deps


async def create(deps: Deps, req: catalogue.ChannelCreate) -> catalogue.ChannelReply:
    async with deps.sessionmaker() as s, s.begin():
        return catalogue.ChannelReply(
            channel=await store.create_channel(s, deps.box, req, deps.settings.notify_policy(req.team_id))
        )


async def list_all(deps: Deps, req: catalogue.ChannelList) -> catalogue.ChannelListReply:
    async with deps.sessionmaker() as s:
        return catalogue.ChannelListReply(channels=await store.list_channels(s, req.team_id))


async def get(deps: Deps, req: catalogue.ChannelGet) -> catalogue.ChannelReply:
    async with deps.sessionmaker() as s:
        row = await store.get_channel(s, req.team_id, req.channel_id)
    if row is None:
        return catalogue.ChannelReply(problem=not_found("channel_id", "channel"))
    return catalogue.ChannelReply(channel=store.channel_view(row))


async def update(deps: Deps, req: catalogue.ChannelUpdate) -> catalogue.ChannelReply:
    async with deps.sessionmaker() as s, s.begin():
        view = await store.update_channel(s, deps.box, req, deps.settings.notify_policy(req.team_id))
    if view is None:
        return catalogue.ChannelReply(problem=not_found("channel_id", "channel"))
    return catalogue.ChannelReply(channel=view)


async def delete(deps: Deps, req: catalogue.ChannelDelete) -> catalogue.DeletedReply:
    async with deps.sessionmaker() as s, s.begin():
        deleted = await store.delete_channel(s, req.team_id, req.channel_id)
    if not deleted:
        return catalogue.DeletedReply(problem=not_found("channel_id", "channel"))
    return catalogue.DeletedReply(deleted=True)


async def send_test(deps: Deps, req: catalogue.ChannelTest) -> catalogue.DeliveryReply:
    """Queue a test message (one attempt, not grouped), wake the channel, wait for the outcome."""
    now = datetime.now(UTC)
    event_id = f"test-{new_id()}"
    async with deps.sessionmaker() as s, s.begin():
        row = await store.get_channel(s, req.team_id, req.channel_id)
        if row is None:
            return catalogue.DeliveryReply(problem=not_found("channel_id", "channel"))
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
            return catalogue.DeliveryReply(delivery=view)
        await asyncio.sleep(0.05)
