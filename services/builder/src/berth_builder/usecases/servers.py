"""Build servers: the engine a build runs on, and the server directory that says how to reach it.

Carries out ``evt.server.changed``: the builder keeps its own copy of the team's servers
(``berth_common.fleet``, table ``servers``), so a build names its server by id and never reads the api's
tables. A build on ``local`` runs on the control plane's engine; on another server it runs on that server's
engine through its SSH-forwarded Docker socket (``berth_common.docker.remote.connect_server``, one pooled
SSH connection per server), reached exactly as the local one. A server the directory does not know, has
removed or that has no pinned host key cannot build (:class:`BuildServerUnusable`); one that does not
answer over SSH neither, with the reason the SSH client gave. asyncssh is loaded with the first remote
build: a builder that builds only locally does not carry it. The free space of a build server's data root
(:meth:`BuildServers.free`) is what a build's context is compared with before it starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from berth_builder.adapters import tables
from berth_builder.adapters.docker import DockerClient
from berth_common import fleet, sealing
from berth_common.catalogue import ServerChanged
from berth_common.db import Unit
from berth_common.docker import LOCAL, DockerEngines, data_root
from berth_common.logging import get_logger

if TYPE_CHECKING:
    from berth_common.ssh import SshPool, SshTarget

log = get_logger(__name__)


class BuildServerUnusable(Exception):
    """The build server cannot be used: unknown here, removed, not validated, or not reachable over SSH."""


@dataclass(eq=False)
class BuildServers:
    engines: DockerEngines
    sessionmaker: Any
    timeout_s: float = 10.0
    local: DockerClient = field(init=False)
    _pool: SshPool | None = field(default=None, init=False)
    _clients: dict[str, DockerClient] = field(default_factory=dict, init=False)
    _revisions: dict[str, int] = field(default_factory=dict, init=False)
    _targets: dict[str, SshTarget] = field(default_factory=dict, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    def __post_init__(self) -> None:
        self.local = DockerClient(self.engines)

    @property
    def pool(self) -> SshPool:
        if self._pool is None:
            from berth_common.ssh import SshPool

            self._pool = SshPool(timeout=self.timeout_s)
        return self._pool

    async def changed(self, msg: ServerChanged, unit: Unit) -> None:
        """Keep the directory: the latest revision of each server. A connection made with an older key or
        address is dropped; the next build on the server connects with the new one."""
        if await fleet.record_change(unit.session, tables.servers, msg):
            await self.lost(msg.server_id)
            log.info("server directory updated", server_id=msg.server_id, state=msg.state, revision=msg.revision)

    def _forget(self, server_id: str) -> None:
        self._clients.pop(server_id, None)
        self._revisions.pop(server_id, None)
        self._targets.pop(server_id, None)
        if self._pool is not None:
            self._pool.forget(server_id)

    async def docker(self, server_id: str) -> DockerClient:
        """The client of ``server_id``'s engine (connected over SSH on first use, or again after the
        directory changed); raises :class:`BuildServerUnusable` with a reason a person can act on."""
        if server_id == LOCAL:
            return self.local
        async with self.sessionmaker() as s:
            record = await fleet.server_of(s, tables.servers, server_id)
        if record is None:
            raise BuildServerUnusable(
                f"the build server {server_id!r} is not known to the builder (add it with POST /v1/servers, "
                "or build on 'local')"
            )
        async with self._lock:
            known = self._clients.get(server_id)
            if known is not None and self._revisions.get(server_id) == record.revision:
                return known
            try:
                target = fleet.target_of(record)
            except fleet.ServerNotUsable as exc:
                raise BuildServerUnusable(f"the build server cannot be used: {exc}") from None
            except sealing.SealingError as exc:
                raise BuildServerUnusable(f"the key of build server {record.name} does not open: {exc}") from None
            from berth_common import ssh
            from berth_common.docker.remote import connect_server

            self.pool.forget(server_id)
            try:
                await connect_server(self.engines, self.pool, server_id, target)
            except ssh.SshError as exc:
                raise BuildServerUnusable(
                    f"the build server {record.name} ({record.user}@{record.host}:{record.port}) could not be "
                    f"reached over SSH: {exc}"
                ) from None
            client = DockerClient(self.engines, server_id)
            self._clients[server_id] = client
            self._revisions[server_id] = record.revision
            self._targets[server_id] = target
            return client

    async def free(self, server_id: str) -> int | None:
        """The free bytes of the build server's Docker data root (``berth_common.docker.data_root``: ``df``
        over SSH on a remote server, through the engine on the control plane's), or None (best effort)."""
        try:
            client = await self.docker(server_id)
        except BuildServerUnusable:
            return None
        target = self._targets.get(server_id)
        if server_id == LOCAL or target is None:
            return await data_root.free_bytes(client.docker)
        pool = self.pool

        async def run(argv: Sequence[str]) -> tuple[int, str, str]:
            return await pool.run(server_id, target, argv, data_root.TIMEOUT_S)

        return await data_root.free_bytes(client.docker, run)

    async def lost(self, server_id: str) -> None:
        """The server changed, or its connection broke during a build: the next use connects afresh."""
        if server_id != LOCAL:
            self._forget(server_id)
            await self.engines.close(server_id)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
