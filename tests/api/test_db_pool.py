"""The api keeps the database connections its concurrent writes use: opening one costs both sides a SCRAM key
derivation and Postgres a new backend (10-15 ms of CPU), which a pool of one open connection paid for every
request but one of each burst."""

from __future__ import annotations

import asyncio

from sqlalchemy import event
from sqlalchemy.pool import Pool

from tests.api.conftest import bearer, make_project


async def test_bursts_of_concurrent_writes_open_no_new_connection(api, client):
    admin = bearer(api.admin_token())

    async def burst(k: int, size: int) -> None:
        await asyncio.gather(*(make_project(client, admin, f"burst-{k}-{i}") for i in range(size)))

    await burst(0, 5)  # the pool opens what a burst needs, and keeps it
    opened: list[object] = []

    def on_connect(dbapi_connection: object, record: object) -> None:
        opened.append(dbapi_connection)

    event.listen(Pool, "connect", on_connect)  # every connection a SQLAlchemy pool of this process opens
    try:
        for k in range(1, 4):
            await burst(k, 3)
    finally:
        event.remove(Pool, "connect", on_connect)
    # 9 writes, 3 at a time: one open connection (the pool's former size) opened 2 more per burst; a background
    # task of the api (outbox, webhooks) that runs during a burst may still open one
    assert len(opened) <= 2, len(opened)
