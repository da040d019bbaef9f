"""Readings of an added server from its /proc files, read over its SSH connection (parsing lives in
domain.host): CPU, memory and load; its disks are not read yet."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from berth_metrics.domain.host import (
    READ_PROC_FILES,
    CpuTimes,
    HostSample,
    host_cpu_percent,
    parse_loadavg,
    parse_meminfo,
    parse_proc_stat,
    split_files,
)

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
        cpu = parse_proc_stat(files["/proc/stat"])
        pct = host_cpu_percent(cpu, self._prev_cpu)
        self._prev_cpu = cpu
        memory = parse_meminfo(files["/proc/meminfo"])
        load1, load5, load15 = parse_loadavg(files["/proc/loadavg"])
        return HostSample(
            cpu_pct=pct,
            mem_used=memory.used,
            mem_total=memory.total,
            load1=load1,
            load5=load5,
            load15=load15,
            disks=(),
        )
