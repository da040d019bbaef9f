"""How much an image takes and how much room a server's Docker data root has: what a failed image transfer
or pull is compared with (``berth_common.docker.disk_full.no_room``), since an engine that ran out of room
removes what it had written and its disk has room again afterwards.

The engine reports neither free space nor its disk, so the data root (``DockerRootDir`` of ``GET /info``)
is measured with ``df`` on the server over its SSH connection, as server validation does
(``domain.servers.disk_command``). Every answer is best effort: None when it cannot be had.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from berth_common.docker import DockerUnavailable, EngineApi, EngineError
from berth_scheduler.domain.servers import disk_command, parse_df

Run = Callable[[Sequence[str]], Awaitable[tuple[int, str, str]]]  # argv on the server: (status, out, err)
TIMEOUT_S = 10.0


async def image_bytes(api: EngineApi, image: str) -> int | None:
    """The image's size on the engine that has it (its layers unpacked: ``Size`` of the inspect), or None."""
    try:
        info = await asyncio.wait_for(api.get(f"images/{image}/json"), TIMEOUT_S)
    except (EngineError, DockerUnavailable, OSError, TimeoutError):
        return None
    size = info.get("Size") if isinstance(info, dict) else None
    return size if isinstance(size, int) and size >= 0 else None


async def data_root_free(api: EngineApi, run: Run) -> int | None:
    """The free bytes of the file system that holds the engine's data root (``df`` run by ``run``), or None."""
    try:
        info = await asyncio.wait_for(api.get("info"), TIMEOUT_S)
        root = str(info.get("DockerRootDir") or "/var/lib/docker")
        code, out, _ = await asyncio.wait_for(run(disk_command(root)), TIMEOUT_S)
    except (EngineError, DockerUnavailable, OSError, TimeoutError):
        return None
    except Exception:  # an SSH failure of any kind: the measure is best effort
        return None
    return parse_df(out) if code == 0 else None
