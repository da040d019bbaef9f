"""Readings of an added server from its /proc files, read over its SSH connection (parsing lives in
domain.host): CPU, memory, load, and the use of its real disks (``df`` on the mounts of real filesystems
that its /proc/mounts lists). A ``df`` that fails leaves the reading without disks, never without the rest."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from berth_common.logging import get_logger
from berth_metrics.domain.host import (
    PROC_FILES,
    READ_PROC_FILES,
    CpuTimes,
    Disk,
    HostSample,
    df_argv,
    host_sample,
    parse_df,
    real_mounts,
    split_files,
)
from berth_metrics.settings import REAL_FILESYSTEMS

log = get_logger(__name__)

Run = Callable[[Sequence[str]], Awaitable[tuple[int, str, str]]]  # argv -> (exit status, stdout, stderr)


@dataclass
class RemoteHostReader:
    run: Run
    filesystems: tuple[str, ...] = REAL_FILESYSTEMS
    _prev_cpu: CpuTimes | None = field(default=None, init=False)

    async def sample(self) -> HostSample:
        """One reading; OSError when the server could not be read (the SSH connection, the command)."""
        try:
            status, out, err = await self.run(READ_PROC_FILES)
        except OSError:
            raise
        except Exception as exc:  # the SSH client's own errors: the server was not read
            raise OSError(f"reading /proc over SSH failed: {exc}") from exc
        if status != 0:
            raise OSError(f"reading /proc over SSH failed ({status}): {err.strip()[:200]}")
        files = split_files(out)
        stat, meminfo, loadavg, mounts = (files[name] for name in PROC_FILES)
        disks = await self._disks(mounts)
        sample, self._prev_cpu = host_sample(stat, meminfo, loadavg, self._prev_cpu, disks)
        return sample

    async def _disks(self, mounts_text: str) -> tuple[Disk, ...]:
        mounts = real_mounts(mounts_text, self.filesystems)
        if not mounts:
            return ()
        try:
            status, out, err = await self.run(df_argv(mounts))
        except Exception as exc:
            log.debug("reading the server's disks failed", error=str(exc))
            return ()
        if status != 0 and not out:
            log.debug("reading the server's disks failed", status=status, error=err.strip()[:200])
            return ()
        return parse_df(out, mounts)
