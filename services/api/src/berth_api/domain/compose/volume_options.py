"""Top-level compose volumes with ``driver: local`` and ``driver_opts``: pure.

A volume's ``driver_opts`` say what Docker's local driver mounts for it when a container uses it:

- ``type: tmpfs`` (an in-memory filesystem, its ``o`` the size, mode, owner ...) and the network shares
  ``type: nfs``, ``nfs4``, ``cifs`` (``o: addr=<server>,...``, ``device: :/export``) are carried to the
  volume's creation as they are (``volume_options`` of the translation: Docker's ``DriverOpts``). The
  engine mounts a share from the server itself, so a share on the server's loopback, link-local or
  metadata address is refused (the outbound rule every team has).
- A share's password (``o: username=u,password=${CIFS_PASSWORD}``) is a secret variable of the application,
  never written in the file: a literal ``password=``/``pass=`` value is refused naming ``o``. The reference
  stays a placeholder here; ``secret_refs.carry`` takes it out of ``o`` into the volume's ``secret`` (its
  variable's name), and the deployment's snapshot carries its value sealed.
- ``o: bind`` with a host ``device`` (``type: none``) is a host directory: each mount of the volume is a
  host bind mount, under the paths the administrator allows for the team as any bind mount
  (``BERTH_BIND_MOUNT_ALLOW_TEAMS``), refused by name otherwise.

Options that are all empty (erpnext's ``type: ${SITE_VOLUME_TYPE}`` left unset) make a plain volume, as Docker's
local driver does (said in the notes). Any other option, type or driver is refused naming it. Docker keeps a volume's options from its creation:
the volume is kept across deployments as any named volume, and the scheduler reports a change of its
options rather than applying it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from berth_api.domain import mounts
from berth_api.domain.compose.keys import ComposeRefusal, not_carried, present
from berth_common.catalogue import PASSWORD_OPTIONS, VOLUME_TYPES, mount_path
from berth_common.catalogue.compose_storage import DEVICE_PATTERN, OPTIONS_PATTERN
from berth_common.outbound import ALWAYS_REFUSED, classify, name_category, normalize_host

VOLUME_WHY = {
    "driver": "Berth volumes use Docker's local driver",
    "external": "Berth makes and names the application's volumes itself",
    "labels": "Berth labels volumes itself (berth.*)",
}
# tmpfs's own mount options (``man tmpfs``) and the generic flags
TMPFS_OPTIONS = frozenset({"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "huge"})
FLAGS = frozenset({"ro", "rw", "noexec", "nosuid", "nodev", "noatime", "nodiratime", "relatime"})
BIND_FLAGS = frozenset({"bind", "rbind", "ro", "rw"})
SHARE_HOST = re.compile(r"^//([^/]+)/")  # cifs: //server/share
SECRET_REF = re.compile(r"^@@berth-secret-[A-Za-z0-9]+:[A-Za-z_][A-Za-z0-9_]*@@$")  # ``secret_refs.placeholder``


@dataclass(frozen=True)
class HostDir:
    """A volume that is a host directory (``o: bind``): its path, read-only when ``o`` says ``ro``."""

    path: str
    read_only: bool


@dataclass(frozen=True)
class Volumes:
    """The top-level volumes' local-driver options (compose key -> ``DriverOpts`` fields) and those that
    are host directories (compose key -> ``HostDir``)."""

    options: dict[str, dict[str, str]]
    host_dirs: dict[str, HostDir]


def top_level(model: Mapping[str, Any], bind_allow: tuple[str, ...], notes: list[str]) -> Volumes:
    """Check every top-level volume; raises ``ComposeRefusal`` naming the key Berth cannot carry."""
    options: dict[str, dict[str, str]] = {}
    host_dirs: dict[str, HostDir] = {}
    for key, vol in (model.get("volumes") or {}).items():
        for k, v in sorted((vol or {}).items(), key=lambda kv: kv[0] == "name"):
            if (k == "name" and v == f"berth_{key}") or (k == "driver" and v == "local") or k == "driver_opts":
                continue  # ``local`` is Docker's default driver: a Berth volume
            if k == "name":
                notes.append(f"volumes/{key}/name: not carried: Berth names volumes berth-<application id>-<name>")
            elif present(v):
                raise not_carried(f"volumes/{key}/{k}", VOLUME_WHY.get(k, ""))
        given = {str(k): "" if v is None else str(v) for k, v in ((vol or {}).get("driver_opts") or {}).items()}
        if not any(given.values()):  # erpnext's ``type: ${SITE_VOLUME_TYPE}`` unset: the engine mounts nothing
            if given:
                notes.append(f"volumes/{key}/driver_opts: empty: a plain volume, as Docker's local driver makes it")
            continue
        found = _driver_opts(f"volumes/{key}/driver_opts", given, bind_allow)
        if isinstance(found, HostDir):
            host_dirs[str(key)] = found
            notes.append(f"volumes/{key}: the host directory {found.path}, bind-mounted where it is mounted")
        else:
            options[str(key)] = found
    return Volumes(options, host_dirs)


def _driver_opts(spot: str, given: dict[str, str], bind_allow: tuple[str, ...]) -> dict[str, str] | HostDir:
    for k in given:
        if k not in ("type", "device", "o"):
            raise not_carried(f"{spot}/{k}", "the local driver's options are type, device and o")
    kind, device, o = given.get("type", ""), given.get("device", ""), given.get("o", "")
    if not re.fullmatch(OPTIONS_PATTERN, o):
        raise ComposeRefusal(f"{spot}/o", "mount options are comma-separated words (letters, digits, _.:/@+=%~-)")
    flags = [part for part in o.split(",") if part]
    for flag in flags:
        option, _, value = flag.partition("=")
        if option in PASSWORD_OPTIONS and not SECRET_REF.fullmatch(value):
            raise ComposeRefusal(
                f"{spot}/o",
                f"a share's {option} is a secret: write {option}=${{NAME}}, NAME a secret variable of the "
                "application, never the password itself (the file and the translation are shown)",
            )
    if "bind" in flags or "rbind" in flags:
        return _host_dir(spot, kind, device, flags, bind_allow)
    if kind not in VOLUME_TYPES:
        carried = ", ".join(VOLUME_TYPES)
        raise not_carried(f"{spot}/type", f"{kind or 'no type'}: Berth carries {carried}, and o: bind (a host path)")
    if kind == "tmpfs":
        device = device or "tmpfs"
        for flag in flags:
            if flag.split("=", 1)[0] not in TMPFS_OPTIONS | FLAGS:
                raise not_carried(f"{spot}/o", f"the tmpfs option {flag}")
    if not re.fullmatch(DEVICE_PATTERN, device):
        raise ComposeRefusal(f"{spot}/device", "a device is what the volume mounts (tmpfs, :/export, //server/share)")
    if kind != "tmpfs":
        _share_host(spot, kind, device, flags)
    return {"type": kind, "device": device, **({"o": o} if o else {})}


def _host_dir(spot: str, kind: str, device: str, flags: list[str], bind_allow: tuple[str, ...]) -> HostDir:
    """``o: bind``: the host directory ``device``, under the paths the administrator allows the team."""
    if kind not in ("", "none"):
        raise not_carried(f"{spot}/type", f"{kind} with o: bind (a host directory is type: none)")
    for flag in flags:
        if flag not in BIND_FLAGS:
            raise not_carried(f"{spot}/o", f"the bind option {flag}")
    try:
        path = mount_path(device.rstrip("/") or device)
    except ValueError as exc:
        raise ComposeRefusal(f"{spot}/device", f"a host directory is an absolute path: {exc}") from None
    if not mounts.allowed(path, bind_allow):
        where = (
            ", ".join(bind_allow)
            if bind_allow
            else "none for this team: BERTH_BIND_MOUNT_ALLOW_TEAMS, BERTH_BIND_MOUNT_ALLOW"
        )
        raise ComposeRefusal(
            f"{spot}/device", f"host bind mounts are allowed only under the paths the administrator lists ({where})"
        )
    return HostDir(path, "ro" in flags)


def _share_host(spot: str, kind: str, device: str, flags: list[str]) -> None:
    """Refuse a network share on the server's own loopback, link-local or metadata address: the engine
    mounts it from the server, outside the containers' networks."""
    hosts = [f.split("=", 1)[1] for f in flags if f.startswith("addr=")]
    found = SHARE_HOST.match(device)
    if found:
        hosts.append(found.group(1))
    elif kind != "cifs" and ":" in device and not device.startswith(":"):
        hosts.append(device.rsplit(":", 1)[0])
    for host in hosts:
        try:
            normal = normalize_host(host)
        except ValueError:
            raise ComposeRefusal(f"{spot}/o", f"{host} is not a host name or address") from None
        category = name_category(normal) if isinstance(normal, str) else classify(normal)
        if category in ALWAYS_REFUSED:
            raise ComposeRefusal(
                f"{spot}/o",
                f"{host} is a {category} address of the server: a share is mounted from a server of its own",
            )


def mount_label(spot: str, bind: Mapping[str, Any], own: bool, notes: list[str]) -> None:
    """A mount's ``bind`` options (compose's ``:z`` / ``:Z`` is ``bind.selinux``) on a named volume or on
    the application's files (``own``): their SELinux label is noted, as Docker labels what it makes itself
    (Supabase's storage and kong in Dokploy); ``create_host_path`` is compose's default. On a host path,
    relabelling changes the server's own files: refused, as any other option, naming ``bind``."""
    for key, value in bind.items():
        if own and key == "selinux" and value in ("z", "Z"):
            notes.append(f"{spot}/bind/selinux: not carried: Docker labels the volumes and files Berth makes")
        elif key != "create_host_path" and present(value):
            raise not_carried(f"{spot}/bind")
