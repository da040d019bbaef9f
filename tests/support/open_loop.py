"""A steady open-loop load through a proxy: each request is sent on time whatever the earlier ones do, so a
gap in serving shows as failed requests instead of a pause."""

from __future__ import annotations

import asyncio
import time

import httpx


class OpenLoop:
    """``GET /`` on ``host`` through the proxy on ``port`` (of ``address``) at ``rate`` per second, on a keep-alive pool; every
    answer that is not a 200 (or not ``expect``, when given) is kept in ``errors``, the bodies served in
    ``seen``."""

    def __init__(
        self, port: int, host: str, rate: float, expect: str | None = None, *, address: str = "127.0.0.1"
    ) -> None:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
        self.client = httpx.AsyncClient(base_url=f"http://{address}:{port}", timeout=10, limits=limits)
        self.host, self.rate, self.expect = host, rate, expect
        self.sent = 0
        self.errors: list[str] = []
        self.seen: set[str] = set()
        self.stop = asyncio.Event()
        self.pending: set[asyncio.Task[None]] = set()

    async def one(self) -> None:
        try:
            got = await self.client.get("/", headers={"Host": self.host})
            if got.status_code == 200 and self.expect in (None, got.text):
                self.seen.add(got.text)
            else:
                self.errors.append(f"{got.status_code} {got.text[:60]}")
        except httpx.HTTPError as exc:
            self.errors.append(type(exc).__name__)

    async def run(self) -> None:
        start = time.monotonic()
        while not self.stop.is_set():
            task = asyncio.create_task(self.one())
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)
            self.sent += 1
            await asyncio.sleep(max(0.0, start + self.sent / self.rate - time.monotonic()))
        if self.pending:
            await asyncio.wait(set(self.pending))
        await self.client.aclose()
