"""The chaos suite's REST client: the admin token, riding out a killed API or database."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from benchmarks.support.platform import BerthUp

RETRY_S = 120.0


class Ambiguous(Exception):
    """The request was sent but its answer was lost: it may or may not have been carried out."""


class Client:
    """The REST API with the admin token, riding out a killed API or database: a request that could not be
    sent, or that was answered 5xx, is sent again (until ``RETRY_S``); a GET or PATCH also when its answer
    was lost."""

    def __init__(self, platform: BerthUp) -> None:
        self.http = httpx.AsyncClient(
            base_url=platform.api_url,
            headers={"Authorization": f"Bearer {platform.token}"},
            trust_env=False,
            timeout=30,
        )
        self.retries = 0

    async def call(self, method: str, url: str, expect: int, body: Any = None) -> Any:
        deadline = time.monotonic() + RETRY_S
        while True:
            try:
                resp = await self.http.request(method, url, json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                why = f"{type(exc).__name__}"
            except httpx.TransportError as exc:
                if method not in ("GET", "PATCH"):  # the PATCHes here set values: sending one twice is harmless
                    raise Ambiguous(f"{method} {url}: {type(exc).__name__}") from exc
                why = f"{type(exc).__name__}"
            else:
                if resp.status_code == expect:
                    return resp.json()
                if resp.status_code < 500 and resp.status_code != 429:
                    raise RuntimeError(f"{method} {url}: HTTP {resp.status_code}: {resp.text[:500]}")
                why = f"HTTP {resp.status_code}"
            if time.monotonic() > deadline:
                raise RuntimeError(f"{method} {url}: no answer within {RETRY_S}s ({why})")
            self.retries += 1
            await asyncio.sleep(0.5)

    async def close(self) -> None:
        await self.http.aclose()
