"""Volume backups and restores, for ``usecases.backups`` (``cmd.backup.start``) and ``usecases.restores``
(``cmd.backup.restore``) when the source or target is a Docker volume.

The helper image is made sure of on the volume's server (streamed from the control plane's engine when the
server lacks it, as database images are); what the command names is stopped for consistency and started
again afterwards whatever happened (a container of another team is never touched); the volume is checked
to be there and the team's (a backup), or made new or emptied when confirmed (a restore). The helper
containers themselves are :class:`adapters.helper_container.HelperContainer` with the bodies of
``domain.volume_dumps``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from berth_common.background import DEFAULT as DEFAULT_LIMITS
from berth_common.background import BackgroundLimits
from berth_common.catalogue import VolumeSource
from berth_common.docker import LOCAL
from berth_common.logging import get_logger
from berth_scheduler.adapters.db_engine import DatabaseEngine
from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError
from berth_scheduler.adapters.helper_container import run_helper
from berth_scheduler.domain import volume_dumps as dom

log = get_logger(__name__)
Socket = Callable[[str], Awaitable[str]]  # a server's engine socket (``Fleet.socket``)


class VolumeError(RuntimeError):
    """Why a volume backup or restore cannot go on, for a person."""


async def helper_image(docker: DockerExecutor, server_id: str, socket: Socket | None, local: DockerExecutor) -> None:
    """The helper image on the volume's server: there already, or streamed from the control plane's engine."""
    if await DatabaseEngine(docker).has_image(dom.HELPER_IMAGE):
        return
    if server_id == LOCAL or socket is None or not await DatabaseEngine(local).has_image(dom.HELPER_IMAGE):
        raise VolumeError(f"the helper image {dom.HELPER_IMAGE} is not on server {server_id} (berth up makes it)")
    from berth_common.image_delivery import deliver_image

    sent = await deliver_image(await socket(LOCAL), await socket(server_id), dom.HELPER_IMAGE, timeout=900)
    log.info("volume helper image delivered", server_id=server_id, bytes=sent)


async def volume_labels(docker: DockerExecutor, name: str) -> dict[str, str] | None:
    """The volume's labels ({} when it has none); None when there is no such volume."""
    try:
        info = await docker._call(f"inspect volume {name}", docker.docker.get(f"volumes/{name}"))
    except DockerOperationError as exc:
        if exc.status == 404:
            return None
        raise
    return dict((info or {}).get("Labels") or {})


async def check_source(docker: DockerExecutor, source: VolumeSource, team_id: str) -> None:
    labels = await volume_labels(docker, source.volume)
    if labels is None:
        raise VolumeError(f"volume {source.volume} does not exist on server {source.server_id}")
    if dom.foreign(labels, team_id):
        raise VolumeError(f"volume {source.volume} belongs to another team")


async def prepare_target(
    docker: DockerExecutor,
    target: VolumeSource,
    team_id: str,
    run_id: str,
    overwrite: bool,
    limits: BackgroundLimits = DEFAULT_LIMITS,
) -> bool:
    """A new volume (made now; True), or, only when ``overwrite`` (confirmed), the existing one emptied."""
    labels = await volume_labels(docker, target.volume)
    if labels is None:
        await docker._call(
            f"create volume {target.volume}",
            docker.docker.json(
                "POST", "volumes/create", body=dom.volume_body(target.volume, target.application_id, team_id)
            ),
        )
        return True
    if dom.foreign(labels, team_id):
        raise VolumeError(f"volume {target.volume} belongs to another team")
    if not overwrite:
        raise VolumeError(
            f"volume {target.volume} already exists: restore into a new volume, or over this one with "
            "overwrite and confirm_overwrite"
        )
    code, error = await run_helper(docker, dom.helper_name("empty", run_id), dom.empty_body(target.volume, limits))
    if code != 0:
        raise VolumeError(f"emptying volume {target.volume} failed (exit code {code}): {error[:1000]}")
    return False


