"""A compose service's ports published on its server (``catalogue/published_ports.py``), as data: the create
body's ``ExposedPorts`` and ``HostConfig.PortBindings`` entries of its container, and a Swarm service's
``EndpointSpec.Ports`` in host mode (the routing mesh is not used: the task's node binds the port). Pure.

A binding names no address (``HostIp: ""``): the engine publishes the port on every address of the server,
IPv4 and IPv6. Such a service is recreated, never rolled: its old container stops before the new one binds
the port (``recreated``), and a Swarm service updates stop-first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from berth_common.catalogue import ApplicationSpec, PublishedPort, WebService, WorkerService

Published = tuple[tuple[int, int, str], ...]  # (container port, server port, protocol)


def published(ports: Sequence[PublishedPort]) -> Published:
    """The ports as (container port, server port, protocol), in the spec's order."""
    return tuple((p.target, p.published, p.protocol) for p in ports)


def put_bindings(body: dict[str, Any], ports: Sequence[PublishedPort]) -> None:
    """Add the published ports to a create body (changed in place): each container port exposed, and bound
    to its server port on every address."""
    if not ports:
        return
    exposed = body.setdefault("ExposedPorts", {})
    bindings = body["HostConfig"].setdefault("PortBindings", {})
    for target, port, protocol in published(ports):
        key = f"{target}/{protocol}"
        exposed[key] = {}
        bindings.setdefault(key, []).append({"HostIp": "", "HostPort": str(port)})


def endpoint_ports(ports: Published) -> list[dict[str, Any]]:
    """A Swarm service's ``EndpointSpec.Ports``: each port published in host mode on the task's node."""
    return [
        {"Protocol": protocol, "TargetPort": target, "PublishedPort": port, "PublishMode": "host"}
        for target, port, protocol in ports
    ]


def recreated(spec: ApplicationSpec) -> list[str]:
    """The services that publish ports: their old container stops before the new one starts."""
    return [svc.name for svc in spec.services if svc.published_ports]


def taken(service: WebService | WorkerService, server_id: str) -> str:
    """Why a service's container could not start: a port it publishes is taken on the server."""
    which = ", ".join(f"{p.published}/{p.protocol}" for p in service.published_ports)
    return (
        f"service {service.name}: a port it publishes ({which}) is taken on server {server_id} by a process or "
        "container Berth does not run; free it, or publish another port"
    )


def taken_note(service: WebService | WorkerService, server_id: str) -> str:
    """The reason's note when a web replica never found its ports free (its published ones may be the taken)."""
    return f" ({taken(service, server_id)}?)" if service.published_ports else ""
