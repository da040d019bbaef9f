"""``Unit.emit_data``: a message known by its type only goes through the outbox like any other (published
after the commit with its id, nothing when the transaction rolls back, the same id written once)."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from berth_common.db import Unit, make_engine, make_sessionmaker
from berth_common.db.tables import outbox
from berth_common.db.unit import run_unit
from berth_common.envelope import Envelope
from tests.support.bus_helpers import Collector, connected_bus, prepare_schema, wait_until

SCHEMA = "svc"
TYPE = "cmd.backup.start"  # a command the emitting service does not parse


@pytest.fixture
async def sessionmaker(database):
    await prepare_schema(database, SCHEMA)
    engine = make_engine(database, SCHEMA)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def test_data_of_a_type_is_published_after_commit_with_its_id(nats_server, sessionmaker):
    bus = await connected_bus("scheduler", nats_server.url)
    seen = await Collector().start(nats_server.url, TYPE)
    data = {"backup_id": "schedule-s-20260101T000100Z", "anything": {"nested": [1, 2]}}

    async def body(unit: Unit) -> Envelope:
        env = await unit.emit_data(TYPE, data, id="schedule-s-20260101T000100Z", schema_version=2)
        await unit.emit_data(TYPE, data, id="schedule-s-20260101T000100Z")  # the same id: one outbox row
        await asyncio.sleep(0.3)
        assert seen.items == []  # not before the commit
        return env

    env = await run_unit(bus, sessionmaker, body)
    await wait_until(lambda: len(seen.items) >= 1)
    published, headers = seen.items[0]
    assert (published["id"], published["type"], published["source"]) == (env.id, TYPE, "berth/scheduler")
    assert (published["data"], published["schemaversion"], headers["Nats-Msg-Id"]) == (data, 2, env.id)
    async with sessionmaker() as s:
        assert (await s.execute(sa.select(sa.func.count()).select_from(outbox))).scalar() == 1

    async def failing(unit: Unit) -> None:
        await unit.emit_data(TYPE, data, id="rolled-back")
        raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await run_unit(bus, sessionmaker, failing)
    await asyncio.sleep(0.3)
    assert all(item["id"] != "rolled-back" for item, _ in seen.items)
    await seen.close()
    await bus.close()
