"""Collection: every interval, one reading of each running container (stats + inspect, concurrently with a
bound) and of the server, written to the store and kept as the latest snapshot, with the database
containers that stalled (not running, not stopped on purpose: ``ContainerInfo.stalled``), which the
"database down" alert counts as down. One collector reads one server's engine (``server_id``; ``local``:
the control plane's), and every reading records that server."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from berth_common.docker import LOCAL
from berth_common.docker import DockerUnavailable as DockerUnavailableError
from berth_common.logging import get_logger
from berth_common.records import record_of
from berth_metrics.adapters.docker import DockerSource, EngineError
from berth_metrics.adapters.host import HostReader
from berth_metrics.adapters.prom import COLLECT_ERRORS, COLLECT_SECONDS
from berth_metrics.adapters.remote_host import RemoteHostReader
from berth_metrics.adapters.store import SampleRow, SampleStore, SeriesRef
from berth_metrics.domain.database_down import DATABASE_LABEL
from berth_metrics.domain.host import HostSample
from berth_metrics.domain.readings import ContainerReading, ServerReading, Snapshot, StalledContainer
from berth_metrics.domain.stats import (
    ContainerInfo,
    ContainerStats,
    berth_labels,
    container_cpu_percent,
    parse_inspect,
    parse_stats,
)

log = get_logger(__name__)


@dataclass
class Collector:
    source: DockerSource
    host: HostReader | RemoteHostReader | None  # None: the server itself is not read
    store: SampleStore
    server: str  # the server's name
    concurrency: int = 8
    server_id: str = LOCAL
    snapshot: Snapshot = field(default_factory=Snapshot)
    engine_answered: bool = True  # whether the engine answered the last collection's listing
    engine_error: str = ""
    _previous: dict[str, ContainerStats] = field(default_factory=dict)
    _lost: str = ""  # set when a container reading found the engine gone

    async def _read(self, entry: dict[str, Any], sem: asyncio.Semaphore, now: datetime) -> ContainerReading | None:
        cid = str(entry.get("Id", ""))
        async with sem:
            try:
                stats = parse_stats(await self.source.stats(cid))
                info = parse_inspect(await self.source.inspect(cid))
            except DockerUnavailableError as exc:  # the engine went away after the listing
                self._lost = str(exc) or type(exc).__name__
                return None
            except EngineError as exc:
                if getattr(exc, "status", None) != 404:  # 404: it went away between the listing and the reading
                    COLLECT_ERRORS.labels("container").inc()
                    log.warning("container reading failed", container=cid[:12], error=str(exc))
                return None
            except TimeoutError:
                COLLECT_ERRORS.labels("container").inc()
                log.warning("container reading timed out", container=cid[:12])
                return None
            except (ValueError, TypeError, AttributeError) as exc:  # an answer that is not a document
                COLLECT_ERRORS.labels("container").inc()
                log.warning("container reading unreadable", container=cid[:12], error=repr(exc))
                return None
        cpu = container_cpu_percent(stats, self._previous.get(cid))
        self._previous[cid] = stats
        return reading(info, stats, cpu, now)

    async def collect_once(self, now: datetime | None = None) -> Snapshot:
        """Read everything once, store it, and make it the latest snapshot.

        When the engine does not answer, the server is still read and stored; the containers' last
        readings stand (not stored again), so an engine restart neither raises nor resolves their alerts.
        """
        started = time.perf_counter()
        now = now or datetime.now(UTC)
        try:
            listing: list[dict[str, Any]] | None = await self.source.running()
        except (DockerUnavailableError, EngineError, OSError, TimeoutError, ValueError) as exc:
            COLLECT_ERRORS.labels("engine").inc()
            log.warning("docker engine not answering", error=str(exc))
            listing = None
            self.engine_error = str(exc) or type(exc).__name__
        if listing is not None:
            sem = asyncio.Semaphore(self.concurrency)
            self._lost = ""
            results = await asyncio.gather(*(self._read(e, sem, now) for e in listing))
            if self._lost:  # gone between the listing and the readings: as if it had not answered at all
                COLLECT_ERRORS.labels("engine").inc()
                log.warning("docker engine not answering", error=self._lost)
                listing, self.engine_error = None, self._lost
        self.engine_answered = listing is not None
        stalled = self.snapshot.stalled
        if listing is not None:
            containers = {r.container_id: r for r in results if r is not None}
            for gone in set(self._previous) - {str(e.get("Id", "")) for e in listing}:
                del self._previous[gone]
            stalled = await self._stalled(stalled)
        else:
            containers = self.snapshot.containers
        server: ServerReading | None = None
        try:
            if self.host is not None:
                server = server_reading(self.server, await self.host.sample(), now)
        except (OSError, ValueError) as exc:
            COLLECT_ERRORS.labels("server").inc()
            log.warning("server reading failed", error=str(exc))
        self.snapshot = Snapshot(containers=containers, server=server, stalled=stalled)
        stored = self.snapshot if listing is not None else Snapshot(server=server)
        await self.store.write(rows(stored, self.server, now, self.server_id))
        COLLECT_SECONDS.observe(time.perf_counter() - started)
        return self.snapshot

    async def _stalled(self, before: dict[str, StalledContainer]) -> dict[str, StalledContainer]:
        """The database containers that stalled; ``before`` stands when the engine does not answer."""
        try:
            listing = await self.source.not_running(DATABASE_LABEL)
            infos = [parse_inspect(await self.source.inspect(str(e.get("Id", "")))) for e in listing]
        except EngineError as exc:
            if getattr(exc, "status", None) == 404:  # one went away between the listing and the reading
                return before
            COLLECT_ERRORS.labels("container").inc()
            log.warning("stalled containers unreadable", error=str(exc))
            return before
        except (DockerUnavailableError, OSError, TimeoutError, ValueError, TypeError, AttributeError) as exc:
            COLLECT_ERRORS.labels("container").inc()
            log.warning("stalled containers unreadable", error=str(exc) or type(exc).__name__)
            return before
        return {
            i.container_id: StalledContainer(i.container_id, i.name, berth_labels(i.labels), i.error or i.status)
            for i in infos
            if i.stalled
        }

    def teams(self) -> tuple[str, ...]:
        """Teams with containers in the last reading (``berth.team``): who a server outage concerns."""
        return tuple(sorted({t for r in self.snapshot.containers.values() if (t := r.labels.get("team"))}))


def reading(info: ContainerInfo, stats: ContainerStats, cpu: float | None, now: datetime) -> ContainerReading:
    """The container's reading: the memory, network and block counters as the stats give them."""
    return record_of(
        ContainerReading,
        stats,
        container_id=info.container_id or stats.container_id,
        name=info.name or stats.name,
        image=info.image,
        labels=berth_labels(info.labels),
        at=now,
        cpu_pct=cpu,
        restarts=info.restart_count,
        health=info.health,
        restarting=info.restarting,
    )


