"""More routed ports of one web service (part of the application's spec, ``catalogue/specs.py``): a compose
service serving two ports on two hosts, as MinIO does (its API on 9000, its console on 9001).

The service's ``port`` is routed on its ``hosts``, except those a ``PortHosts`` entry gives another of the
container's ports: each such port is routed on its own hosts (a route of its own), under its own URL path
prefix when it has one (``path``: an API port under ``/api`` of the web port's host), and a replica is
ready only once each of its routed ports answers. A host the service lists in ``shared_hosts`` stays with
its own port as well, under the own port's path: one host serves two ports of the service by path (``/``
the web port, ``/api`` the API port), as long as no host and path goes to two ports.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field, field_validator

from berth_common.catalogue.spec_base import Spec
from berth_common.values import RouteHost, RoutePath

__all__ = ["PortHosts", "port_hosts_refusal", "route_path_of"]


class PortHosts(Spec):
    """A container port of the service and the hosts routed to it (some of the service's ``hosts``);
    ``path``: the URL path prefix its route serves on them (``/``: the whole hosts; None: the service's
    ``path_prefix``, as its own port's route)."""

    port: int = Field(ge=1, le=65535)
    hosts: list[RouteHost] = Field(min_length=1, max_length=100)
    path: RoutePath | None = Field(default=None, exclude_if=lambda v: v is None)

    @field_validator("hosts")
    @classmethod
    def _lowercase(cls, value: list[str]) -> list[str]:
        return [h.lower() for h in value]


def port_hosts_refusal(
    port: int,
    hosts: Sequence[str],
    more: Sequence[PortHosts],
    path_prefix: str | None = None,
    shared: Sequence[str] = (),
) -> str | None:
    """Why a web service's more routed ports cannot be routed, or None: each is another port than the
    service's own and than each other, on hosts of the service, one host and path routed to one port only
    (``shared``: hosts the service's own port keeps although another port has them, under another path),
    and the service's own port keeps a host."""
    known = {h.lower() for h in hosts}
    seen_ports = {port}
    taken: set[str] = set()
    for entry in more:
        if entry.port in seen_ports:
            return f"port {entry.port} is routed twice"
        seen_ports.add(entry.port)
        for host in entry.hosts:
            if host not in known:
                return f"the host {host} of port {entry.port} is not a host of the service"
            taken.add(host)
    kept = {h.lower() for h in shared}
    for host in sorted(kept - known):
        return f"the shared host {host} is not a host of the service"
    own = (known - taken) | kept
    routes = [(own, route_path_of(None, path_prefix)), *((set(e.hosts), route_path_of(e, path_prefix)) for e in more)]
    seen: set[tuple[str, str | None]] = set()
    for found, path in routes:
        for host in sorted(found):
            if (host, path) in seen:
                return f"the host {host} is routed to two ports under the path {path or '/'}"
            seen.add((host, path))
    if more and not own:
        return f"no host is left to the service's port {port}"
    return None


def route_path_of(entry: PortHosts | None, own: str | None) -> str | None:
    """The URL path prefix of a routed port's route (None: the whole hosts): ``entry``'s own path, else the
    service's (``own``, its ``path_prefix``; ``entry`` None: the service's own port)."""
    path = own if entry is None or entry.path is None else entry.path
    return None if path in (None, "/") else path
