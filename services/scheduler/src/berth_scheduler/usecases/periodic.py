"""A chore run every so often in the background (a sweep of what an interrupted run left behind), until
stopped: a failed pass is logged and the next one comes at its time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from berth_common.logging import get_logger

log = get_logger(__name__)


@dataclass
class Periodic:
    what: str  # named in the log when a pass fails
    chore: Callable[[], Awaitable[object]]
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    def start(self, interval_s: float) -> None:
        async def loop() -> None:
            while True:
                try:
                    await self.chore()
                except Exception as exc:
                    log.warning(f"{self.what} failed", error=str(exc))
                await asyncio.sleep(interval_s)

        self._task = asyncio.create_task(loop(), name=self.what)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
