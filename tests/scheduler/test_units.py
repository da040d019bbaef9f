"""The rollouts' units of work: commands go out at the commit, events after it in commit order, all marked."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from berth_common.bus.streams import CMD_STREAM
from berth_common.catalogue import ApplyRoutes, ServicePinged
from berth_common.db import Unit, make_engine, make_sessionmaker
from berth_common.db.tables import outbox
from berth_scheduler.usecases.rollout.units import RolloutTransactions
from tests.support.bus_helpers import Collector, connected_bus, prepare_schema, stream_messages, wait_until

SCHEMA = "sched_units"


@pytest.fixture
async def sessionmaker(database):
    await prepare_schema(database, SCHEMA)
    engine = make_engine(database, SCHEMA)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def unpublished(sessionmaker) -> int:
    async with sessionmaker() as s:
        return len((await s.execute(sa.select(outbox.c.id).where(outbox.c.published_at.is_(None)))).all())


async def test_commands_at_the_commit_events_after_in_order(nats_server, sessionmaker):
    bus = await connected_bus("scheduler", nats_server.url)
    events = await Collector().start(nats_server.url, ServicePinged.TYPE)
    commands = await Collector().start(nats_server.url, ApplyRoutes.TYPE)
    runner = RolloutTransactions(bus, sessionmaker)
    try:

        async def body(unit: Unit) -> str:
            for i in range(5):
                await unit.emit(ServicePinged(nonce=f"e{i}", service="scheduler"))
            await unit.emit(ApplyRoutes(route_id="r", hosts=["r.localhost"], upstreams=["http://127.0.0.1:1"]))
            await asyncio.sleep(0.2)
            assert events.items == [] and commands.items == []  # nothing before the commit
            return "done"

        assert await runner.run(body) == "done"
        assert await stream_messages(bus, CMD_STREAM) == 1  # the command is on the bus when run() returns
        await wait_until(lambda: len(commands.items) == 1)

        async def more(unit: Unit) -> None:
            for i in range(5, 10):
                await unit.emit(ServicePinged(nonce=f"e{i}", service="scheduler"))

        await runner.run(more)
        await runner.flush()
        await wait_until(lambda: len(events.items) == 10)
        assert [e[0]["data"]["nonce"] for e in events.items] == [f"e{i}" for i in range(10)]
        assert await unpublished(sessionmaker) == 0

        async def failing(unit: Unit) -> None:
            await unit.emit(ServicePinged(nonce="never", service="scheduler"))
            raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError):
            await runner.run(failing)
        await runner.flush()
        await asyncio.sleep(0.2)
        assert len(events.items) == 10
    finally:
        await events.close()
        await commands.close()
        await bus.close()


async def test_unpublished_events_stay_in_the_outbox_for_the_relay(nats_server, sessionmaker):
    bus = await connected_bus("scheduler", nats_server.url)
    runner = RolloutTransactions(bus, sessionmaker)
    await bus.nc.close()  # the bus is gone between the commit and the publish

    async def body(unit: Unit) -> None:
        await unit.emit(ServicePinged(nonce="later", service="scheduler"))

    await runner.run(body)
    await runner.flush()
    assert await unpublished(sessionmaker) == 1
