"""Background work (image builds, volume backups and restores, restore drills) runs with a lower CPU and
I/O weight than serving applications and under a memory limit: as pure data for the Engine API.

A weight is a share, not a cap: an idle machine gives a build every core, a busy one gives the
application containers (CPU shares 1024, the engine's default) four times the CPU of a build (256) and
five times its disk time (``BlkioWeight`` 100 against the default 500; applied where the kernel's I/O
scheduler has weights, otherwise the engine discards it with a warning). The memory limit (swap
included) keeps a build that grows from pushing applications into swap or the OOM killer.

Where each value goes:

- helper containers (``host_config``): ``HostConfig.CpuShares``, ``BlkioWeight``, ``Memory``,
  ``MemorySwap``;
- ``POST /build`` (``build_query``): ``cpushares``, ``memory``, ``memswap``, which the legacy builder
  applies to every ``RUN`` step. The engine's BuildKit (dockerd 20.10) ignores them and runs every
  ``RUN`` step under the cgroup ``docker/buildkit``, so that parent cgroup gets the same weights and
  limit (``buildkit_cgroup_files``) before a build on the local engine.
"""

from __future__ import annotations

from dataclasses import dataclass

MB = 1024 * 1024
DEFAULT_CPU_SHARES = 256  # an application container has 1024
DEFAULT_BLKIO_WEIGHT = 100  # an application container has 500 (10-1000)
DEFAULT_MEMORY_MB = 2048
BUILDKIT_CGROUP = "docker/buildkit"  # the engine's parent cgroup of BuildKit's RUN steps (cgroupfs driver)


@dataclass(frozen=True)
class BackgroundLimits:
    """``cpu_shares`` 2-262144 (1024 is an application's), ``blkio_weight`` 10-1000 (0: leave unset),
    ``memory_mb`` (0: no limit)."""

    cpu_shares: int = DEFAULT_CPU_SHARES
    blkio_weight: int = DEFAULT_BLKIO_WEIGHT
    memory_mb: int = DEFAULT_MEMORY_MB

    def __post_init__(self) -> None:
        if not 2 <= self.cpu_shares <= 262144:
            raise ValueError(f"cpu_shares {self.cpu_shares}: 2 to 262144")
        if self.blkio_weight and not 10 <= self.blkio_weight <= 1000:
            raise ValueError(f"blkio_weight {self.blkio_weight}: 10 to 1000, or 0")
        if self.memory_mb < 0 or 0 < self.memory_mb < 6:
            raise ValueError(f"memory_mb {self.memory_mb}: 6 or more, or 0")

    def host_config(self) -> dict[str, int]:
        """The ``HostConfig`` fields of a helper container (merged into its own)."""
        out = {"CpuShares": self.cpu_shares}
        if self.blkio_weight:
            out["BlkioWeight"] = self.blkio_weight
        if self.memory_mb:
            out["Memory"] = out["MemorySwap"] = self.memory_mb * MB
        return out

    def build_query(self) -> dict[str, str]:
        """The ``POST /build`` query parameters (every value a string)."""
        out = {"cpushares": str(self.cpu_shares)}
        if self.memory_mb:
            out["memory"] = out["memswap"] = str(self.memory_mb * MB)
        return out

    def buildkit_cgroup_files(self, cgroup_root: str = "/sys/fs/cgroup", *, v2: bool = False) -> dict[str, str]:
        """``{file: value}`` that give BuildKit's parent cgroup these weights and limit: cgroup v1
        (``cpu.shares``, ``blkio.weight``, ``memory.limit_in_bytes``, one hierarchy per controller) or v2
        (``cpu.weight`` 1-10000 where 100 is 1024 shares, ``io.weight``, ``memory.max``)."""
        if v2:
            base = f"{cgroup_root}/{BUILDKIT_CGROUP}"
            out = {f"{base}/cpu.weight": str(max(1, min(10000, round(self.cpu_shares * 100 / 1024))))}
            if self.blkio_weight:
                out[f"{base}/io.weight"] = f"default {self.blkio_weight}"
            if self.memory_mb:
                out[f"{base}/memory.max"] = str(self.memory_mb * MB)
            return out
        out = {f"{cgroup_root}/cpu/{BUILDKIT_CGROUP}/cpu.shares": str(self.cpu_shares)}
        if self.blkio_weight:
            out[f"{cgroup_root}/blkio/{BUILDKIT_CGROUP}/blkio.weight"] = str(self.blkio_weight)
        if self.memory_mb:
            out[f"{cgroup_root}/memory/{BUILDKIT_CGROUP}/memory.limit_in_bytes"] = str(self.memory_mb * MB)
        return out


DEFAULT = BackgroundLimits()