async def remove_volume(docker: DockerExecutor, name: str) -> None:
    with contextlib.suppress(Exception):
        await DatabaseEngine(docker).remove_volume(name)


async def _to_stop(docker: DockerExecutor, source: VolumeSource, team_id: str) -> list[str]:
    """The running containers the command names (by name, or by its service's labels), in order."""
    found: dict[str, None] = {}
    for name in source.stop_containers:
        info = await docker.inspect(name)
        if info is None:
            continue
        if dom.foreign((info.get("Config") or {}).get("Labels"), team_id):
            raise VolumeError(f"container {name} belongs to another team: it is not stopped")
        if (info.get("State") or {}).get("Running"):
            found.setdefault(name, None)
    if source.stop_service is not None:
        selector = dom.service_selector(source.application_id, source.stop_service)
        for c in await docker.list_containers(selector):
            if c.state == "running" and not dom.foreign(c.labels, team_id):
                found.setdefault(c.name, None)
    return list(found)


@contextlib.asynccontextmanager
async def stopped(
    docker: DockerExecutor,
    source: VolumeSource,
    team_id: str,
    on_stop: Callable[[str], Awaitable[None]] | None = None,
) -> AsyncIterator[list[str]]:
    """Stop what the command names for the time of the block, then start it again, also when it failed.
    ``on_stop`` records each container before it is stopped (so the sweep of a process that stopped
    meanwhile starts it again: :func:`resume`)."""
    names = await _to_stop(docker, source, team_id)
    done: list[str] = []
    try:
        for name in names:
            if on_stop is not None:
                await on_stop(name)
            await docker.stop(name)  # within the container's own stop timeout
            done.append(name)
            log.info("stopped for consistency", container=name, volume=source.volume)
        yield names
    finally:
        failed: list[Any] = []
        for name in done:
            try:
                await docker.start(name)
            except Exception as exc:  # the others are started all the same
                failed.append(name)
                log.warning("not started again after the volume backup", container=name, error=str(exc))
        if failed:
            raise VolumeError(f"the container(s) {', '.join(failed)} could not be started again")


async def resume(
    docker: Callable[[str], Awaitable[DockerExecutor]], command: dict[str, Any], uploads: list[Any]
) -> None:
    """After an interrupted volume backup (the process stopped): remove its helper container and start the
    containers it recorded as stopped for consistency (best effort; starting a running one changes nothing)."""
    source = command.get("source") or {}
    if source.get("kind") != "volume":
        return
    try:
        engine = await docker(str(source.get("server_id") or LOCAL))
        await engine.remove(dom.helper_name("backup", str(command.get("backup_id"))))
    except Exception as exc:
        log.warning("an interrupted volume backup's helper is not removed", error=str(exc))
        return
    for entry in uploads:
        if entry and entry[0] == dom.STOPPED_ENTRY:
            try:
                await engine.start(str(entry[1]))
                log.info("started again after an interrupted volume backup", container=entry[1])
            except Exception as exc:
                log.warning("not started again after an interrupted volume backup", container=entry[1], error=str(exc))


async def resume_restore(docker: DockerExecutor, target: VolumeSource, team_id: str, run_id: str) -> None:
    """After an interrupted volume restore (the process stopped): remove its helpers and start the containers
    the command names that are not running (it stopped them for the restore)."""
    for purpose in ("empty", "restore"):
        await docker.remove(dom.helper_name(purpose, run_id))
    names = list(target.stop_containers)
    if target.stop_service is not None:
        selector = dom.service_selector(target.application_id, target.stop_service)
        names += [c.name for c in await docker.list_containers(selector) if not dom.foreign(c.labels, team_id)]
    for name in dict.fromkeys(names):
        info = await docker.inspect(name)
        if info is None or dom.foreign((info.get("Config") or {}).get("Labels"), team_id):
            continue
        if not (info.get("State") or {}).get("Running"):
            with contextlib.suppress(Exception):
                await docker.start(name)
                log.info("started again after an interrupted volume restore", container=name)
