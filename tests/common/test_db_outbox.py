"""The transactional outbox: published after commit, relayed after a crash, de-duplicated by JetStream."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from berth_common.bus import Delivery
from berth_common.bus.streams import EVT_STREAM
from berth_common.catalogue import PingService, ServicePinged
from berth_common.db import Unit, idempotent, make_engine, make_sessionmaker
from berth_common.db.tables import outbox
from berth_common.db.unit import OutboxRelay, run_unit
from berth_common.envelope import Envelope
from tests.support.bus_helpers import Collector, connected_bus, prepare_schema, stream_messages, wait_until

SCHEMA = "svc"


@pytest.fixture
async def sessionmaker(database):
    await prepare_schema(database, SCHEMA)
    engine = make_engine(database, SCHEMA)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def _rows(sessionmaker) -> list[tuple[str, bool]]:
    async with sessionmaker() as s:
        rows = (await s.execute(sa.select(outbox.c.id, outbox.c.published_at).order_by(outbox.c.created_at))).all()
    return [(r.id, r.published_at is not None) for r in rows]


async def test_emitted_event_is_published_after_commit_only(nats_server, sessionmaker):
    bus = await connected_bus("scheduler", nats_server.url)
    seen = await Collector().start(nats_server.url, ServicePinged.TYPE)

    async def body(unit: Unit) -> Envelope:
        env = await unit.emit(ServicePinged(nonce="a", service="scheduler"))
        await asyncio.sleep(0.3)
        assert seen.items == []  # not before the commit
        return env

    env = await run_unit(bus, sessionmaker, body)
    await wait_until(lambda: len(seen.items) == 1)
    assert seen.items[0][0]["id"] == env.id
    assert seen.items[0][1]["Nats-Msg-Id"] == env.id
    assert await _rows(sessionmaker) == [(env.id, True)]

    async def failing(unit: Unit) -> None:
        await unit.emit(ServicePinged(nonce="b", service="scheduler"))
        raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await run_unit(bus, sessionmaker, failing)
    await asyncio.sleep(0.3)
    assert len(seen.items) == 1 and await _rows(sessionmaker) == [(env.id, True)]
    await seen.close()
    await bus.close()


async def test_relay_publishes_once_what_a_dead_publisher_left(nats_server, sessionmaker):
    """Commit succeeded, the publish after it failed (connection gone): the relay publishes it, once."""
    dying = await connected_bus("scheduler", nats_server.url)
    await dying.nc.close()  # the process "dies" between commit and publish

    async def body(unit: Unit) -> Envelope:
        return await unit.emit(ServicePinged(nonce="left", service="scheduler"))

    env = await run_unit(dying, sessionmaker, body)
    assert await _rows(sessionmaker) == [(env.id, False)]

    bus = await connected_bus("scheduler", nats_server.url)
    relays = [OutboxRelay(bus, sessionmaker), OutboxRelay(bus, sessionmaker)]
    sent = await asyncio.gather(*(r.relay_once(older_than_s=0) for r in relays))
    assert sorted(sent) == [0, 1]  # two relays at once: the row is locked by one of them
    assert await _rows(sessionmaker) == [(env.id, True)]
    assert await relays[0].relay_once(older_than_s=0) == 0
    assert await stream_messages(bus, EVT_STREAM) == 1
    msg = await bus.js.get_last_msg(EVT_STREAM, ServicePinged.TYPE)
    assert Envelope.from_bytes(msg.data).id == env.id
    await bus.close()


async def test_relay_loop_picks_up_a_row_written_without_publishing(nats_server, sessionmaker):
    bus = await connected_bus("scheduler", nats_server.url)
    async with sessionmaker() as s, s.begin():  # as if the process died right after this commit
        env = await Unit(session=s, bus=bus).emit(ServicePinged(nonce="orphan", service="scheduler"))
    relay = OutboxRelay(bus, sessionmaker, interval_s=0.2)
    relay.start()
    try:
        await wait_until(lambda: stream_messages(bus, EVT_STREAM), timeout=5)
        await wait_until(lambda: _rows_published(sessionmaker), timeout=5)
    finally:
        await relay.stop()
    assert await _rows(sessionmaker) == [(env.id, True)]
    assert await stream_messages(bus, EVT_STREAM) == 1
    await bus.close()


async def _rows_published(sessionmaker) -> bool:
    return all(published for _, published in await _rows(sessionmaker))


async def test_jetstream_drops_a_second_publish_of_the_same_id(nats_server, sessionmaker):
    bus = await connected_bus("scheduler", nats_server.url)
    env = bus.envelope(ServicePinged(nonce="dup", service="scheduler"))
    await bus.publish_envelope(ServicePinged.TYPE, env)
    ack = await bus.js.publish(ServicePinged.TYPE, env.to_bytes(), headers={"Nats-Msg-Id": env.id})
    assert ack.duplicate
    await bus.publish(ServicePinged(nonce="dup", service="scheduler"), id=env.id)
    assert await stream_messages(bus, EVT_STREAM) == 1

    # published after commit, then the marker update was lost: the relay's second publish is dropped
    async def body(unit: Unit) -> Envelope:
        return await unit.emit(ServicePinged(nonce="again", service="scheduler"))

    env2 = await run_unit(bus, sessionmaker, body)
    async with sessionmaker() as s, s.begin():
        await s.execute(sa.update(outbox).where(outbox.c.id == env2.id).values(published_at=None))
    assert await OutboxRelay(bus, sessionmaker).relay_once(older_than_s=0) == 1
    assert await stream_messages(bus, EVT_STREAM) == 2
    await bus.close()


async def test_derived_ids_are_stable_bounded_and_distinct_per_consumer(nats_server, sessionmaker):
    """Two services reacting to one message emit distinct ids (no false de-dup); a retry emits the same."""
    api = await connected_bus("api", nats_server.url)
    seen = await Collector().start(nats_server.url, PingService.TYPE)
    buses, ids = [], {}
    for service in ("scheduler", "notifier"):
        bus = await connected_bus(service, nats_server.url)

        async def handler(msg: ServicePinged, unit: Unit, service: str = service) -> None:
            env = await unit.emit(PingService(nonce=f"from {service}"))
            ids.setdefault(service, []).append(env.id)
            if len(ids[service]) == 1:
                raise RuntimeError("retry me")  # rolled back; the retry must emit the very same id

        await bus.consume(ServicePinged, idempotent(bus, sessionmaker, handler))
        buses.append(bus)
    await api.publish(ServicePinged(nonce="n", service="x"), id="x" * 128)  # the longest id allowed
    await wait_until(lambda: len(seen.items) == 2, timeout=10)
    assert ids["scheduler"][0] == ids["scheduler"][1] and ids["notifier"][0] == ids["notifier"][1]
    assert ids["scheduler"][0] != ids["notifier"][0]
    assert {len(i[0]) for i in ids.values()} == {32}
    assert sorted(b["data"]["nonce"] for b, _ in seen.items) == ["from notifier", "from scheduler"]
    for bus in [*buses, api]:
        await bus.close()
    await seen.close()


async def test_delivery_is_available_to_the_unit(nats_server, sessionmaker):
    bus = await connected_bus("scheduler", nats_server.url)
    got: list[Delivery | None] = []

    async def handler(msg: PingService, unit: Unit) -> None:
        got.append(unit.delivery)

    await bus.consume(PingService, idempotent(bus, sessionmaker, handler))
    env = await bus.publish(PingService(nonce="d"))
    await wait_until(lambda: got)
    assert got[0] is not None and got[0].envelope.id == env.id and got[0].attempt == 1
    await bus.close()


async def test_a_sent_message_that_cannot_be_marked_leaves_the_unit_done(nats_server, sessionmaker):
    """After the commit the message is sent; when no connection is free to mark it sent, the unit still
    returns (its work is committed), and the relay marks it later without a second message."""
    bus = await connected_bus("scheduler", nats_server.url)
    before = await stream_messages(bus, EVT_STREAM)
    calls = 0

    def flaky_sessionmaker():
        nonlocal calls
        calls += 1
        if calls > 1:  # the unit's own transaction gets its session; the mark afterwards does not
            raise sa.exc.TimeoutError("QueuePool limit reached, connection timed out")
        return sessionmaker()

    async def body(unit: Unit) -> Envelope:
        return await unit.emit(ServicePinged(nonce="m", service="scheduler"))

    env = await run_unit(bus, flaky_sessionmaker, body)
    assert await stream_messages(bus, EVT_STREAM) == before + 1
    assert await _rows(sessionmaker) == [(env.id, False)]
    relay = OutboxRelay(bus, sessionmaker, interval_s=0.1)
    assert await relay.relay_once(older_than_s=0) == 1
    assert await _rows(sessionmaker) == [(env.id, True)]
    assert await stream_messages(bus, EVT_STREAM) == before + 1  # the relay's send: dropped as a duplicate
    await bus.close(timeout=2)
