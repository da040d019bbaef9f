"""Consuming a message once (``consume_once``): a redelivery has no second effect, and the action after the
commit runs only once the handler's transaction committed, never when it rolled back."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_common.bus import Delivery
from berth_common.catalogue import PingService, ServicePinged
from berth_common.db import Transactions, Unit, consume_once, make_engine, make_sessionmaker
from berth_common.db.tables import processed_messages
from tests.support.bus_helpers import Collector, connected_bus, prepare_schema, wait_until

SCHEMA = "svc_consume"
effects = sa.Table(
    "consume_effects",
    sa.MetaData(schema=None),
    sa.Column("nonce", sa.Text, primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
)


@pytest.fixture
async def sessionmaker(database):
    await prepare_schema(database, SCHEMA, effects)
    engine = make_engine(database, SCHEMA)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def count(sessionmaker: Any, nonce: str) -> int:
    async with sessionmaker() as s:
        found = await s.scalar(sa.select(effects.c.count).where(effects.c.nonce == nonce))
    return int(found or 0)


async def recorded(sessionmaker: Any) -> int:
    async with sessionmaker() as s:
        return int(await s.scalar(sa.select(sa.func.count()).select_from(processed_messages)) or 0)


def delivery_of(bus: Any, message: PingService, attempt: int = 1) -> Delivery:
    return Delivery(envelope=bus.envelope(message, id="msg-1"), headers={}, attempt=attempt, consumer="tester")


class Probe:
    """A handler that bumps a counter and emits an event, and an ``after`` that checks it runs past the commit."""

    def __init__(self, fail_first: bool = False) -> None:
        self.fail_first = fail_first
        self.runs = 0
        self.session: AsyncSession | None = None
        self.after: list[tuple[str, Any, bool]] = []

    async def handle(self, msg: PingService, unit: Unit) -> str:
        self.runs += 1
        self.session = unit.session
        stmt = insert(effects).values(nonce=msg.nonce, count=1)
        await unit.session.execute(
            stmt.on_conflict_do_update(index_elements=[effects.c.nonce], set_={"count": effects.c.count + 1})
        )
        await unit.emit(ServicePinged(nonce=msg.nonce, service="tester"))
        if self.fail_first and self.runs == 1:
            raise RuntimeError("rolled back")
        return f"done {msg.nonce}"

    def done(self, msg: PingService, result: str | None) -> None:
        assert self.session is not None
        self.after.append((msg.nonce, result, self.session.in_transaction()))


async def test_a_redelivery_has_no_second_effect_and_after_runs_past_the_commit(nats_server, sessionmaker):
    bus = await connected_bus("tester", nats_server.url)
    seen = await Collector().start(nats_server.url, ServicePinged.TYPE)
    probe = Probe()
    consumed = consume_once(Transactions(bus, sessionmaker), probe.handle, probe.done)
    msg = PingService(nonce="once")
    try:
        await consumed(msg, delivery_of(bus, msg))
        assert probe.runs == 1 and await count(sessionmaker, "once") == 1
        assert probe.after == [("once", "done once", False)]  # the transaction had ended
        await wait_until(lambda: len(seen.items) == 1)

        await consumed(msg, delivery_of(bus, msg, attempt=2))  # redelivered: found by its id
        assert probe.runs == 1 and await count(sessionmaker, "once") == 1 and await recorded(sessionmaker) == 1
        assert probe.after[1:] == [("once", None, False)]  # after runs again, with no result
        await asyncio.sleep(0.2)
        assert len(seen.items) == 1  # nothing emitted a second time
    finally:
        await seen.close()
        await bus.close()


async def test_after_never_runs_when_the_handler_rolls_back(nats_server, sessionmaker):
    bus = await connected_bus("tester", nats_server.url)
    seen = await Collector().start(nats_server.url, ServicePinged.TYPE)
    probe = Probe(fail_first=True)
    at_commit: list[bool] = []

    def after(msg: PingService, result: str | None) -> None:
        assert probe.session is not None
        at_commit.append(probe.session.in_transaction())
        probe.done(msg, result)

    consumed = consume_once(Transactions(bus, sessionmaker), probe.handle, after, after_at_commit=True)
    msg = PingService(nonce="retry")
    try:
        with pytest.raises(RuntimeError):
            await consumed(msg, delivery_of(bus, msg))
        assert probe.after == [] and at_commit == []
        assert await count(sessionmaker, "retry") == 0 and await recorded(sessionmaker) == 0  # id not kept
        await asyncio.sleep(0.2)
        assert seen.items == []

        await consumed(msg, delivery_of(bus, msg, attempt=2))  # the retry has the effect, once
        assert probe.runs == 2 and await count(sessionmaker, "retry") == 1
        # at the commit (before the publish) and again after it; both past the transaction
        assert probe.after == [("retry", "done retry", False), ("retry", "done retry", False)]
        await wait_until(lambda: len(seen.items) == 1)
    finally:
        await seen.close()
        await bus.close()


async def test_after_at_commit_runs_before_the_publish(nats_server, sessionmaker):
    bus = await connected_bus("tester", nats_server.url)
    seen = await Collector().start(nats_server.url, ServicePinged.TYPE)
    order: list[str] = []

    class Recording(Transactions):
        async def publish(self, unit: Unit) -> None:
            order.append("publish")
            await super().publish(unit)

    probe = Probe()

    def after(msg: PingService, result: str | None) -> None:
        order.append(f"after {result}")

    consumed = consume_once(Recording(bus, sessionmaker), probe.handle, after, after_at_commit=True)
    msg = PingService(nonce="early")
    try:
        await consumed(msg, delivery_of(bus, msg))
        assert order == ["after done early", "publish", "after done early"]
        await wait_until(lambda: len(seen.items) == 1)
    finally:
        await seen.close()
        await bus.close()


async def test_over_the_bus_a_failed_attempt_is_redelivered_and_after_runs_once(nats_server, sessionmaker):
    bus = await connected_bus("tester", nats_server.url)
    probe = Probe(fail_first=True)
    await bus.consume(PingService, consume_once(Transactions(bus, sessionmaker), probe.handle, probe.done))
    await bus.publish(PingService(nonce="bus"), id=uuid.uuid4().hex)
    try:
        await wait_until(lambda: probe.after, timeout=10)
        await asyncio.sleep(0.3)
        assert probe.runs == 2 and await count(sessionmaker, "bus") == 1
        assert probe.after == [("bus", "done bus", False)]
    finally:
        await bus.close()
