"""Several messages in one transaction (``first_times``, ``Unit.stage``, ``write_outbox``,
``publish_units``): each id recorded once, a redelivery found among new ones, the outbox rows of several
units written together, and what every unit staged published after the commit and marked."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from berth_common.bus import Delivery
from berth_common.catalogue import PingService, ServicePinged
from berth_common.db import Unit, make_engine, make_sessionmaker
from berth_common.db.tables import outbox
from berth_common.db.unit import first_times, publish_units, write_outbox
from tests.support.bus_helpers import Collector, connected_bus, prepare_schema, wait_until

SCHEMA = "svc_batches"


def delivery(bus: Any, nonce: str, consumer: str = "tester") -> Delivery:
    return Delivery(
        envelope=bus.envelope(PingService(nonce=nonce), id=f"msg-{nonce}"), headers={}, attempt=1, consumer=consumer
    )


async def test_a_batch_records_each_id_once_and_publishes_what_its_units_staged(nats_server, database):
    await prepare_schema(database, SCHEMA)
    engine = make_engine(database, SCHEMA)
    sessionmaker = make_sessionmaker(engine)
    bus = await connected_bus("tester", nats_server.url)
    seen = await Collector().start(nats_server.url, ServicePinged.TYPE)
    try:
        async with sessionmaker() as s, s.begin():
            assert await first_times(s, [delivery(bus, "a")]) == {("tester", "msg-a")}
        ds = [delivery(bus, "a"), delivery(bus, "b"), delivery(bus, "b"), delivery(bus, "a", consumer="other")]
        units: list[Unit] = []
        async with sessionmaker() as s, s.begin():
            # a is a redelivery for "tester"; b twice in one batch counts once; "other" never saw a
            assert await first_times(s, ds) == {("tester", "msg-b"), ("other", "msg-a")}
            assert await first_times(s, []) == set()
            emitted = Unit(session=s, bus=bus, delivery=ds[1])
            await emitted.emit(ServicePinged(nonce="b", service="tester"))  # its row written at once
            staged = Unit(session=s, bus=bus, delivery=ds[3])
            staged.stage(ServicePinged(nonce="a1", service="tester"))  # rows written together below
            staged.stage(ServicePinged(nonce="a2", service="tester"))
            await write_outbox(s, [emitted, staged])  # the row already written is kept
            units += [emitted, staged]
        await publish_units(bus, sessionmaker, units)
        await wait_until(lambda: len(seen.items) == 3)
        ids = [env["id"] for env, _ in seen.items]
        assert sorted(ids) == sorted(m[1].id for u in units for m in u.staged) and len(set(ids)) == 3
        nonces = [env["data"]["nonce"] for env, _ in seen.items]
        assert nonces.index("a1") < nonces.index("a2")  # one unit's messages in order
        async with sessionmaker() as s:
            unpublished = await s.scalar(
                sa.select(sa.func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
            )
        assert unpublished == 0
    finally:
        await seen.close()
        await bus.close()
        await engine.dispose()
