"""Parsing of the Docker Engine's container stats and inspect documents, the way ``docker stats`` reads them.

CPU %: ``(cpu.total_usage - pre.total_usage) / (cpu.system_cpu_usage - pre.system_cpu_usage) * online_cpus
* 100``, where ``pre`` is the document's own ``precpu_stats`` when the engine filled it (a streamed or
two-frame sample) and otherwise the previous one-shot sample of the same container. Memory used: ``usage``
minus ``total_inactive_file`` (cgroup v1) or ``inactive_file`` (cgroup v2) when that is smaller than the
usage. Network: the sum over interfaces. Block I/O: the sum of the ``read`` / ``write`` entries of
``io_service_bytes_recursive``. Pure functions: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from berth_common import labels as label

Health = Literal["starting", "healthy", "unhealthy"]
HEALTH_CODES: dict[str, int] = {"healthy": 0, "starting": 1, "unhealthy": 2}  # larger is worse
_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)")
BERTH_LABELS = {label.APP: "app", label.SERVICE: "service", label.DEPLOYMENT: "deployment", label.TEAM: "team"}


@dataclass(frozen=True)
class CpuCounters:
    total_usage: int  # ns of CPU time used by the container
    system_usage: int  # ns of CPU time of the host (all CPUs)
    online_cpus: int

    @property
    def valid(self) -> bool:
        return self.system_usage > 0


@dataclass(frozen=True)
class ContainerStats:
    """One stats document, reduced to what Berth keeps."""

    container_id: str
    name: str
    read_at: datetime | None
    cpu: CpuCounters
    precpu: CpuCounters
    mem_used: int | None
    mem_limit: int | None
    net_rx: int | None
    net_tx: int | None
    blk_read: int | None
    blk_write: int | None
    pids: int | None


@dataclass(frozen=True)
class ContainerInfo:
    """What the inspect document adds to the stats: identity, labels, restarts and health."""

    container_id: str
    name: str
    image: str
    labels: dict[str, str]
    running: bool
    restart_count: int
    health: Health | None
    started_at: datetime | None
    restarting: bool = False  # its restart policy is bringing it back after it stopped on its own
    status: str = ""  # Docker's state: created, running, restarting, exited, dead, ...
    error: str = ""  # why the engine could not start it, when it could not

    @property
    def stalled(self) -> bool:
        """Not running and not stopped on purpose: never started, its last start failed, or dead. A
        container stopped by a person or by Berth is ``exited`` with no error."""
        return not self.running and (self.status in ("created", "dead") or bool(self.error))


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 with nanoseconds (``2026-11-22T02:04:16.005271359Z``); the zero time or garbage gives None."""
    if not isinstance(value, str) or value.startswith("0001-01-01"):
        return None
    match = _TIME.fullmatch(value)
    if match is None:
        return None
    fraction = (match.group(2) or "").ljust(6, "0")[:6]
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    return datetime.fromisoformat(f"{match.group(1)}.{fraction}{zone}")


def _cpu(block: Any) -> CpuCounters:
    block = block if isinstance(block, dict) else {}
    usage = block.get("cpu_usage") or {}
    online = _int(block.get("online_cpus")) or len(usage.get("percpu_usage") or []) or 0
    return CpuCounters(
        total_usage=_int(usage.get("total_usage")) or 0,
        system_usage=_int(block.get("system_cpu_usage")) or 0,
        online_cpus=online,
    )


def memory_used(memory: dict[str, Any]) -> int | None:
    """``docker stats``' memory usage: the cgroup's usage without the inactive page cache."""
    usage = _int(memory.get("usage"))
    if usage is None:
        return None
    stats = memory.get("stats") or {}
    v1 = _int(stats.get("total_inactive_file"))
    if v1 is not None and v1 < usage:
        return usage - v1
    v2 = _int(stats.get("inactive_file"))
    if v2 is not None and v2 < usage:
        return usage - v2
    return usage


