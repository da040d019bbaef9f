"""The notifier in-process on the real nats-server and Postgres fixtures, and a bus to talk to it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
import pytest
from pydantic import BaseModel

from berth_common.bus import Bus
from berth_common.bus.client import ServiceUnavailableError
from berth_common.catalogue import (
    ChannelCreate,
    ChannelList,
    ChannelListReply,
    ChannelReply,
    ChannelView,
    DeliveryList,
    DeliveryListReply,
    DeliveryView,
    Message,
    Query,
    SubscriptionCreate,
    SubscriptionReply,
)
from berth_common.db.provision import provision
from berth_common.runtime import serve
from berth_notifier.bootstrap import spec
from berth_notifier.settings import NotifierSettings

R = TypeVar("R", bound=BaseModel)
SECRET_KEY = "notifier-test-secret-key-0123456789"


@dataclass
class Notifier:
    bus: Bus
    settings: NotifierSettings
    db_url: str
    replies: list[str] = field(default_factory=list)  # every reply's JSON, to search for secrets

    async def ask(self, query: Query, reply: type[R], timeout: float = 15.0) -> R:
        answer = await self.bus.request("notifier", query.TYPE.removeprefix("rpc."), query, reply, timeout=timeout)
        self.replies.append(answer.model_dump_json())
        return answer

    async def channel(self, team: str, name: str, target: Any, events: list[str], **filters: str) -> ChannelView:
        created = await self.ask(ChannelCreate(team_id=team, name=name, target=target), ChannelReply)
        assert created.problem is None and created.channel is not None, created.problem
        sub = await self.ask(
            SubscriptionCreate(team_id=team, channel_id=created.channel.id, event_types=events, **filters),
            SubscriptionReply,
        )
        assert sub.problem is None, sub.problem
        return created.channel

    async def deliveries(self, team: str, channel_id: str | None = None) -> list[DeliveryView]:
        reply = await self.ask(DeliveryList(team_id=team, channel_id=channel_id), DeliveryListReply)
        assert reply.problem is None
        return reply.deliveries

    async def knows_application(self, application_id: str, timeout: float = 10.0) -> None:
        """Wait until the notifier has learned the application's team (from a deployment event)."""
        conn = await asyncpg.connect(self.db_url.replace("+asyncpg", ""))
        try:

            async def known() -> bool:
                query = "SELECT 1 FROM applications WHERE application_id = $1"
                return await conn.fetchval(query, application_id) is not None

            await wait_for(known, timeout)
        finally:
            await conn.close()

    async def publish(self, event: Message) -> str:
        env = await self.bus.publish(event)
        return env.id


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float = 10.0, interval: float = 0.05) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


@pytest.fixture
async def start_notifier(nats_server, database) -> AsyncIterator[Callable[..., Awaitable[Notifier]]]:
    """``await start_notifier(**settings)``: serve the notifier until the test ends (restartable)."""
    running: list[tuple[asyncio.Event, asyncio.Task[None], Bus]] = []
    urls = await provision(database, "test-secret")

    async def start(**overrides: Any) -> Notifier:
        values: dict[str, Any] = {
            "nats_url": nats_server.url,
            "database_url": urls["notifier"],
            "http_port": 0,
            "secret_key": SECRET_KEY,
            "public_url": "https://berth.test",
            "notify_backoff_base_s": 0.2,
            "notify_backoff_max_s": 2.0,
            "notify_timeout_s": 3.0,
            "notify_group_wait_s": 1.0,
            "notify_group_interval_s": 60.0,
            "notify_sweep_interval_s": 0.5,
            "notify_allow_private_targets": True,
            "notify_rate_per_minute": 600.0,
            "notify_burst": 20,
        }
        values.update(overrides)
        settings = NotifierSettings(**values)
        stop = asyncio.Event()
        task = asyncio.create_task(serve(spec(settings), stop))
        bus = Bus("api", nats_server.url)
        for _ in range(100):
            try:
                await bus.connect()
                break
            except Exception:
                await asyncio.sleep(0.1)
        running.append((stop, task, bus))
        notifier = Notifier(bus=bus, settings=settings, db_url=urls["notifier"])
        for _ in range(200):  # the queries are served after the consumers exist
            if task.done():
                task.result()
            try:
                await notifier.ask(ChannelList(team_id="probe"), ChannelListReply, timeout=1.0)
                return notifier
            except ServiceUnavailableError:
                await asyncio.sleep(0.1)
        raise TimeoutError("the notifier did not start")

    async def stop_all() -> None:
        for stop, task, bus in reversed(running):
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 30)
            await bus.close()
        running.clear()

    start.stop_all = stop_all  # type: ignore[attr-defined]
    yield start
    await stop_all()


@pytest.fixture
async def notifier(start_notifier) -> Notifier:
    return await start_notifier()
