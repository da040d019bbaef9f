"""The weights and memory limit of BuildKit's parent cgroup on this machine's engine.

The engine's BuildKit (dockerd 20.10) ignores the resource parameters of ``POST /build`` and runs every
``RUN`` step in a cgroup under ``docker/buildkit`` (cgroupfs driver). Giving that parent cgroup the
background limits (``BackgroundLimits.buildkit_cgroup_files``) before a build makes all of BuildKit's work
weigh what one background job weighs against the application containers, its siblings under ``docker``.
Only the local engine's cgroups are reachable from here; a file that cannot be written is reported, not
fatal (a build is never refused for it).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from berth_common.background import BackgroundLimits

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_v2(root: Path = CGROUP_ROOT) -> bool:
    return (root / "cgroup.controllers").exists()


def write_files(files: Mapping[str, str]) -> list[str]:
    """Write each ``{file: value}``, making the cgroup folder when missing; the files that failed, with why."""
    failed: list[str] = []
    for name, value in files.items():
        path = Path(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(value)
        except OSError as exc:
            failed.append(f"{name}: {exc.strerror or exc}")
    return failed


def limit_buildkit(limits: BackgroundLimits, root: Path = CGROUP_ROOT) -> list[str]:
    """Apply ``limits`` to BuildKit's parent cgroup; what could not be set (empty when all was)."""
    if not root.is_dir():
        return [f"{root}: no cgroup file system"]
    return write_files(limits.buildkit_cgroup_files(str(root), v2=cgroup_v2(root)))
