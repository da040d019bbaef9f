"""The Docker Engine, read-only: running containers, one-shot stats, inspect, and the events stream.

The HTTP is :mod:`berth_metrics.adapters.engine_http` (API version pinned by the engine's description). The stats call asks for
``one-shot`` (API >= 1.41: the engine answers at once instead of waiting a second for a second reading;
the CPU delta is then taken against our previous sample).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from berth_common.docker import LOCAL, DockerEngines, DockerUnavailable
from berth_common.logging import get_logger
from berth_metrics.adapters.engine_http import EngineClient, EngineError
from berth_metrics.domain.lifecycle import EVENT_ACTIONS

__all__ = ["DockerSource", "EngineError", "follow_events"]
log = get_logger(__name__)


class DockerSource:
    """What the metrics service reads from one server's engine."""

    def __init__(self, engines: DockerEngines, timeout_s: float, max_idle: int = 32, server_id: str = LOCAL) -> None:
        self.client = EngineClient(engines, timeout_s, max_idle, server_id)

    async def close(self) -> None:
        await self.client.close()

    async def _json(self, path: str, params: dict[str, str] | None = None) -> Any:
        return await self.client.get_json(path, params)

    async def running(self) -> list[dict[str, Any]]:
        """``GET /containers/json``: id, names, labels, state of every running container."""
        result: list[dict[str, Any]] = await self._json("containers/json")
        return result

    async def not_running(self, label: str) -> list[dict[str, Any]]:
        """``GET /containers/json?all=true``: the containers labelled ``label`` (``key=value``) that are not
        running (created, exited or dead)."""
        filters = {"label": [label], "status": ["created", "exited", "dead"]}
        result: list[dict[str, Any]] = await self._json(
            "containers/json", {"all": "true", "filters": json.dumps(filters)}
        )
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
        async for line in self.client.stream_lines("events", params):
            if line.strip():
                yield json.loads(line)


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
        except (DockerUnavailable, EngineError, OSError, ValueError) as exc:
            log.warning("docker events stream failed, reconnecting", error=str(exc), retry_in=delay)
        except TimeoutError:
            log.warning("docker events stream timed out, reconnecting")
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass
        delay = min(delay * 2, max_backoff_s)
