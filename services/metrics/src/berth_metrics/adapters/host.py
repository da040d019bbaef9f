"""Readings of the local server from /proc and ``os.statvfs`` (parsing lives in domain.host)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from berth_common.logging import get_logger
from berth_metrics.domain.host import (
    CpuTimes,
    Disk,
    HostSample,
    disk_usage,
    host_cpu_percent,
    parse_loadavg,
    parse_meminfo,
    parse_proc_stat,
    real_mounts,
)

log = get_logger(__name__)


@dataclass
class HostReader:
    proc_root: Path
    filesystems: tuple[str, ...]
    _prev_cpu: CpuTimes | None = field(default=None, init=False)

    def read(self) -> HostSample:
        """One reading: CPU % since the previous reading (None the first time), memory, load, disks."""
        cpu = parse_proc_stat((self.proc_root / "stat").read_text())
        pct = host_cpu_percent(cpu, self._prev_cpu)
        self._prev_cpu = cpu
        memory = parse_meminfo((self.proc_root / "meminfo").read_text())
        load1, load5, load15 = parse_loadavg((self.proc_root / "loadavg").read_text())
        return HostSample(
            cpu_pct=pct,
            mem_used=memory.used,
            mem_total=memory.total,
            load1=load1,
            load5=load5,
            load15=load15,
            disks=tuple(self._disks()),
        )

    async def sample(self) -> HostSample:
        """:meth:`read`, as every server reader is asked (a remote one reads over SSH)."""
        return self.read()

    def _disks(self) -> list[Disk]:
        disks = []
        for mount in real_mounts((self.proc_root / "mounts").read_text(), self.filesystems):
            try:
                st = os.statvfs(mount.path)
            except OSError as exc:  # unmounted meanwhile, or not visible from here
                log.debug("statvfs failed", path=mount.path, error=str(exc))
                continue
            disks.append(disk_usage(mount, st.f_frsize, st.f_blocks, st.f_bfree))
        return disks
