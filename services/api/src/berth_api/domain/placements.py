"""Where an application's services are placed, and how a drained server is replaced (pure).

A service names the servers it runs on in its ``servers`` list (empty: the built-in server ``local``), in
the application's desired state and in every deployment's snapshot. A server is in use while any of them
names it: the desired state (what the next deployment places), a deployment still running, or the live one.
A compose application's services come from its file, so its placement is kept apart (``compose_placement``:
a service of the file by its name there, and its servers) and given to the services at each translation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from berth_api.domain.compose.translate import berth_name
from berth_api.domain.problems import invalid_field
from berth_common.catalogue import docker_volume_name

LOCAL = "local"


@dataclass(frozen=True)
class KeptVolume:
    """A named volume of an application that stays on a drained server (its data is copied to the servers
    taking the service's place; the volume itself is never deleted implicitly)."""

    application_id: str
    name: str
    volume: str
    docker_name: str


@dataclass(frozen=True)
class Placed:
    """An application with services placed on a server."""

    application_id: str
    name: str
    services: tuple[str, ...]


def services_on(services: Iterable[Mapping[str, Any]], server_id: str) -> set[str]:
    """The names of ``services`` (a config's or a snapshot's) that name ``server_id``."""
    return {str(s["name"]) for s in services if server_id in (s.get("servers") or [])}


def replaced(servers: Sequence[str], drained: str, to: Sequence[str]) -> list[str]:
    """A service's servers with ``drained`` replaced by ``to`` where it stood (without ``to``: its other
    servers); when none is left, ``local``."""
    out: list[str] = []
    for server in servers:
        for s in to if server == drained else [server]:
            if s != drained and s not in out:
                out.append(s)
    return out or [LOCAL]


def drained_config(config: Mapping[str, Any], drained: str, to: Sequence[str]) -> dict[str, Any]:
    """The application's desired state with ``drained`` replaced in every service that names it (and in a
    compose application's placement, which its next translation gives the services again)."""
    services = [
        {**s, "servers": replaced(s["servers"], drained, to)} if drained in (s.get("servers") or []) else dict(s)
        for s in config["services"]
    ]
    out = {**config, "services": services}
    if config.get("compose_placement"):
        out["compose_placement"] = [
            {**p, "servers": replaced(p["servers"], drained, to)} if drained in p["servers"] else dict(p)
            for p in config["compose_placement"]
        ]
    return out


def compose_placed(config: Mapping[str, Any]) -> dict[str, Any]:
    """A compose application's configuration with each service on the servers its ``compose_placement``
    names (a service of the file by its name there; one not named runs on ``local``). A 422 naming the
    entry for a service the file does not deploy, or one placed twice."""
    if config.get("compose_translated") is None:
        return dict(config)  # a file of the repository not read yet: no services to place
    names = {str(s["name"]) for s in config["services"]}
    translated = config["compose_translated"].get("services") or []
    published = {str(s["name"]): s.get("published_ports") or [] for s in translated}
    placed: dict[str, list[str]] = {}
    for i, entry in enumerate(config.get("compose_placement") or []):
        name = berth_name(str(entry["service"]))
        if name not in names:
            raise invalid_field(
                f"/body/placement/{i}/service", f"the compose file deploys no service {entry['service']!r}"
            )
        if name in placed:
            raise invalid_field(f"/body/placement/{i}/service", f"the service {entry['service']} is placed twice")
        placed[name] = [str(server) for server in entry["servers"]]
        ports = published.get(name) or []
        if len(placed[name]) > 1 and ports:
            which = ", ".join(f"{p['published']}/{p['protocol']}" for p in ports)
            raise invalid_field(
                f"/body/placement/{i}/servers",
                f"the service {entry['service']} publishes ports on its server ({which}) and runs on one server: "
                "its one replica binds them there",
            )
    services = []
    for svc in config["services"]:
        own = {k: v for k, v in svc.items() if k != "servers"}
        services.append({**own, "servers": placed[svc["name"]]} if placed.get(svc["name"]) else own)
    return {**config, "services": services}


def placed_on(
    server_id: str,
    apps: Iterable[Mapping[str, Any]],
    snapshots: Mapping[str, Iterable[Mapping[str, Any]]],
) -> list[Placed]:
    """The applications placed on ``server_id``: by their desired state (``apps``: id, name, config) or by a
    deployment's snapshot that still runs or is live (``snapshots``: application id -> specs), by name."""
    out = []
    for app in apps:
        names = services_on(app["config"]["services"], server_id)
        for spec in snapshots.get(app["id"], ()):
            names |= services_on(spec.get("services") or [], server_id)
        if names:
            out.append(Placed(app["id"], app["name"], tuple(sorted(names))))
    return sorted(out, key=lambda p: p.name)


def volumes_on(application_id: str, name: str, config: Mapping[str, Any], server_id: str) -> list[KeptVolume]:
    """The named volumes the application's services placed on ``server_id`` (by its desired state) mount
    there, each once, in order."""
    found: dict[str, None] = {}
    for svc in config.get("services") or []:
        if server_id in (svc.get("servers") or []):
            for v in svc.get("volumes") or []:
                found.setdefault(str(v["name"]), None)
    return [KeptVolume(application_id, name, v, docker_volume_name(application_id, v)) for v in found]
