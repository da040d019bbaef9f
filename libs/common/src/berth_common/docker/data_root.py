"""How much room a Docker engine's data root has, and how much an image takes: what a failed image transfer
or pull, or a build about to start, is compared with (``berth_common.docker.disk_full.no_room``).

The engine reports neither free space nor its disk, so the file system under its data root
(``DockerRootDir`` of ``GET /info``) is measured on the server itself: with ``df`` over the server's SSH
connection when the caller has one (a remote server, as server validation measures it), else through the
engine: a short-lived helper container of Berth's busybox image mounts the data root read-only (the
directory only, none of the container file systems mounted under it) and runs ``df`` on it. The latter
works wherever the service runs, on the host or in a container that does not see the data root, and on
any engine that has the image (``berth up`` makes it on the control plane's); it takes about 0.3 s. A
process that sees the control plane's data root at the same path (on the host) and finds there the file
system the helper measured reads it itself afterwards (``statvfs``), without a helper. Every answer is best
effort: None when it cannot be had.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
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
SAME_FREE_BYTES = 16 * 1024 * 1024  # the free space may move this much while it is measured twice
STALE_AFTER_S = 60.0  # a helper this old was left by a process that stopped while it measured
_FAILED = (EngineError, DockerUnavailable, OSError, TimeoutError)
_SEEN_HERE: dict[tuple[str, str], bool] = {}  # (engine id, data root) -> this process reads that file system


def disk_command(path: str) -> list[str]:
    """Free space of the file system holding ``path`` in POSIX format (1024-byte blocks)."""
    return ["df", "-P", "-k", path]


def df_sizes(output: str) -> tuple[int, int] | None:
    """(total, available) bytes from ``df -P -k`` output (the second and fourth columns of the last line),
    None if unreadable."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    fields = lines[-1].split()
    if len(fields) < 6 or not fields[1].isdigit() or not fields[3].isdigit():
        return None
    return int(fields[1]) * 1024, int(fields[3]) * 1024


def parse_df(output: str) -> int | None:
    """Available bytes from ``df -P -k`` output, None if unreadable."""
    sizes = df_sizes(output)
    return None if sizes is None else sizes[1]


def same_file_system(here: tuple[int, int], engine: tuple[int, int]) -> bool:
    """Whether the (total, available) bytes seen here under the data root's path and those the engine's helper
    saw are of one file system: the same size to the KiB, the free space within ``SAME_FREE_BYTES`` (it moves
    while they are measured)."""
    return here[0] // 1024 == engine[0] // 1024 and abs(here[1] - engine[1]) <= SAME_FREE_BYTES


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
    sizes = await _sizes_by_engine(api, root, image, stale_after_s)
    return None if sizes is None else sizes[1]


async def _sizes_by_engine(api: EngineApi, root: str, image: str, stale_after_s: float) -> tuple[int, int] | None:
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
    return df_sizes(b"".join(data for stream, data in frames(raw) if stream == "stdout").decode(errors="replace"))


def _sizes_here(root: str) -> tuple[int, int] | None:
    """(total, available) bytes of the file system under ``root`` as this process sees it, if it sees it."""
    try:
        st = os.statvfs(root)
    except OSError:
        return None
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize


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
    (on the server over SSH) when given and it answers, else through the engine (``free_by_engine``).

    Without ``run`` the engine is the control plane's: when this process sees the data root's path and the
    file system there is the one the engine's helper measured (``same_file_system``), that is remembered
    and later measures read it here (``statvfs``), with no helper."""
    try:
        info = await asyncio.wait_for(api.get("info"), TIMEOUT_S)
    except _FAILED:
        return None
    root = str((info or {}).get("DockerRootDir") or DEFAULT_ROOT)
    if run is not None:
        try:
            code, out, _ = await asyncio.wait_for(run(disk_command(root)), TIMEOUT_S)
        except Exception:  # an SSH failure of any kind: the engine is asked instead
            code, out = 1, ""
        free = parse_df(out) if code == 0 else None
        return free if free is not None else await free_by_engine(api, root)
    key = (str((info or {}).get("ID") or ""), root)
    if _SEEN_HERE.get(key) and (here := _sizes_here(root)) is not None:
        return here[1]
    sizes = await _sizes_by_engine(api, root, BUSYBOX_IMAGE, STALE_AFTER_S)
    if sizes is not None and key not in _SEEN_HERE:
        here = _sizes_here(root)
        _SEEN_HERE[key] = here is not None and same_file_system(here, sizes)
    return None if sizes is None else sizes[1]


def seen_here(api_id: str, root: str) -> bool | None:
    """Whether the data root ``root`` of the engine ``api_id`` (``ID`` of its ``/info``) was found to be
    readable here (None: not looked at yet)."""
    return _SEEN_HERE.get((api_id, root))
