"""Helpers for the bus and storage tests: connecting, polling, reading consumer and stream state."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError

from berth_common.bus import Bus, subscriptions_confirmed
from berth_common.bus.consumer import durable_name


async def connected_bus(service: str, url: str, **kwargs: Any) -> Bus:
    kwargs.setdefault("fetch_wait_s", float(os.environ.get("BERTH_FETCH_WAIT_S", "1.0")))
    bus = Bus(service, url, **kwargs)
    await bus.connect()
    return bus


async def connect_as_services_do(bus: Bus, timeout: float = 60.0) -> Bus:
    """``bus.connect()``, again while the JetStream API does not answer in time (a cluster's meta group busy
    on a loaded machine: declaring a stream is a round of its consensus), as every service's start does
    (``berth_common.runtime._connect_bus``); any other error is raised at once."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await bus.connect()
            return bus
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def wait_until(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    timeout: float = 10.0,
    interval: float = 0.05,
    *,
    seen: Callable[[], object] | None = None,
) -> None:
    """Poll ``check`` until it is true; fail with the time waited otherwise (and what ``seen`` returns then:
    the state the check looked at, so a failure says how far it got)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            shown = "" if seen is None else f": {seen()!r}"
            raise AssertionError(f"condition not met within {timeout}s{shown}")
        await asyncio.sleep(interval)


async def consumer_info(bus: Bus, stream: str, service: str, subject: str) -> ConsumerInfo:
    return await bus.js.consumer_info(stream, durable_name(service, subject))


async def stream_messages(bus: Bus, stream: str) -> int:
    try:
        info = await bus.js.stream_info(stream)
    except NotFoundError:
        return 0
    return int(info.state.messages)


class Collector:
    """A core NATS subscription gathering decoded envelopes (and headers) on one subject."""

    def __init__(self) -> None:
        self.items: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.nc: NATS | None = None

    async def start(self, url: str, subject: str) -> Collector:
        self.nc = await nats.connect(url)

        async def on_msg(msg: Any) -> None:
            try:
                body = json.loads(msg.data)
            except ValueError:
                body = {"raw": msg.data.decode(errors="replace")}
            self.items.append((body, dict(msg.headers or {})))

        await self.nc.subscribe(subject, cb=on_msg)
        await subscriptions_confirmed(self.nc)
        return self

    async def close(self) -> None:
        if self.nc is not None:
            await self.nc.close()


class EventLog:
    """Every event on the given subjects of an existing connection, in arrival order, once per message id
    (a core subscription also sees a repeated publish of one message, the outbox relay after a stop, which
    JetStream drops as a duplicate)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.changed = asyncio.Condition()

    async def follow(self, nc: Any, *subjects: str) -> None:
        async def on(msg: Any) -> None:
            event = json.loads(msg.data)
            async with self.changed:
                if all(e["id"] != event["id"] for e in self.events):
                    self.events.append(event)
                self.changed.notify_all()

        for subject in subjects:
            await nc.subscribe(subject, cb=on)
        await nc.flush()

    async def until(self, found: Callable[[], Any], timeout: float) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(found), timeout)


async def prepare_schema(db_url: str, schema: str, *tables: Any) -> None:
    """A service-like schema: the base tables every service has (processed ids, outbox) plus ``tables``."""
    import sqlalchemy as sa

    from berth_common.db import make_engine
    from berth_common.db.tables import metadata

    engine = make_engine(db_url, schema)
    async with engine.begin() as conn:
        await conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        await conn.run_sync(metadata.create_all)
        for table in tables:
            await conn.run_sync(table.create)
    await engine.dispose()
