"""Readings of an added server from its /proc files, read over its SSH connection (parsing lives in
domain.host): CPU, memory and load; its disks are not read yet."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from berth_metrics.domain.host import PROC_FILES, READ_PROC_FILES, CpuTimes, HostSample, host_sample, split_files

Run = Callable[[Sequence[str]], Awaitable[tuple[int, str, str]]]  # argv -> (exit status, stdout, stderr)


@dataclass
class RemoteHostReader:
    run: Run
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
        stat, meminfo, loadavg = (files[name] for name in PROC_FILES)
        sample, self._prev_cpu = host_sample(stat, meminfo, loadavg, self._prev_cpu)
        return sample
