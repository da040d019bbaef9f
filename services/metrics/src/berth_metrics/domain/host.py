"""Parsing of the host's /proc files: CPU, memory, load and the mounts that are real disks. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CpuTimes:
    """The aggregate ``cpu`` line of /proc/stat, in clock ticks."""

    busy: int
    total: int


@dataclass(frozen=True)
class Memory:
    total: int  # bytes
    available: int  # bytes

    @property
    def used(self) -> int:
        return max(self.total - self.available, 0)


@dataclass(frozen=True)
class Mount:
    device: str
    path: str
    fstype: str


@dataclass(frozen=True)
class Disk:
    path: str
    device: str
    fstype: str
    total: int  # bytes
    used: int  # bytes (total minus free, like df: reserved blocks count as used)

    @property
    def percent(self) -> float:
        return self.used / self.total * 100.0 if self.total else 0.0


@dataclass(frozen=True)
class HostSample:
    """One reading of the server."""

    cpu_pct: float | None
    mem_used: int
    mem_total: int
    load1: float
    load5: float
    load15: float
    disks: tuple[Disk, ...]


def parse_proc_stat(text: str) -> CpuTimes:
    """busy = user + nice + system + irq + softirq + steal; idle and iowait are not busy (guest is in user)."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [int(v) for v in fields[1:9]] + [0] * (8 - len(fields[1:9]))
            user, nice, system, idle, iowait, irq, softirq, steal = values
            busy = user + nice + system + irq + softirq + steal
            return CpuTimes(busy=busy, total=busy + idle + iowait)
    raise ValueError("no aggregate cpu line in /proc/stat")


def host_cpu_percent(cur: CpuTimes, prev: CpuTimes | None) -> float | None:
    """Share of all CPUs busy between two readings, 0-100."""
    if prev is None:
        return None
    total = cur.total - prev.total
    if total <= 0:
        return None
    return min(max((cur.busy - prev.busy) / total * 100.0, 0.0), 100.0)


def parse_meminfo(text: str) -> Memory:
    """``MemTotal`` and ``MemAvailable`` (kB in the file, bytes here)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key.strip()] = int(parts[0]) * (1024 if parts[1:2] == ["kB"] else 1)
    if "MemTotal" not in values:
        raise ValueError("no MemTotal in /proc/meminfo")
    available = values.get("MemAvailable")
    if available is None:  # kernels before 3.14
        available = values.get("MemFree", 0) + values.get("Buffers", 0) + values.get("Cached", 0)
    return Memory(total=values["MemTotal"], available=available)


def parse_loadavg(text: str) -> tuple[float, float, float]:
    one, five, fifteen = (float(v) for v in text.split()[:3])
    return one, five, fifteen


def _unescape(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash in paths as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def real_mounts(text: str, filesystems: tuple[str, ...] | frozenset[str]) -> list[Mount]:
    """Mounts of real filesystems, one per device (the first, usually the shortest path, wins)."""
    wanted = frozenset(filesystems)
    seen: set[str] = set()
    mounts: list[Mount] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3 or fields[2] not in wanted:
            continue
        device, path = _unescape(fields[0]), _unescape(fields[1])
        if device in seen:
            continue
        seen.add(device)
        mounts.append(Mount(device=device, path=path, fstype=fields[2]))
    return mounts


def disk_usage(mount: Mount, f_frsize: int, f_blocks: int, f_bfree: int) -> Disk:
    """From ``os.statvfs``: total = blocks, used = blocks - free (as df)."""
    total = f_blocks * f_frsize
    return Disk(path=mount.path, device=mount.device, fstype=mount.fstype, total=total, used=total - f_bfree * f_frsize)


def host_sample(
    stat: str, meminfo: str, loadavg: str, prev_cpu: CpuTimes | None, disks: tuple[Disk, ...] = ()
) -> tuple[HostSample, CpuTimes]:
    """One reading from the texts of /proc/stat, /proc/meminfo and /proc/loadavg (CPU % since ``prev_cpu``;
    None the first time), and the CPU times to compare the next reading with."""
    cpu = parse_proc_stat(stat)
    memory = parse_meminfo(meminfo)
    load1, load5, load15 = parse_loadavg(loadavg)
    sample = HostSample(
        cpu_pct=host_cpu_percent(cpu, prev_cpu),
        mem_used=memory.used,
        mem_total=memory.total,
        load1=load1,
        load5=load5,
        load15=load15,
        disks=disks,
    )
    return sample, cpu


PROC_FILES = ("/proc/stat", "/proc/meminfo", "/proc/loadavg", "/proc/mounts")
READ_PROC_FILES = ("grep", "-H", "", *PROC_FILES)  # every line of each file, prefixed with the file's name
"""The command that reads a remote server's /proc files in one round trip (argv; no shell)."""


def df_argv(mounts: list[Mount]) -> tuple[str, ...]:
    """The command that gives the use of a remote server's disks (POSIX ``df``: 1024-byte blocks, one line
    each; argv, no shell)."""
    return ("df", "-P", "-k", "--", *(m.path for m in mounts))


def parse_df(text: str, mounts: list[Mount]) -> tuple[Disk, ...]:
    """The output of :func:`df_argv` as disks (total = 1024-blocks, used as ``df`` counts it), in the
    order of ``mounts``; a mount ``df`` did not report is left out."""
    by_path = {m.path: m for m in mounts}
    found: dict[str, Disk] = {}
    for line in text.splitlines()[1:]:
        fields = line.split(None, 5)
        if len(fields) < 6 or not fields[1].isdigit() or not fields[2].isdigit():
            continue
        mount = by_path.get(fields[5])
        if mount is not None:
            total, used = int(fields[1]) * 1024, int(fields[2]) * 1024
            found[mount.path] = Disk(mount.path, mount.device, mount.fstype, total=total, used=used)
    return tuple(found[m.path] for m in mounts if m.path in found)


def split_files(text: str, names: tuple[str, ...] = PROC_FILES) -> dict[str, str]:
    """The output of :data:`READ_PROC_FILES` back into one text per file (a file with no line: empty)."""
    out: dict[str, list[str]] = {name: [] for name in names}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        if sep and name in out:
            out[name].append(rest)
    return {name: "\n".join(lines) + "\n" for name, lines in out.items()}