def server_reading(server: str, sample: HostSample, now: datetime) -> ServerReading:
    return record_of(ServerReading, sample, server=server, at=now)


def rows(snapshot: Snapshot, server: str, now: datetime, server_id: str = LOCAL) -> list[SampleRow]:
    """The rows one snapshot stores: one per container, one for the server, one per mount. The local server's
    series is keyed by its name, an added server's by its id (names are unique within a team only)."""
    out = []
    key = server if server_id == LOCAL else server_id
    for r in snapshot.containers.values():
        labels = tuple(sorted(r.labels.items()))
        ref = SeriesRef(r.container_id, "container", r.name, server, labels, server_id)
        values: dict[str, float | int | None] = {
            "cpu_pct": r.cpu_pct,
            "mem_used": r.mem_used,
            "mem_limit": r.mem_limit,
            "net_rx": r.net_rx,
            "net_tx": r.net_tx,
            "blk_read": r.blk_read,
            "blk_write": r.blk_write,
            "restarts": r.restarts,
            "health": r.health_code,
        }
        out.append(SampleRow(ref, now, values))
    s = snapshot.server
    if s is not None:
        host_values: dict[str, float | int | None] = {
            "cpu_pct": s.cpu_pct,
            "mem_used": s.mem_used,
            "mem_limit": s.mem_total,
            "load1": s.load1,
            "load5": s.load5,
            "load15": s.load15,
        }
        out.append(SampleRow(SeriesRef(key, "server", server, server, (), server_id), now, host_values))
        for d in s.disks:
            ref = SeriesRef(f"{key}:{d.path}", "mount", d.path, server, (), server_id)
            out.append(SampleRow(ref, now, {"disk_used": d.used, "disk_total": d.total}))
    return out
