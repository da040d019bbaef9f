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

A read-only mount's files (compose's ``:ro``) are read-only for root too in a replica: they are kept in a
Docker volume named by their digest (``read_only_volume``: the same files, the same volume, on each server
that runs the service), filled through a container that is never started (``filler_body``: the engine
extracts the archive into the volume it mounts), and each file is bind-mounted read-only from the volume's
directory at its path (``read_only_mounts``): the kernel refuses any write, whoever asks. The engine does
not count a bind of a volume's directory as a use of the volume, so each replica also mounts the whole
volume read-only at ``HOLD_AT``: an operator's ``docker volume prune`` leaves a volume a replica binds from
(else a restart of that replica fails: its bind sources are gone). A volume is filled once: a container
that mounts it and shows ``FILLED`` in it (``marker_paths``) spares the next replica's start a filler, and
the filler's name is derived from the volume (``filler_name``), so the engine's uniqueness of names lets
one fill run at a time, whichever scheduler process starts the replicas. The filler stays after the fill,
showing the volume filled to the replicas that start next, until the deployment has replaced the old
replicas (it carries ``berth.app`` and is no replica: ``filler``).
The application's removal removes its files volumes (they hold no data of the application's own) with
their fillers, and a succeeded deployment removes those no container of the application binds any more
(``unused_volumes``: a replica names its volume in a label).
A pre-deploy job and a one-off run of the service bind them the same way (``usecases/read_only_files.py``).
A service with a read-only root filesystem (compose's ``read_only``) gets all its files that way, and a
service's secret files (compose's ``secrets``) are always read-only files of the volume.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterable, Mapping
from typing import Any

from berth_common import labels
from berth_common.catalogue import AppFile, ApplicationSpec, WebService, WorkerService, mounted_files
from berth_common.catalogue.mounts import FILES_HOLD

LABEL = "berth.files"  # the digest of the files a container was given (on a read-only files volume: its name)
FILL_AT = "/berth-files"  # where the filler mounts a read-only files volume
FILLED = ".berth-filled"  # the last entry of a read-only files volume's archive: the volume is filled
VOLUME_LABEL = "berth.files-volume"  # on a replica: the read-only files volume it binds files from
HOLD_AT = FILES_HOLD  # where a replica mounts its whole read-only files volume: the engine counts it as used
FILLER_KIND = "files-filler"  # ``berth.kind`` of a read-only files volume's filler
SECRET_PATH = "secret"  # the path a secret file has as one of the placed files (its target is what counts)


def _placed(spec: ApplicationSpec, service: WebService | WorkerService) -> list[tuple[str, AppFile, bool]]:
    """(path, file, bound read-only from the files volume) of every file the service gets. A service with a
    read-only root filesystem gets all its files from the volume (the engine refuses an archive put into
    its own layer), and its secret files (``catalogue/compose_runtime.py``) always come from it, read-only,
    after its other files (a secret's target wins)."""
    rootfs = service.host_limits is not None and service.host_limits.read_only_rootfs
    out: dict[str, tuple[AppFile, bool]] = {}
    for m in service.files:
        for f in mounted_files(spec.files, m.source):
            inner = m.target if f.path == m.source else m.target + f.path[len(m.source) :]
            out.pop(inner, None)
            out[inner] = (f.model_copy(update={"mode": f.mode & 0o555}) if m.read_only else f, m.read_only or rootfs)
    for secret in service.secret_files:
        out.pop(secret.target, None)
        file = AppFile.model_validate({"path": SECRET_PATH, "content": secret.reveal(), "mode": secret.mode})
        out[secret.target] = (file, True)
    return [(path, f, ro) for path, (f, ro) in out.items()]


def placed(spec: ApplicationSpec, service: WebService | WorkerService) -> list[tuple[str, AppFile]]:
    """(path in the container, file) for every file the service mounts, in the mounts' order; a later
    mount of the same path wins, as the last mount over a path does. A read-only mount's files lose their
    write permission bits."""
    return [(path, f) for path, f, _ in _placed(spec, service)]


def digest(spec: ApplicationSpec, service: WebService | WorkerService) -> str | None:
    """The sha256 of the service's placed files (paths, modes and contents); None without files."""
    found = placed(spec, service)
    return _digest(found) if found else None


