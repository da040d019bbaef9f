"""A command goes through the work queue to the scheduler, which records it and emits an event."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import nats

from berth_common.bus import Bus, subscriptions_confirmed
from berth_common.catalogue import PingService
from berth_common.db.provision import provision
from berth_common.runtime import serve
from berth_scheduler.bootstrap import spec
from berth_scheduler.settings import SchedulerSettings


async def test_ping_roundtrip(nats_server, database, unique):
    urls = await provision(database, "test-secret")
    settings = SchedulerSettings(nats_url=nats_server.url, database_url=urls["scheduler"], http_port=0)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(spec(settings), stop))

    nc = await nats.connect(nats_server.url)
    events: asyncio.Queue[dict] = asyncio.Queue()

    async def on_evt(msg):
        events.put_nowait(json.loads(msg.data))

    await nc.subscribe("evt.system.pinged", cb=on_evt)
    await subscriptions_confirmed(nc)
    api = Bus("api", nats_server.url)
    for _ in range(100):
        try:
            await api.connect()
            break
        except Exception:
            await asyncio.sleep(0.1)
    # the scheduler must be consuming before the command is published? No: the work queue keeps it.
    await api.publish(PingService(nonce=unique))
    evt = await asyncio.wait_for(events.get(), 20)
    assert evt["type"] == "evt.system.pinged"
    assert evt["data"] == {"nonce": unique, "service": "scheduler"}
    assert evt["source"] == "berth/scheduler"

    conn = await asyncpg.connect(urls["scheduler"].replace("+asyncpg", ""))
    assert await conn.fetchval("SELECT count FROM pings WHERE nonce = $1", unique) == 1
    await conn.close()
    stop.set()
    await asyncio.wait_for(task, 30)
    await api.close()
    await nc.close()
