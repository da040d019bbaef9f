"""Readings of the local server from /proc and ``os.statvfs`` (parsing lives in domain.host)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from berth_common.logging import get_logger
from berth_metrics.domain.host import CpuTimes, Disk, HostSample, disk_usage, host_sample, real_mounts

log = get_logger(__name__)


@dataclass
class HostReader:
    proc_root: Path
    filesystems: tuple[str, ...]
    _prev_cpu: CpuTimes | None = field(default=None, init=False)

    def read(self) -> HostSample:
        """One reading: CPU % since the previous reading (None the first time), memory, load, disks."""
        stat, meminfo, loadavg = ((self.proc_root / name).read_text() for name in ("stat", "meminfo", "loadavg"))
        sample, self._prev_cpu = host_sample(stat, meminfo, loadavg, self._prev_cpu, tuple(self._disks()))
        return sample

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
