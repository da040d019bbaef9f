"""The routes of a web service, one per routed port (``catalogue/port_hosts.py``): pure.

A service's own port keeps the service's route id (``names.route_id``), so an application that routes one
port per service keeps its routes as they were; each more routed port has a route of its own,
``<route id>_<port>`` (``_`` is in no service name, so it names no other service's route), on the hosts
given to that port, under that port's URL path prefix (``route_paths``). On ``local`` a replica publishes each routed port on a host port chosen before its
creation (recorded with it: Docker would choose another on every restart); on a remote server it is
reached on that server's Berth network at ``<container name>:<port>``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from berth_common.catalogue import ApplicationSpec, WebService
from berth_scheduler.domain import names
from berth_scheduler.domain.names import ROUTE_ID_RE
from berth_scheduler.domain.routing import LOCAL, RouteTarget


class Replica(Protocol):
    """A started replica as routes need it (``domain/containers.ContainerSpec``)."""

    @property
    def service(self) -> str: ...

    @property
    def replica(self) -> int: ...

    @property
    def server_id(self) -> str: ...

    def upstream_of(self, port: int) -> str | None: ...


def port_route_id(application_id: str, service: str, port: int) -> str:
    """The route id of a more routed ``port`` of ``service`` (a hashed one when the plain one is too long)."""
    found = f"{names.route_id(application_id, service)}_{port}"
    if ROUTE_ID_RE.fullmatch(found):
        return found
    digest = hashlib.sha256(f"{application_id}/{service}".encode()).hexdigest()[:32]
    return f"app-{digest}_{port}"


def routes_of(application_id: str, svc: WebService) -> list[tuple[str, int, tuple[str, ...]]]:
    """(route id, container port, hosts sorted and lowercased) of every routed port of ``svc``, its own
    port first (with the hosts no other port takes)."""
    out = []
    for port, hosts in svc.routed_ports():
        rid = (
            names.route_id(application_id, svc.name)
            if port == svc.port
            else port_route_id(application_id, svc.name, port)
        )
        out.append((rid, port, tuple(sorted({h.lower() for h in hosts}))))
    return out


def route_paths(application_id: str, svc: WebService) -> dict[str, str]:
    """The URL path prefix of each route of ``svc`` that has one (its port's own path, else the service's)."""
    return {rid: path for rid, port, _ in routes_of(application_id, svc) if (path := svc.routed_path(port)) is not None}


def route_ids(application_id: str, svc: WebService) -> list[str]:
    """The route ids of every routed port of ``svc``."""
    return [rid for rid, _, _ in routes_of(application_id, svc)]


def more_ports(svc: Any) -> list[int]:
    """The more routed ports of a service (none for a worker)."""
    return [p.port for p in svc.port_hosts] if isinstance(svc, WebService) else []


def recorded(value: Mapping[str, Any] | None) -> dict[int, int]:
    """A container record's ``more_ports`` (JSON: port as text -> host port) as numbers."""
    return {int(k): int(v) for k, v in (value or {}).items()}


def as_record(ports: Mapping[int, int]) -> dict[str, int] | None:
    """``more_ports`` as a container record stores it (None: none)."""
    return {str(k): int(v) for k, v in sorted(ports.items())} or None


def desired(application_id: str, spec: ApplicationSpec, ready: Sequence[Replica]) -> list[RouteTarget]:
    """Each web service's routes on every server that runs one of its replicas: that server's Traefik sends
    each routed port's hosts to the replicas on that server, at that port."""
    targets = []
    for svc in spec.services:
        if not isinstance(svc, WebService) or not svc.hosts:
            continue
        for route_id, port, hosts in routes_of(application_id, svc):
            mine = sorted((c for c in ready if c.service == svc.name and c.upstream_of(port)), key=lambda c: c.replica)
            for server in dict.fromkeys(c.server_id for c in mine):
                ups = tuple(u for c in mine if c.server_id == server and (u := c.upstream_of(port)))
                targets.append(RouteTarget(route_id, hosts, ups, server))
    return targets


def replica_upstream(row: Any, port: int | None, own: int | None = None) -> str | None:
    """A recorded replica's upstream at container ``port`` (``own``: the service's own port, when ``port``
    may be a more routed one): its host port on ``local``, its name on a remote server's network."""
    if row.server_id != LOCAL:
        return names.network_upstream(row.name, port) if port else None
    if own is not None and port != own:
        host = recorded(getattr(row, "more_ports", None)).get(port or 0)
        return names.upstream(host) if host else None
    return names.upstream(row.host_port) if row.host_port else None