def _network(networks: Any) -> tuple[int | None, int | None]:
    if not isinstance(networks, dict) or not networks:
        return None, None
    rx = sum(_int(n.get("rx_bytes")) or 0 for n in networks.values() if isinstance(n, dict))
    tx = sum(_int(n.get("tx_bytes")) or 0 for n in networks.values() if isinstance(n, dict))
    return rx, tx


def _block_io(blkio: Any) -> tuple[int, int]:
    entries = (blkio or {}).get("io_service_bytes_recursive") or [] if isinstance(blkio, dict) else []
    read = write = 0
    for entry in entries:
        op = str(entry.get("op", "")).lower()
        value = _int(entry.get("value")) or 0
        if op == "read":
            read += value
        elif op == "write":
            write += value
    return read, write


def parse_stats(doc: dict[str, Any]) -> ContainerStats:
    """Reduce one ``GET /containers/{id}/stats?stream=false`` document."""
    if not isinstance(doc, dict):
        raise ValueError(f"a stats document is an object, not {type(doc).__name__}")
    memory = doc.get("memory_stats") or {}
    rx, tx = _network(doc.get("networks"))
    blk_read, blk_write = _block_io(doc.get("blkio_stats"))
    return ContainerStats(
        container_id=str(doc.get("id", "")),
        name=str(doc.get("name", "")).lstrip("/"),
        read_at=parse_time(doc.get("read")),
        cpu=_cpu(doc.get("cpu_stats")),
        precpu=_cpu(doc.get("precpu_stats")),
        mem_used=memory_used(memory),
        mem_limit=_int(memory.get("limit")),
        net_rx=rx,
        net_tx=tx,
        blk_read=blk_read,
        blk_write=blk_write,
        pids=_int((doc.get("pids_stats") or {}).get("current")),
    )


def cpu_percent(cur: CpuCounters, pre: CpuCounters | None) -> float | None:
    """CPU % between two readings as ``docker stats`` computes it (100 = one full core); None without a pair."""
    if pre is None or not pre.valid or not cur.valid:
        return None
    cpu_delta = cur.total_usage - pre.total_usage
    system_delta = cur.system_usage - pre.system_usage
    if system_delta <= 0 or cpu_delta < 0:
        return None if system_delta <= 0 else 0.0
    return cpu_delta / system_delta * (cur.online_cpus or 1) * 100.0


def container_cpu_percent(stats: ContainerStats, previous: ContainerStats | None) -> float | None:
    """Prefer the engine's own pre-sample; a one-shot document has none, so use our previous sample."""
    if stats.precpu.valid:
        return cpu_percent(stats.cpu, stats.precpu)
    return cpu_percent(stats.cpu, previous.cpu if previous is not None else None)


def parse_inspect(doc: dict[str, Any]) -> ContainerInfo:
    """Reduce one ``GET /containers/{id}/json`` document."""
    if not isinstance(doc, dict):
        raise ValueError(f"an inspect document is an object, not {type(doc).__name__}")
    state = doc.get("State") or {}
    config = doc.get("Config") or {}
    health_status = (state.get("Health") or {}).get("Status")
    health: Health | None = health_status if health_status in HEALTH_CODES else None
    return ContainerInfo(
        container_id=str(doc.get("Id", "")),
        name=str(doc.get("Name", "")).lstrip("/"),
        image=str(config.get("Image", "")),
        labels={str(k): str(v) for k, v in (config.get("Labels") or {}).items()},
        running=bool(state.get("Running")),
        restart_count=_int(doc.get("RestartCount")) or 0,
        health=health,
        started_at=parse_time(state.get("StartedAt")),
        restarting=bool(state.get("Restarting")),
        status=str(state.get("Status") or ""),
        error=str(state.get("Error") or ""),
    )


def berth_labels(labels: dict[str, str]) -> dict[str, str]:
    """The ``berth.*`` labels Berth puts on what it runs, as ``app``/``service``/``deployment``/``team``."""
    return {short: labels[full] for full, short in BERTH_LABELS.items() if labels.get(full)}
