"""The route batches of several servers at once (a deployment to many servers sends each its command
together) reuse proxy-sync's pooled database connections instead of opening new ones each time."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from berth_common.catalogue import ApplyRoutes
from tests.proxy.test_coalescing import all_answered

SERVERS = 6


@pytest.fixture
async def pg(proxy_settings) -> AsyncIterator[asyncpg.Connection]:
    url = proxy_settings.database_url.get_secret_value()
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    yield conn
    await conn.close()


async def _wave(routes, unique: str, generation: int) -> None:
    """One command for each of ``SERVERS`` servers, published back to back; every one answered."""
    assert routes.bus is not None
    keys = []
    for k in range(SERVERS):
        rid = f"w{k}-{unique}"
        msg = ApplyRoutes(
            route_id=rid,
            hosts=[f"{rid}.localhost"],
            upstreams=["http://127.0.0.1:9"],
            generation=generation,
            server_id=f"srv{k}-{unique}",  # not known: each batch is recorded and answered failed, nothing written
        )
        await routes.bus.publish(msg)
        keys.append((rid, generation))
    await all_answered(routes, keys)


async def test_concurrent_server_batches_open_no_new_connection_once_warm(proxy_sync, routes, pg, unique):
    for generation in (1, 2):  # warm: the pool grows to what the batches of the servers hold at once
        await _wave(routes, unique, generation)
    sessions = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
    before = await pg.fetchval(sessions)  # every connection ever opened to the test's database
    await _wave(routes, unique, 3)
    await pg.execute("SELECT pg_stat_clear_snapshot()")
    assert await pg.fetchval(sessions) - before == 0
