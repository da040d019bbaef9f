"""A read-only files volume filled once on its server's engine (``domain/app_files.py``), and removed with
its filler.

The volume is filled through a container named after it (``app_files.filler_name``), never started: the
engine makes one container of a name, so of the replicas that start at the same moment on a new volume,
from one scheduler process or several, one creates the filler and extracts the archive; the others get a
409 and wait until a container mounting the volume (the filler first) shows the marker, the archive's
last entry. The filler stays after the fill (it shows the volume filled to the starts that come before a
replica exists); the deployment's end removes it with the old replicas (``berth.app``), or the volume's
removal does. A filler that shows no marker for ``STALE_S`` (its fill was interrupted: the process that
made it stopped) is removed by its id and made again; a filler removed under a fill (the deployment's end,
such a takeover) makes the fill start over.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from berth_common.labels import APP, KIND
from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError
from berth_scheduler.domain import app_files
from berth_scheduler.domain.containers import ContainerSpec

STALE_S = 30.0  # a filler without the marker this long (seen by one waiter, the same container) is a leftover
POLL_S = 0.1  # how often a start that found the filler made by another looks for the marker
ATTEMPTS = 5  # fillers made (or taken over) by one start before it gives up


async def fill(docker: DockerExecutor, volume: dict[str, Any], filler: ContainerSpec, tar: bytes, marker: str) -> str:
    """Create ``volume`` and extract ``tar`` into it through the container ``filler`` (never started) unless
    a container that mounts the volume shows ``marker`` (the archive's last entry): files are never
    replaced under a container binding them, and a volume is filled once whoever starts at the same moment.
    Returns its ``Mountpoint`` on the server."""
    name = volume["Name"]
    target = filler.body["HostConfig"]["Mounts"][0]["Target"]
    clock = asyncio.get_running_loop().time
    async with docker.lock(f"volume {name}"):  # in one process, the next start sees the first one's marker
        mountpoint = await docker.ensure_volume(volume)
        seen, since, attempts = "", 0.0, 0
        while not await marked(docker, name, marker):
            if attempts >= ATTEMPTS:
                raise DockerOperationError(
                    f"the files volume {name} was not filled: its filler went away {attempts} times"
                )
            other = await _create(docker, filler)
            if other is not None:  # another start's filler: its marker is waited for
                if other and other.get("Id") != seen:
                    seen, since = str(other.get("Id")), clock()
                elif other and clock() - since >= STALE_S:  # left by an interrupted fill: made again
                    await docker.remove(seen)
                    attempts += 1
                    continue
                await asyncio.sleep(POLL_S)
                continue
            attempts += 1
            try:
                if not await docker.holds(filler.name, f"{target}/{marker}"):
                    await docker.put_archive(filler.name, target, tar)
            except DockerOperationError as exc:
                if exc.status == 404:  # removed under the fill: again
                    continue
                await _drop(docker, filler.name)
                raise
            except asyncio.CancelledError:
                await _drop(docker, filler.name)
                raise
            break
        return mountpoint


async def _create(docker: DockerExecutor, filler: ContainerSpec) -> dict[str, Any] | None:
    """Create the filler: None when made here, else the inspection of the one of its name (empty while the
    engine is still making it for another start)."""
    try:
        return await docker.create_or_find(filler)
    except DockerOperationError as exc:
        if exc.status != 409:
            raise
        return {}


async def _drop(docker: DockerExecutor, name: str) -> None:
    """Remove the filler of a fill that failed: no leftover for the next start to wait out."""
    with contextlib.suppress(Exception):
        await docker.remove(name)


async def marked(docker: DockerExecutor, volume: str, marker: str) -> bool:
    """Whether a container (running or not) that mounts ``volume`` shows ``marker`` in it."""
    for raw in await docker.mounting(volume):
        for path in app_files.marker_paths(raw.get("Mounts") or [], volume, marker):
            with contextlib.suppress(DockerOperationError):  # gone meanwhile: another one, or the filler
                if await docker.holds(str(raw["Id"]), path):
                    return True
    return False


async def remove_volume(docker: DockerExecutor, volume: str) -> bool:
    """Remove a read-only files volume no replica uses, its filler first (it mounts the volume); False when
    the volume was already gone."""
    await docker.remove(app_files.filler_name(volume))
    return await docker.remove_volume(volume)


async def remove_fillers(docker: DockerExecutor, application_id: str) -> list[str]:
    """Remove every filler of the application on the engine (one an interrupted fill left too); their names."""
    found = await docker.list_containers({APP: application_id, KIND: app_files.FILLER_KIND})
    await asyncio.gather(*(docker.remove(c.name) for c in found))
    return [c.name for c in found]
