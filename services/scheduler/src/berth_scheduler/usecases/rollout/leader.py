"""One scheduler drives rollouts at a time: a Postgres advisory lock held on a dedicated connection.

Every instance records bus inputs; only the one holding the lock runs rollout tasks. It sweeps for
unfinished deployments every few seconds (inputs handled by another instance wake nobody here), and
when its connection breaks it stops its tasks at once: another instance takes over from the
persisted state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from berth_common.logging import get_logger
from berth_common.tasks import cancel_and_wait

log = get_logger(__name__)
LOCK_KEY = "berth-scheduler-rollouts"


class Leadership:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        elected: Callable[[], Awaitable[None]],
        deposed: Callable[[], Awaitable[None]],
        tick: Callable[[], Awaitable[object]],
        interval_s: float = 2.0,
    ) -> None:
        self.engine = engine
        self.elected = elected
        self.deposed = deposed
        self.tick = tick
        self.interval_s = interval_s
        self.leading = False
        self._conn: AsyncConnection | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="scheduler-leadership")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)  # also when a wait_for in the loop swallowed the cancel (3.11)
        await self._release()

    async def _release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()  # closing the session releases the lock
            self._conn = None

    async def _try_acquire(self) -> bool:
        conn = await self.engine.connect()
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        got = (await conn.execute(text("SELECT pg_try_advisory_lock(hashtext(:k))"), {"k": LOCK_KEY})).scalar()
        if got:
            self._conn = conn
            return True
        await conn.close()
        return False

    async def _alive(self) -> bool:
        assert self._conn is not None
        try:
            await asyncio.wait_for(self._conn.execute(text("SELECT 1")), 5)
        except Exception:
            return False
        return True

    async def _run(self) -> None:
        while True:
            try:
                if not self.leading:
                    if await self._try_acquire():
                        self.leading = True
                        log.info("this scheduler drives the rollouts")
                        await self.elected()
                    else:
                        await asyncio.sleep(self.interval_s)
                        continue
                await asyncio.sleep(self.interval_s)
                if not await self._alive():
                    raise ConnectionError("the leadership connection broke")
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("leadership lost or not reachable", error=str(exc))
                if self.leading:
                    self.leading = False
                    await self.deposed()
                await self._release()
                await asyncio.sleep(self.interval_s)
