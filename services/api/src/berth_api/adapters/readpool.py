"""A few asyncpg connections for the single statements of the request path (the token check, a page).

The SQLAlchemy sessions cost about 1 ms of CPU per query here (a session, a pre-ping round trip, the
statement compiled and its rows turned into objects); one statement on a pooled asyncpg connection costs
0.04-0.09 ms. Each statement runs on its own (autocommit): nothing here needs a transaction.

Connections open on first use, and close after ``idle_s`` without use (an idle api keeps none). No reset
query when one is returned (a statement leaves no session state behind), and a statement that failed
because its connection broke (Postgres restarted, a network hiccup) is tried once more on a fresh one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

RETRIED = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, ConnectionError)


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy Postgres URL (any driver) as the libpq-style DSN asyncpg takes."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _no_reset(_: asyncpg.Connection) -> None:
    return None


class ReadPool:
    def __init__(self, url: str, schema: str, *, max_size: int = 4, idle_s: float = 60.0) -> None:
        self._dsn = asyncpg_dsn(url)
        self._schema = schema
        self._max_size = max_size
        self._idle_s = idle_s
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def _get(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=0,
                    max_size=self._max_size,
                    max_inactive_connection_lifetime=self._idle_s,
                    reset=_no_reset,
                    server_settings={"search_path": self._schema, "application_name": f"berth-{self._schema}-read"},
                )
            return self._pool

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        pool = await self._get()
        try:
            return await pool.fetchrow(query, *args)
        except RETRIED:
            return await pool.fetchrow(query, *args)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        pool = await self._get()
        try:
            rows: list[asyncpg.Record] = await pool.fetch(query, *args)
        except RETRIED:
            rows = await pool.fetch(query, *args)
        return rows

    async def execute(self, query: str, *args: Any) -> None:
        pool = await self._get()
        try:
            await pool.execute(query, *args)
        except RETRIED:
            await pool.execute(query, *args)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
