"""The one way a service reaches a Docker engine: :class:`DockerEngines`, keyed by server id.

For each engine it makes, on first use, one :class:`~berth_common.docker.api.EngineApi` that every caller
of the service shares (pinned to the engine's API version, its connections kept alive), and it opens raw
streams to the same endpoint for the callers that speak HTTP themselves (the builder's BuildKit session). The local
engine is given; another server's engine is added when its connection is set up (for a remote server,
the unix socket its SSH forwarder serves) or looked up on first use through ``resolve``. An engine that
does not answer raises :class:`DockerUnavailable`.

:meth:`DockerEngines.client` makes an aiodocker client of the same engine for tools and tests that speak
aiodocker (the ``docker`` extra); no service does, so no service loads aiohttp.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from berth_common.docker.api import EngineApi
from berth_common.docker.engine import LOCAL, DockerUnavailable, Engine

if TYPE_CHECKING:
    import aiodocker

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]
UNREACHABLE = 900  # aiodocker's status for "cannot connect to the engine"
Resolver = Callable[[str], Engine | None]


def unreachable(exc: BaseException) -> bool:
    """Whether an error means the engine did not answer: :class:`DockerUnavailable` or a connection's error;
    from an aiodocker client, its status 900 ("cannot connect") or aiohttp's connection error (looked at
    only when a caller loaded them)."""
    if isinstance(exc, DockerUnavailable | ConnectionError | FileNotFoundError):
        return True
    if "aiodocker" in sys.modules:
        from aiodocker.exceptions import DockerError

        if isinstance(exc, DockerError):
            return bool(exc.status == UNREACHABLE)
    if "aiohttp" in sys.modules:
        import aiohttp

        return isinstance(exc, aiohttp.ClientConnectionError)
    return False


class DockerEngines:
    """The engines of one service: their descriptions, one shared client each, and raw streams to them."""

    def __init__(self, local: Engine, resolve: Resolver | None = None) -> None:
        if local.server_id != LOCAL:
            raise ValueError(f"the local engine has the server id {LOCAL!r}, not {local.server_id!r}")
        self._engines: dict[str, Engine] = {LOCAL: local}
        self._resolve = resolve
        self._clients: dict[str, aiodocker.Docker] = {}
        self._apis: dict[str, EngineApi] = {}
        self._tls: dict[str, ssl.SSLContext | None] = {}

    def engine(self, server_id: str = LOCAL) -> Engine:
        """The description of a server's engine; DockerUnavailable for a server with none."""
        found = self._engines.get(server_id)
        if found is None and self._resolve is not None:
            found = self._resolve(server_id)
            if found is not None:
                if found.server_id != server_id:
                    raise ValueError(f"asked for the engine of {server_id!r}, resolved that of {found.server_id!r}")
                self._engines[server_id] = found
        if found is None:
            raise DockerUnavailable(f"no Docker engine is known for the server {server_id!r}")
        return found

    async def add(self, engine: Engine) -> None:
        """Know a server's engine; a new description of a known server closes the client made for the old one."""
        if engine.server_id == LOCAL:
            raise ValueError("the local engine is given when the factory is made, not added")
        if self._engines.get(engine.server_id) not in (None, engine):
            await self.close(engine.server_id)
        self._engines[engine.server_id] = engine

    def _ssl(self, server_id: str) -> ssl.SSLContext | None:
        if server_id not in self._tls:
            self._tls[server_id] = self.engine(server_id).where.ssl_context()
        return self._tls[server_id]

    def api(self, server_id: str = LOCAL) -> EngineApi:
        """The server's engine client, made on first use and shared from then on (it connects lazily)."""
        found = self._apis.get(server_id)
        if found is None:
            engine = self.engine(server_id)

            async def connect() -> Stream:
                return await self.open_stream(server_id)

            found = EngineApi(connect, api_version=engine.api_version, host_header=engine.where.host_header)
            self._apis[server_id] = found
        return found

    def client(self, server_id: str = LOCAL) -> aiodocker.Docker:
        """An aiodocker client of the server's engine (for tools and tests that speak aiodocker: the
        ``docker`` extra), made on first use and shared from then on (it connects lazily)."""
        docker = self._clients.get(server_id)
        if docker is None:
            import aiodocker

            engine = self.engine(server_id)
            docker = aiodocker.Docker(
                url=engine.where.url, api_version=engine.api_version, ssl_context=self._ssl(server_id)
            )
            self._clients[server_id] = docker
        return docker

    async def open_stream(self, server_id: str = LOCAL) -> Stream:
        """A new connection to the server's engine API, for a caller that speaks HTTP on it itself."""
        where = self.engine(server_id).where
        try:
            if where.unix_path is not None:
                return await asyncio.open_unix_connection(where.unix_path)
            tls = self._ssl(server_id)
            return await asyncio.open_connection(
                where.host, where.port, ssl=tls, server_hostname=where.host if tls else None
            )
        except OSError as exc:
            raise DockerUnavailable(f"cannot reach the Docker engine of {server_id!r}: {exc}") from exc

    async def version(self, server_id: str = LOCAL, timeout_s: float = 10.0) -> dict[str, Any]:
        """``GET /version`` of the server's engine (its version, API version, OS and architecture)."""
        try:
            answer: dict[str, Any] = await self.api(server_id).json("GET", "version", timeout=timeout_s)
        except TimeoutError as exc:
            raise DockerUnavailable(f"the Docker engine of {server_id!r} did not answer in {timeout_s:g} s") from exc
        except DockerUnavailable as exc:
            raise DockerUnavailable(f"the Docker engine of {server_id!r} did not answer: {exc}") from exc
        return answer

    async def close(self, server_id: str | None = None) -> None:
        """Close every client; or forget one server: its client is closed and its description dropped (the
        local engine's stays), so a server removed or reconnected is added or resolved afresh."""
        for sid in [server_id] if server_id is not None else list({*self._clients, *self._apis}):
            docker = self._clients.pop(sid, None)
            if docker is not None:
                await docker.close()
            api = self._apis.pop(sid, None)
            if api is not None:
                await api.close()
        if server_id is not None and server_id != LOCAL:
            self._engines.pop(server_id, None)
            self._tls.pop(server_id, None)
