"""Every server's engine: the server directory kept from ``evt.server.changed`` (``berth_common.fleet``),
and each added server read like the local one.

Carries out ``evt.server.changed``. Each collection, every usable added server's Docker engine is read
through the Docker connection factory (its socket forwarded over SSH, one pooled connection per server)
and its /proc over the same connection; every reading records the server's id. Its engine's events
are watched like the local one's (``watch``: ``evt.container.*`` naming the server). Whether each engine
answered goes to reachability, so ``evt.server.unreachable`` and ``evt.server.back`` are sent per server,
to the teams with containers there and the server's owner. A server that did not answer is connected
again at the next collection (a dropped SSH connection is made anew).

The SSH client (asyncssh) is loaded with the first added server: a platform with none does not carry it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_common import fleet
from berth_common.catalogue import ServerChanged
from berth_common.db import Unit
from berth_common.docker import DockerEngines, DockerUnavailable
from berth_common.logging import get_logger
from berth_metrics.adapters import tables
from berth_metrics.adapters.docker import DockerSource
from berth_metrics.adapters.remote_host import RemoteHostReader
from berth_metrics.adapters.store import SampleStore
from berth_metrics.domain.readings import Snapshot
from berth_metrics.settings import REAL_FILESYSTEMS
from berth_metrics.usecases.collect import Collector
from berth_metrics.usecases.reachability import ReachabilityWatch

if TYPE_CHECKING:
    from berth_common.ssh import SshPool

log = get_logger(__name__)


@dataclass
class Remote:
    """One added server: its directory record and, once connected, its collector."""

    record: fleet.ServerRecord
    collector: Collector | None = None
    connected: bool = False
    watching: asyncio.Task[None] | None = None  # its engine's events


@dataclass
class Fleet:
    engines: DockerEngines
    sessionmaker: async_sessionmaker[AsyncSession]
    store: SampleStore
    reachability: ReachabilityWatch
    stats_timeout_s: float
    concurrency: int
    ssh_timeout_s: float = 10.0
    api_version: str = "v1.41"
    watch: Callable[[DockerSource, str], asyncio.Task[None]] | None = None  # (source, server name) -> watcher
    filesystems: tuple[str, ...] = REAL_FILESYSTEMS  # the filesystems whose disks are reported
    servers: dict[str, Remote] = field(default_factory=dict)
    _stale: bool = True  # the directory changed since it was last read
    _pool: SshPool | None = None

    @property
    def pool(self) -> SshPool:
        if self._pool is None:
            from berth_common.ssh import SshPool

            self._pool = SshPool(timeout=self.ssh_timeout_s)
        return self._pool

    async def changed(self, msg: ServerChanged, unit: Unit) -> bool:
        """Keep the directory (the latest revision of each server); True when it changed."""
        updated = await fleet.record_change(unit.session, tables.servers, msg)
        if updated:
            log.info("server directory updated", server_id=msg.server_id, state=msg.state, revision=msg.revision)
        return updated

    def reread(self, _msg: ServerChanged, _updated: bool | None) -> None:
        """After a change committed: the next collection reads the directory again (harmless twice)."""
        self._stale = True

    async def _refresh(self) -> None:
        if not self._stale:
            return
        self._stale = False  # a change committed while this reads sets it again
        try:
            async with self.sessionmaker() as session:
                records = {r.id: r for r in await fleet.servers_in(session, tables.servers)}
                removed = [r.id for r in await fleet.servers_in(session, tables.servers, states=("removed",))]
        except BaseException:
            self._stale = True  # read again at the next collection
            raise
        for sid in [s for s in self.servers if s not in records or records[s] != self.servers[s].record]:
            await self._drop(sid)
        for sid in removed:
            await self.reachability.forget(sid)
        for sid, record in records.items():
            if sid not in self.servers and record.usable:
                self.servers[sid] = Remote(record)

    async def _drop(self, server_id: str) -> None:
        """Forget a server's connection (removed, or changed: the next collection connects anew)."""
        remote = self.servers.pop(server_id)
        if remote.watching is not None:
            remote.watching.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await remote.watching
        if remote.collector is not None:
            await remote.collector.source.close()
        await self.engines.close(server_id)
        if self._pool is not None:
            self._pool.forget(server_id)

    async def _connect(self, remote: Remote) -> Collector:
        from berth_common.docker.remote import connect_server

        record = remote.record
        target = fleet.target_of(record)
        await connect_server(self.engines, self.pool, record.id, target, self.api_version)
        if remote.collector is None:
            remote.collector = Collector(
                source=DockerSource(self.engines, self.stats_timeout_s, self.concurrency, record.id),
                host=RemoteHostReader(
                    partial(self.pool.run, record.id, target, timeout=self.stats_timeout_s), self.filesystems
                ),
                store=self.store,
                server=record.name,
                concurrency=self.concurrency,
                server_id=record.id,
            )
            if self.watch is not None:
                remote.watching = self.watch(remote.collector.source, record.name)
        remote.connected = True
        return remote.collector

    async def _collect(self, remote: Remote, now: datetime) -> None:
        from berth_common.ssh import SshError

        record = remote.record
        try:
            collector = remote.collector if remote.connected else await self._connect(remote)
            assert collector is not None
            await collector.collect_once(now)
            answered, error = collector.engine_answered, collector.engine_error
        except (SshError, fleet.ServerNotUsable, DockerUnavailable, OSError, TimeoutError) as exc:
            answered, error = False, str(exc) or type(exc).__name__
            log.warning("server not read", server_id=record.id, error=error)
        if not answered:
            remote.connected = False  # the next collection connects again
        teams = set(remote.collector.teams()) if remote.collector is not None else set()
        teams.add(record.team_id)
        await self.reachability.observe(record.name, answered, now, tuple(sorted(teams)), error, server_id=record.id)

    async def collect_once(self, now: datetime) -> None:
        """Read every added server once, in parallel."""
        await self._refresh()
        if self.servers:
            await asyncio.gather(*(self._collect(r, now) for r in list(self.servers.values())))

    def snapshot(self) -> Snapshot:
        """The last readings of the added servers in one snapshot: their containers and stalled databases."""
        merged = Snapshot()
        for remote in self.servers.values():
            if remote.collector is not None:
                merged.containers.update(remote.collector.snapshot.containers)
                merged.stalled.update(remote.collector.snapshot.stalled)
        return merged

    async def close(self) -> None:
        for sid in list(self.servers):
            await self._drop(sid)
        if self._pool is not None:
            await self._pool.close()
