"""The Docker Engine, read-only: running containers, one-shot stats, inspect, and the events stream.

aiodocker carries the HTTP (unix socket, API version pinned); the stats call uses its raw query so that
it can ask for ``one-shot`` (API >= 1.41: the engine answers at once instead of waiting a second for a
second reading; the CPU delta is then taken against our previous sample).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiodocker
import aiohttp

from berth_common.logging import get_logger
from berth_metrics.domain.lifecycle import EVENT_ACTIONS

log = get_logger(__name__)


class DockerUnavailableError(RuntimeError):
    """The engine did not answer (down, or the socket is missing)."""


class DockerSource:
    def __init__(self, url: str | None, api_version: str, timeout_s: float) -> None:
        self._url = url
        self._api_version = api_version
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._docker: aiodocker.Docker | None = None

    @property
    def docker(self) -> aiodocker.Docker:
        if self._docker is None:
            self._docker = aiodocker.Docker(url=self._url, api_version=self._api_version)
        return self._docker

    async def close(self) -> None:
        if self._docker is not None:
            await self._docker.close()
            self._docker = None

    async def _json(self, path: str, params: dict[str, str] | None = None) -> Any:
        try:
            return await self.docker._query_json(path, params=params, timeout=self._timeout)
        except aiodocker.DockerError as exc:
            if exc.status == 900:
                raise DockerUnavailableError(str(exc)) from exc
            raise

    async def running(self) -> list[dict[str, Any]]:
        """``GET /containers/json``: id, names, labels, state of every running container."""
        result: list[dict[str, Any]] = await self._json("containers/json")
        return result

    async def stats(self, container_id: str) -> dict[str, Any]:
        """One stats document without waiting for a second reading."""
        doc: dict[str, Any] = await self._json(
            f"containers/{container_id}/stats", {"stream": "false", "one-shot": "true"}
        )
        return doc

    async def inspect(self, container_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = await self._json(f"containers/{container_id}/json")
        return doc

    async def events(self, since_ns: int) -> AsyncIterator[dict[str, Any]]:
        """Container lifecycle events from ``since_ns`` (epoch nanoseconds: the engine replays what it still
        holds) on, until the stream drops. The caller reconnects from the last event it saw."""
        params = {
            "filters": json.dumps({"type": ["container"], "event": list(EVENT_ACTIONS)}),
            "since": f"{since_ns // 10**9}.{since_ns % 10**9:09d}",
        }
        try:
            async with self.docker._query("events", params=params, timeout=aiohttp.ClientTimeout()) as response:
                while True:
                    line = await response.content.readline()
                    if not line:
                        return
                    if line.strip():
                        yield json.loads(line)
        except aiodocker.DockerError as exc:
            if exc.status == 900:
                raise DockerUnavailableError(str(exc)) from exc
            raise


async def follow_events(
    source: DockerSource, stop: asyncio.Event, max_backoff_s: float
) -> AsyncIterator[dict[str, Any]]:
    """Events forever: reconnect when the stream drops, replaying from the last event seen so none is lost
    (and none is seen twice: the engine's ``since`` is inclusive, so repeats at that instant are skipped)."""
    since_ns = int(datetime.now(UTC).timestamp() * 1e9)
    last_nano = -1
    seen_at_last: set[tuple[str, str]] = set()
    delay = 0.2
    while not stop.is_set():
        try:
            async for doc in source.events(since_ns):
                nano = int(doc.get("timeNano") or 0)
                ident = (str(doc.get("id", "")), str(doc.get("Action", "")))
                if nano < last_nano or (nano == last_nano and ident in seen_at_last):
                    continue
                if nano > last_nano:
                    last_nano, seen_at_last = nano, set()
                seen_at_last.add(ident)
                since_ns = max(since_ns, nano)
                delay = 0.2
                yield doc
            log.warning("docker events stream ended, reconnecting")
        except (DockerUnavailableError, aiohttp.ClientError, aiodocker.DockerError, OSError) as exc:
            log.warning("docker events stream failed, reconnecting", error=str(exc), retry_in=delay)
        except TimeoutError:
            log.warning("docker events stream timed out, reconnecting")
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass
        delay = min(delay * 2, max_backoff_s)
