"""How much room a Docker engine's data root has, and how much an image takes: what a failed image transfer
or pull, or a build about to start, is compared with (``berth_common.docker.disk_full.no_room``).

The engine reports neither free space nor its disk, so the file system under its data root
(``DockerRootDir`` of ``GET /info``) is measured on the server itself: with ``df`` over the server's SSH
connection when the caller has one (a remote server, as server validation measures it), else through the
engine: a short-lived helper container of Berth's busybox image mounts the data root read-only (the
directory only, none of the container file systems mounted under it) and runs ``df`` on it. The latter
works wherever the service runs, on the host or in a container that does not see the data root, and on
any engine that has the image (``berth up`` makes it on the control plane's). Every answer is best effort:
None when it cannot be had.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from berth_common import labels
from berth_common.docker.api import EngineApi
from berth_common.docker.engine import DockerUnavailable
from berth_common.docker.logframes import frames
from berth_common.docker.wire import EngineError
from berth_common.images import BUSYBOX_IMAGE

Run = Callable[[Sequence[str]], Awaitable[tuple[int, str, str]]]  # argv on the server: (status, out, err)
TIMEOUT_S = 10.0
DEFAULT_ROOT = "/var/lib/docker"
MOUNT = "/data-root"  # where the helper sees the data root
HELPER_LABEL = "berth.data-root-helper"  # on the helper container: what it is for
HELPER_PREFIX = "berth-data-root-"
STALE_AFTER_S = 60.0  # a helper this old was left by a process that stopped while it measured
_FAILED = (EngineError, DockerUnavailable, OSError, TimeoutError)


def disk_command(path: str) -> list[str]:
    """Free space of the file system holding ``path`` in POSIX format (1024-byte blocks)."""
    return ["df", "-P", "-k", path]


def parse_df(output: str) -> int | None:
    """Available bytes from ``df -P -k`` output (the fourth column of the last line), None if unreadable."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    fields = lines[-1].split()
    if len(fields) < 6 or not fields[3].isdigit():
        return None
    return int(fields[3]) * 1024


def helper_body(root: str, image: str = BUSYBOX_IMAGE) -> dict[str, Any]:
    """The ``POST /containers/create`` body of the helper that prints the free space of ``root`` (the
    engine's data root): busybox ``df`` on it mounted read-only at ``MOUNT``, without its sub-mounts, no
    network, as root (to read any data root)."""
    return {
        "Image": image,
        "Cmd": disk_command(MOUNT),
        "Entrypoint": [],
        "User": "0:0",
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": False,
        "NetworkDisabled": True,
        "Labels": {labels.MANAGED: "true", HELPER_LABEL: "df"},
        "HostConfig": {
            "NetworkMode": "none",
            "AutoRemove": False,
            "Mounts": [
                {
                    "Type": "bind",
                    "Source": root,
                    "Target": MOUNT,
                    "ReadOnly": True,
                    "BindOptions": {"NonRecursive": True},
                }
            ],
        },
    }


async def root_of(api: EngineApi) -> str:
    """The engine's data root (``DockerRootDir``; Docker's default when it does not say)."""
    info = await asyncio.wait_for(api.get("info"), TIMEOUT_S)
    return str((info or {}).get("DockerRootDir") or DEFAULT_ROOT)


async def image_bytes(api: EngineApi, image: str) -> int | None:
    """The image's size on the engine that has it (its layers unpacked: ``Size`` of the inspect), or None."""
    try:
        info = await asyncio.wait_for(api.get(f"images/{image}/json"), TIMEOUT_S)
    except _FAILED:
        return None
    size = info.get("Size") if isinstance(info, dict) else None
    return size if isinstance(size, int) and size >= 0 else None


async def free_by_engine(
    api: EngineApi, root: str, image: str = BUSYBOX_IMAGE, *, stale_after_s: float = STALE_AFTER_S
) -> int | None:
    """The free bytes under ``root`` as the engine's own helper container (``helper_body``) sees them; None
    when the engine lacks the image or the helper fails. The helper is removed whatever happened; one left by
    a process that stopped while it measured (older than ``stale_after_s``) is removed first."""
    name = f"{HELPER_PREFIX}{secrets.token_hex(6)}"
    try:
        async with asyncio.timeout(TIMEOUT_S):
            with contextlib.suppress(*_FAILED):
                await _remove_stale(api, stale_after_s)
            try:
                await api.json("POST", "containers/create", params={"name": name}, body=helper_body(root, image))
                await api.request("POST", f"containers/{name}/start")
                waited = await api.json("POST", f"containers/{name}/wait", timeout=None)
                _, raw = await api.request("GET", f"containers/{name}/logs", params={"stdout": "1", "stderr": "0"})
            finally:
                await asyncio.shield(_remove(api, name))
    except _FAILED:
        return None
    if (waited or {}).get("StatusCode") != 0:
        return None
    return parse_df(b"".join(data for stream, data in frames(raw) if stream == "stdout").decode(errors="replace"))


async def _remove_stale(api: EngineApi, stale_after_s: float) -> None:
    """Remove the helpers created more than ``stale_after_s`` ago (a younger one is another caller's, still
    measuring)."""
    found = await api.get("containers/json", {"all": "1", "filters": json.dumps({"label": [HELPER_LABEL]})})
    for container in found or []:
        if time.time() - float(container.get("Created") or 0) > stale_after_s:
            await _remove(api, str(container["Id"]))


async def _remove(api: EngineApi, name: str) -> None:
    with contextlib.suppress(*_FAILED):
        await api.request("DELETE", f"containers/{name}", params={"force": "1", "v": "1"}, timeout=TIMEOUT_S)


async def free_bytes(api: EngineApi, run: Run | None = None) -> int | None:
    """The free bytes of the file system that holds the engine's data root, or None: ``df`` run by ``run``
    (on the server over SSH) when given and it answers, else through the engine (``free_by_engine``)."""
    try:
        root = await root_of(api)
    except _FAILED:
        return None
    if run is not None:
        try:
            code, out, _ = await asyncio.wait_for(run(disk_command(root)), TIMEOUT_S)
        except Exception:  # an SSH failure of any kind: the engine is asked instead
            code, out = 1, ""
        free = parse_df(out) if code == 0 else None
        if free is not None:
            return free
    return await free_by_engine(api, root)