def _digest(found: list[tuple[str, AppFile]]) -> str:
    h = hashlib.sha256()
    for path, f in found:
        data = f.reveal().encode()
        h.update(f"{path}\0{f.mode:o}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def _tar(found: list[tuple[str, AppFile]]) -> bytes:
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


def archive(spec: ApplicationSpec, service: WebService | WorkerService, *, read_only: bool = True) -> bytes | None:
    """The tar archive (extracted at ``/``) of the service's placed files; None without files.
    ``read_only`` False: without the read-only mounts' files (a replica mounts those from their volume)."""
    found = [(path, f) for path, f, ro in _placed(spec, service) if read_only or not ro]
    return _tar(found) if found else None


def _read_only(spec: ApplicationSpec, service: WebService | WorkerService) -> list[tuple[str, AppFile]]:
    return [(path, f) for path, f, ro in _placed(spec, service) if ro]


def read_only_volume(application_id: str, spec: ApplicationSpec, service: WebService | WorkerService) -> str | None:
    """The Docker volume holding the service's read-only files, named by their digest (paths, modes,
    contents): ``berth-<application id>_files-<digest>``; None without read-only files."""
    found = _read_only(spec, service)
    if not found:
        return None
    return f"{files_volume_prefix(application_id)}{_digest(found)[:24]}"


def files_volume_prefix(application_id: str) -> str:
    """What every read-only files volume of the application is named with (``_``: no named volume's name,
    a slug, has one)."""
    return f"berth-{application_id}_files-"


def servers_with_files(specs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every server the stored snapshots (JSON) of an application's deployments place a service with files
    or secret files on: where its read-only files volumes may be."""
    found: dict[str, None] = {}
    for spec in specs:
        for svc in spec.get("services") or []:
            if svc.get("files") or svc.get("secret_files"):
                for server in svc.get("servers") or ["local"]:
                    found.setdefault(str(server), None)
    return list(found)


def read_only_archive(spec: ApplicationSpec, service: WebService | WorkerService) -> bytes | None:
    """The tar archive of the service's read-only files, extracted at the volume's root (``FILL_AT`` in the
    filler): each file at its path in the container, relative, then ``FILLED`` (empty): a volume holding
    it is filled, and is not filled again."""
    found = _read_only(spec, service)
    if not found:
        return None
    marker = AppFile.model_validate({"path": "filled", "content": "", "mode": 0o444})
    return _tar([*found, (FILLED, marker)])


def read_only_mounts(
    spec: ApplicationSpec, service: WebService | WorkerService, volume: str, mountpoint: str
) -> list[dict[str, Any]]:
    """``HostConfig.Mounts`` entries binding each read-only file from the volume's directory on the server
    (``mountpoint``, as the engine reports it) at its path, read-only, then the whole ``volume`` mounted
    read-only at ``HOLD_AT``: a real use of the volume, which ``docker volume prune`` respects."""
    root = mountpoint.rstrip("/")
    binds = [
        {"Type": "bind", "Source": f"{root}/{path.lstrip('/')}", "Target": path, "ReadOnly": True}
        for path, _ in _read_only(spec, service)
    ]
    return [*binds, {"Type": "volume", "Source": volume, "Target": HOLD_AT, "ReadOnly": True}]


def marker_paths(mounts: Iterable[Mapping[str, Any]], volume: str, marker: str) -> list[str]:
    """Where ``marker`` is in a container that mounts ``volume``, given its ``Mounts`` as the engine lists
    them (``GET /containers/json``): one path per mount of that very volume (the engine's ``volume``
    filter also matches names that merely contain it)."""
    return [
        f"{str(m.get('Destination') or '').rstrip('/')}/{marker}"
        for m in mounts
        if m.get("Type") == "volume" and m.get("Name") == volume and m.get("Destination")
    ]


def volume_body(volume: str, application_id: str, team_id: str | None) -> dict[str, Any]:
    """The ``POST /volumes/create`` body of a read-only files volume (found again by ``berth.app``)."""
    team = {labels.TEAM: team_id} if team_id else {}
    return {
        "Name": volume,
        "Driver": "local",
        "Labels": {**team, labels.APP: application_id, labels.MANAGED: "true", LABEL: volume},
    }


def filler_name(volume: str) -> str:
    """The name of the container that fills ``volume``: one per volume on an engine, so the engine refuses a
    second one (409) while the first exists."""
    return f"{volume}-filler"


def filler_body(image: str, volume: str, application_id: str, team_id: str | None) -> dict[str, Any]:
    """The create body of the container that fills a read-only files volume: never started (its command is
    no program), no network, the volume mounted writable at ``FILL_AT``; labelled as the application's
    (found again by its removal) of kind ``FILLER_KIND`` (no replica)."""
    team = {labels.TEAM: team_id} if team_id else {}
    return {
        "Image": image,
        "Entrypoint": [FILL_AT + "/.none"],
        "Cmd": [],
        "NetworkDisabled": True,
        "Labels": {**team, labels.APP: application_id, labels.MANAGED: "true", labels.KIND: FILLER_KIND, LABEL: volume},
        "HostConfig": {"Mounts": [{"Type": "volume", "Source": volume, "Target": FILL_AT}]},
    }


def filler(container_labels: Mapping[str, str]) -> bool:
    """Whether a container with these labels is a files volume's filler (not a replica, never started)."""
    return container_labels.get(labels.KIND) == FILLER_KIND


def unused_volumes(
    application_id: str, volumes: Iterable[str], container_labels: Iterable[Mapping[str, str]]
) -> list[str]:
    """The application's read-only files volumes (among ``volumes``) that no container (by its labels)
    binds files from."""
    used = {found.get(VOLUME_LABEL) for found in container_labels}
    prefix = files_volume_prefix(application_id)
    return [v for v in volumes if v.startswith(prefix) and v not in used]
