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

    async def fetchval(self, query: str, *args: Any) -> Any:
        pool = await self._get()
        try:
            return await pool.fetchval(query, *args)
        except RETRIED:
            return await pool.fetchval(query, *args)

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


class BatchedLookup:
    """Rows by key, the lookups made while others wait answered by one statement (``= ANY($1)``).

    A lookup joins the next statement to be sent, never one already sent: its row is read after it was asked,
    as fresh as with a statement of its own (a revoked token is refused by the next request, whichever
    process it reaches). At most ``max_inflight`` statements run at once; lookups arriving meanwhile go in
    the next one, sent as soon as one returns, first come first served. (asyncpg's pool hands a freed
    connection to whoever asks first, not to who waited longest: with more requests than connections, some
    waited 20-40 ms while others passed.) ``query`` takes ``$1`` (text[]) and returns the key as ``key``.
    """

    def __init__(self, pool: ReadPool, query: str, *, max_inflight: int = 2, max_keys: int = 256) -> None:
        self.pool = pool
        self.query = query
        self.max_inflight = max_inflight
        self.max_keys = max_keys
        self.inflight = 0
        self.statements = 0  # sent so far (for the benchmark: lookups per statement)
        self._pending: dict[str, list[asyncio.Future[asyncpg.Record | None]]] = {}
        self._scheduled = False
        self._running: set[asyncio.Task[None]] = set()

    async def get(self, key: str) -> asyncpg.Record | None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[asyncpg.Record | None] = loop.create_future()
        self._pending.setdefault(key, []).append(future)
        if not self._scheduled and self.inflight < self.max_inflight:
            self._scheduled = True
            loop.call_soon(self._flush)  # lookups asked in this turn of the loop go in the same statement
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        while self._pending and self.inflight < self.max_inflight:
            keys = list(self._pending)[: self.max_keys]
            batch = {k: self._pending.pop(k) for k in keys}
            self.inflight += 1
            self.statements += 1
            task = asyncio.ensure_future(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: dict[str, list[asyncio.Future[asyncpg.Record | None]]]) -> None:
        try:
            rows = await self.pool.fetch(self.query, list(batch))
        except Exception as exc:
            for futures in batch.values():
                for f in futures:
                    if not f.done():
                        f.set_exception(exc)
        except BaseException:  # cancelled (the process stops): so are its lookups
            for futures in batch.values():
                for f in futures:
                    f.cancel()
            raise
        else:
            found = {row["key"]: row for row in rows}
            for key, futures in batch.items():
                for f in futures:
                    if not f.done():
                        f.set_result(found.get(key))
        finally:
            self.inflight -= 1
            if self._pending:
                self._flush()
