"""The application's files in a replica, as data: the tar archive the scheduler puts into each created
container before it starts (``PUT /containers/{name}/archive``), and the label that makes a change of the
files a change of the container's definition.

A compose service's ``files`` mount the application's files (``catalogue/files.py``): one file at its
target path, or a directory of files under its target directory. They are written into the container
itself (its own layer, through the same Engine API connection as every other call, so a remote server
needs no host path and nothing is left behind: they go with the container). A volume cannot carry a
single-file mount: API 1.41 engines (Docker 20.10) have no volume subpath. The archive is extracted at
``/``; the engine makes missing parent directories (root, 0755) and never changes existing ones (the
archive has no directory entries). Every entry is owned by root, dated 0 and has the file's mode, so the
same files make the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import tarfile

from berth_common.catalogue import AppFile, ApplicationSpec, WebService, WorkerService, mounted_files

LABEL = "berth.files"  # the digest of the files a container was given


def placed(spec: ApplicationSpec, service: WebService | WorkerService) -> list[tuple[str, AppFile]]:
    """(path in the container, file) for every file the service mounts, in the mounts' order; a later
    mount of the same path wins, as the last mount over a path does. A read-only mount's files lose their
    write permission bits."""
    out: dict[str, AppFile] = {}
    for m in service.files:
        for f in mounted_files(spec.files, m.source):
            inner = m.target if f.path == m.source else m.target + f.path[len(m.source) :]
            out.pop(inner, None)
            out[inner] = f.model_copy(update={"mode": f.mode & 0o555}) if m.read_only else f
    return list(out.items())


def digest(spec: ApplicationSpec, service: WebService | WorkerService) -> str | None:
    """The sha256 of the service's placed files (paths, modes and contents); None without files."""
    found = placed(spec, service)
    if not found:
        return None
    h = hashlib.sha256()
    for path, f in found:
        data = f.reveal().encode()
        h.update(f"{path}\0{f.mode:o}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def archive(spec: ApplicationSpec, service: WebService | WorkerService) -> bytes | None:
    """The tar archive (extracted at ``/``) of the service's placed files; None without files."""
    found = placed(spec, service)
    if not found:
        return None
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, f in found:
            data = f.reveal().encode()
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), f.mode, 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
