"""Requests that keep flowing to a host through the proxy while a test changes what serves it (a deploy):
every answer that is not a 200 and every failed request is kept, with the bodies of the 200s."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx


@dataclass
class Load:
    errors: list[str] = field(default_factory=list)  # status codes and exception names, in order
    seen: set[str] = field(default_factory=set)  # the bodies the host answered 200 with


@asynccontextmanager
async def steady_load(
    proxy: httpx.AsyncClient, host: str, *, settle_s: float = 0.3, pause_s: float = 0.01
) -> AsyncIterator[Load]:
    """``GET /`` on ``host`` every ``pause_s`` while the block runs, and ``settle_s`` after it."""
    load, stop = Load(), asyncio.Event()

    async def run() -> None:
        while not stop.is_set():
            try:
                got = await proxy.get("/", headers={"Host": host})
                if got.status_code != 200:
                    load.errors.append(str(got.status_code))
                else:
                    load.seen.add(got.text)
            except httpx.HTTPError as exc:
                load.errors.append(type(exc).__name__)
            await asyncio.sleep(pause_s)

    task = asyncio.create_task(run())
    try:
        yield load
        await asyncio.sleep(settle_s)
    finally:
        stop.set()
        await task
