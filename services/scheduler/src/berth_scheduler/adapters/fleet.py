"""The servers rollouts run on: one Docker executor and one readiness checker per server.

``local`` is the control plane's own engine. Another server is looked up in the scheduler's directory
(``tables.servers``, kept from ``evt.server.changed``), connected through the service's one SSH pool, and
its forwarded Docker socket added to the connection factory (``berth_common.docker.remote``), so the same
executor code runs on it. A server that does not answer is :class:`DockerUnavailable` (a rollout step
retries it until its deadline), at once when the server watcher reported it unreachable and not back yet
(``domain/server_state.py``: no SSH timeout waited for); one that may not be used (unknown, removed, not validated, its host key
changed, the key refused) is :class:`ServerRefusedError`, which fails the deployment with the reason.

asyncssh is loaded only when a remote server is first used (``berth_common.ssh`` is imported lazily).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_common import fleet
from berth_common.docker import LOCAL, DockerUnavailable
from berth_scheduler.adapters import servers_down, tables
from berth_scheduler.adapters.docker import DockerExecutor
from berth_scheduler.adapters.readiness import ReadinessChecker
from berth_scheduler.adapters.remote_readiness import RemoteReadiness
from berth_scheduler.domain.server_state import refusal

if TYPE_CHECKING:
    from berth_common.ssh import SshPool, SshTarget


class ServerRefusedError(RuntimeError):
    """A server a deployment names may not be used; the message says why, for a person."""


class Fleet:
    def __init__(
        self,
        local: DockerExecutor,
        readiness: ReadinessChecker,
        sessionmaker: async_sessionmaker[AsyncSession],
        pool: Callable[[], SshPool],
    ) -> None:
        self.local = local
        self.local_readiness = readiness
        self.sessionmaker = sessionmaker
        self._pool = pool
        self._executors: dict[str, DockerExecutor] = {LOCAL: local}
        self._checkers: dict[str, ReadinessChecker] = {LOCAL: readiness}
        self._targets: dict[str, SshTarget] = {}

    @property
    def engines(self) -> Any:
        return self.local.engines

    def pool(self) -> SshPool:
        """The service's SSH pool (one connection per server), made on first use."""
        return self._pool()

    async def _target(self, server_id: str) -> SshTarget:
        async with self.sessionmaker() as s:
            record = await fleet.server_of(s, tables.servers, server_id)
        if record is None:
            raise ServerRefusedError(f"server {server_id} is not known to the scheduler (not announced yet?)")
        try:
            target = fleet.target_of(record)
        except fleet.ServerNotUsable as exc:
            raise ServerRefusedError(str(exc)) from None
        self._targets[server_id] = target
        return target

    async def target(self, server_id: str) -> SshTarget:
        """Where and as whom to reach the server over SSH, read again (its key opened): what the backup
        worker connects with to write or read a directory there."""
        return await self._target(server_id)

    async def socket(self, server_id: str) -> str:
        """The local path of the server's Docker socket (forwarded over SSH for a remote server)."""
        if server_id == LOCAL:
            path = self.engines.engine(LOCAL).where.unix_path
            if path is None:
                raise ServerRefusedError("the control plane's Docker engine is not on a unix socket")
            return str(path)
        await self.docker(server_id)
        return str(self.engines.engine(server_id).where.unix_path)

    async def docker(self, server_id: str) -> DockerExecutor:
        """The server's executor, its SSH connection and forwarded socket made (again) if needed."""
        if server_id == LOCAL:
            return self.local
        from berth_common.docker.remote import connect_server
        from berth_common.ssh import ServerUnreachable, SshError

        async with self.sessionmaker() as s:
            refused = refusal(await servers_down.get(s, server_id))
        if refused is not None:  # known to be down: not waited for (``domain/server_state.py``)
            raise DockerUnavailable(refused)
        target = await self._target(server_id)
        try:
            await connect_server(self.engines, self._pool(), server_id, target)
        except ServerUnreachable as exc:
            raise DockerUnavailable(f"server {server_id} is unreachable: {exc}") from None
        except SshError as exc:
            if exc.kind in ("unreachable", "ssh"):
                raise DockerUnavailable(f"server {server_id}: {exc}") from None
            raise ServerRefusedError(f"server {server_id}: {exc}") from None
        except OSError as exc:
            raise DockerUnavailable(f"server {server_id} is unreachable: {exc}") from None
        executor = self._executors.get(server_id)
        if executor is None:
            executor = self._executors[server_id] = DockerExecutor(self.engines, server_id)
        return executor

    async def readiness(self, server_id: str) -> ReadinessChecker:
        """The server's readiness checker (a remote one probes through the server's SSH connection)."""
        if server_id == LOCAL:
            return self.local_readiness
        docker = await self.docker(server_id)
        checker = self._checkers.get(server_id)
        if checker is None:

            async def connection() -> Any:
                return await self.connection(server_id)

            checker = RemoteReadiness(docker, connection, self.local_readiness.config)
            self._checkers[server_id] = checker
        return checker

    async def connection(self, server_id: str) -> Any:
        """The server's SSH connection (made again if it dropped): readiness probes, backup directories."""
        target = self._targets.get(server_id) or await self._target(server_id)
        return await self._pool().connection(server_id, target)

    async def close(self) -> None:
        for sid, checker in self._checkers.items():
            if sid != LOCAL:
                await checker.close()
