"""Timer and stream entry points: the loops the service runs on its own, each failure logged and retried."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from berth_common.logging import get_logger

log = get_logger(__name__)


async def every(name: str, interval_s: float, tick: Callable[[], Awaitable[object]], stop: asyncio.Event) -> None:
    """Run ``tick`` at a fixed rate (a slow tick skips the ticks it overran, never piles them up)."""
    next_at = time.monotonic()
    while not stop.is_set():
        try:
            await tick()
        except Exception as exc:
            log.warning("periodic job failed", job=name, error=f"{type(exc).__name__}: {exc}")
        now = time.monotonic()
        next_at += interval_s
        while next_at <= now:
            next_at += interval_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), next_at - now)


def utcnow() -> datetime:
    return datetime.now(UTC)


async def forever(name: str, run: Callable[[], Awaitable[object]], stop: asyncio.Event) -> None:
    """Keep a long-running job running: restart it after an unexpected end."""
    while not stop.is_set():
        try:
            await run()
        except Exception as exc:
            log.warning("job stopped, restarting", job=name, error=f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
