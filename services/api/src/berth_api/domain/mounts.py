"""An application's volumes and bind mounts as the api checks them: pure, no I/O.

Refusals name the field (a JSON pointer into the request) and say what to do: a single-writer volume needs
one replica and ``strategy: recreate`` (the words of ``berth_common.catalogue.single_writer_refusal``, the
rule the scheduler relies on), and a host bind mount is accepted only under a path the administrator
allows (``BERTH_BIND_MOUNT_ALLOW`` for every team, ``BERTH_BIND_MOUNT_ALLOW_TEAMS`` per team; none by default). What a removal keeps is read from the desired state:
each named volume on each server of the services mounting it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from berth_common.catalogue import LOCAL_SERVER, docker_volume_name, single_writer_refusal


def allowed(host_path: str, allow: Iterable[str]) -> bool:
    """Whether ``host_path`` is one of the allowed paths or under one (by whole path segments)."""
    return any(host_path == root or host_path.startswith(root.rstrip("/") + "/") for root in allow)


def refusal(
    services: list[Mapping[str, Any]], allow: Iterable[str], prefix: str = "/body/services"
) -> tuple[str, str] | None:
    """The first (field, why) the services' mounts are refused for; None when they are accepted."""
    allow = list(allow)
    writers: dict[str, str] = {}
    for i, svc in enumerate(services):
        names = [v["name"] for v in svc.get("volumes") or [] if v.get("single_writer")]
        found = single_writer_refusal(names, int(svc.get("replicas", 1)), svc.get("strategy", "rolling"))
        if found is not None:
            return f"{prefix}/{i}/{found[0]}", found[1]
        for j, v in enumerate(svc.get("volumes") or []):
            if v.get("single_writer") and writers.setdefault(v["name"], svc["name"]) != svc["name"]:
                return f"{prefix}/{i}/volumes/{j}", f"the single-writer volume {v['name']} is mounted by two services"
        paths: list[str] = []
        for j, v in enumerate(svc.get("volumes") or []):  # one volume may have two paths; a path one mount
            if v["path"] in paths:
                return f"{prefix}/{i}/volumes/{j}/path", f"{v['path']} is already a mount path of this service"
            paths.append(v["path"])
        for j, b in enumerate(svc.get("binds") or []):
            if not allowed(b["host_path"], allow):
                where = (
                    ", ".join(allow)
                    if allow
                    else "none for this team: BERTH_BIND_MOUNT_ALLOW_TEAMS, BERTH_BIND_MOUNT_ALLOW"
                )
                return (
                    f"{prefix}/{i}/binds/{j}/host_path",
                    f"host bind mounts are allowed only under the paths the administrator lists ({where})",
                )
            if b["path"] in paths:
                return f"{prefix}/{i}/binds/{j}/path", f"{b['path']} is already a mount path of this service"
            paths.append(b["path"])
    return None


def scale_refusal(services: list[Mapping[str, Any]], replicas: Mapping[str, int]) -> tuple[str, str] | None:
    """Scaling a service with a single-writer volume above one replica is refused (field, why)."""
    for svc in services:
        names = [v["name"] for v in svc.get("volumes") or [] if v.get("single_writer")]
        found = single_writer_refusal(names, replicas.get(svc["name"], 1), "recreate")
        if found is not None:
            return f"/body/services/{svc['name']}", found[1]
    return None


def kept_volumes(services: list[Mapping[str, Any]], application_id: str) -> list[dict[str, str]]:
    """Every named volume of the desired state on every server that runs a service mounting it:
    ``{server_id, name, docker_name}``, in a stable order."""
    found: dict[tuple[str, str], None] = {}
    for svc in services:
        for server in svc.get("servers") or [LOCAL_SERVER]:
            for v in svc.get("volumes") or []:
                found.setdefault((str(server), str(v["name"])), None)
    return [
        {"server_id": server, "name": name, "docker_name": docker_volume_name(application_id, name)}
        for server, name in sorted(found)
    ]


def volume_key(application_id: str, server_id: str, volume: str) -> str:
    """The id a named volume on one server is known by in backups (32 hex digits, like a database's id):
    what retention groups its backups by and what its schedule is called."""
    return hashlib.sha256(f"volume/{application_id}/{server_id}/{volume}".encode()).hexdigest()[:32]


def mounting(services: list[Mapping[str, Any]], volume: str, server_id: str) -> list[str]:
    """The services that mount the named volume ``volume`` on ``server_id``."""
    return [
        str(svc["name"])
        for svc in services
        if server_id in (svc.get("servers") or [LOCAL_SERVER])
        and any(v["name"] == volume for v in svc.get("volumes") or [])
    ]
