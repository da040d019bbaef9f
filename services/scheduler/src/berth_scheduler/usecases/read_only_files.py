"""A container's read-only files (compose's ``:ro``, ``domain/app_files.py``): their volume made and filled on
the container's server, and each file bound read-only from it into the container's create body, for a
replica, a pre-deploy job and a one-off run alike: root in any of them cannot change the files."""

from __future__ import annotations

from dataclasses import replace

from berth_common.catalogue import ApplicationSpec, WebService, WorkerService
from berth_scheduler.adapters import files_volumes
from berth_scheduler.adapters.docker import DockerExecutor
from berth_scheduler.domain import app_files
from berth_scheduler.domain.containers import ContainerSpec


async def with_read_only_files(
    docker: DockerExecutor,
    application_id: str,
    team_id: str | None,
    spec: ApplicationSpec,
    service: WebService | WorkerService,
    cs: ContainerSpec,
) -> ContainerSpec:
    """``cs`` with the service's read-only files bound read-only from their volume (filled first on the
    server ``docker`` speaks to, once, unless a container mounting it shows it filled:
    ``adapters/files_volumes.py``), the volume itself mounted read-only at ``app_files.HOLD_AT`` (the engine
    counts the container as its user), labelled with that volume; ``cs`` itself when it has none. The
    container gets its other files in its own layer (``app_files.archive(..., read_only=False)``)."""
    volume = app_files.read_only_volume(application_id, spec, service)
    tar = app_files.read_only_archive(spec, service)
    if volume is None or tar is None:
        return cs
    body = app_files.volume_body(volume, application_id, team_id)
    filler = ContainerSpec(
        name=app_files.filler_name(volume),
        service=cs.service,
        kind=app_files.FILLER_KIND,
        replica=0,
        body=app_files.filler_body(cs.body["Image"], volume, application_id, team_id),
        server_id=cs.server_id,
    )
    mountpoint = await files_volumes.fill(docker, body, filler, tar, app_files.FILLED)
    host = dict(cs.body.get("HostConfig") or {})
    host["Mounts"] = [*(host.get("Mounts") or []), *app_files.read_only_mounts(spec, service, volume, mountpoint)]
    found = {**(cs.body.get("Labels") or {}), app_files.VOLUME_LABEL: volume}
    return replace(cs, body={**cs.body, "HostConfig": host, "Labels": found})
