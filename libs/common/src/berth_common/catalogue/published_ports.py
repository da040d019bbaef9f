"""A compose service's ports published on the server it runs on (part of the application's spec,
``catalogue/composed.py``): a game server, an SMTP relay, a DNS server or an MQTT broker reached on a port
of the server's own addresses, not through Berth's HTTP proxy.

The api carries a compose ``ports:`` entry with a published port only for a team an administrator allowed
published ports within a range, and claims each (server, port, protocol) for one application (another
application, or a database's public port, asking the same one is refused). The scheduler binds it on every
address of the server (IPv4 and IPv6; a Swarm task in host mode, on its node). Two containers cannot bind one
port, so such a service runs one replica on one server and is recreated (the old container stops before the
new one starts), never rolled side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from berth_common.catalogue.spec_base import Spec

__all__ = ["PortProtocol", "PublishedPort", "published_refusal"]

PortProtocol = Literal["tcp", "udp"]


class PublishedPort(Spec):
    """The container's port ``target`` published on the server's port ``published`` (``protocol``)."""

    target: int = Field(ge=1, le=65535)
    published: int = Field(ge=1, le=65535)
    protocol: PortProtocol = "tcp"


def published_refusal(ports: Sequence[PublishedPort], replicas: int, servers: Sequence[str]) -> str | None:
    """Why a service with the published ``ports`` cannot run ``replicas`` replicas on ``servers`` (empty: the
    built-in one), or None: a port is published once per service and protocol, by one container on one
    server."""
    if not ports:
        return None
    seen: set[tuple[int, str]] = set()
    for p in ports:
        if (p.published, p.protocol) in seen:
            return f"the port {p.published}/{p.protocol} is published twice"
        seen.add((p.published, p.protocol))
    which = ", ".join(f"{p.published}/{p.protocol}" for p in ports)
    if replicas != 1:
        return f"a service publishing ports ({which}) runs 1 replica: two containers cannot bind one port"
    if len(servers) > 1:
        return f"a service publishing ports ({which}) runs on one server: its one replica binds them there"
    return None
