"""The metrics service's reads of a Docker engine: GET requests with JSON answers and one streamed answer
(the events stream), through Berth's own Engine API client (:class:`~berth_common.docker.EngineApi`, on
asyncio streams: no aiohttp in a process that reads the engine every few seconds for its whole life).

Connections are kept alive and reused; a reused connection the engine closed meanwhile is retried once on a
new one (every request here is a GET). Where the engine is, and the connections to it, come from
:class:`~berth_common.docker.DockerEngines`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from berth_common.docker import LOCAL, DockerEngines, EngineApi, EngineError

__all__ = ["EngineClient", "EngineError"]


class EngineClient:
    """GET requests to one server's engine over kept-alive connections, each within ``timeout_s``."""

    def __init__(self, engines: DockerEngines, timeout_s: float, max_idle: int = 32, server_id: str = LOCAL) -> None:
        self.server_id = server_id
        engine = engines.engine(server_id)

        async def connect() -> Any:
            return await engines.open_stream(server_id)

        self.api = EngineApi(
            connect,
            api_version=engine.api_version,
            host_header=engine.where.host_header,
            timeout_s=timeout_s,
            max_idle=max_idle,
            user_agent="berth-metrics",
        )
        self.timeout_s = timeout_s

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> bytes:
        """The body of a 2xx answer; an error status raises :class:`EngineError`."""
        _, body = await self.api.request("GET", path, params=params)
        return body

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return await self.api.json("GET", path, params=params)

    async def stream_lines(self, path: str, params: Mapping[str, str] | None = None) -> AsyncIterator[bytes]:
        """The lines of a streamed answer (the events stream) until the engine ends it."""
        async with self.api.stream("GET", path, params=params, timeout=self.timeout_s) as response:
            async for line in response.lines():
                yield line

    async def close(self) -> None:
        await self.api.close()
