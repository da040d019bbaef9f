"""Where each replica of a deployment runs: pure placement over the servers a service names.

Each server a service names runs at least one replica (a service with fewer replicas than servers gets one
per server); the replicas are spread over the servers in turn, in the order the servers are named, so
replica ``n`` runs on server ``(n - 1) mod len(servers)``. A service that names no server runs on
``local``, the control plane's own engine. Replica numbers and servers are stable for a given spec, so a
restarted rollout finds every replica where it put it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from berth_common.catalogue import ApplicationSpec, WebService, WorkerService
from berth_common.catalogue.specs import servers_of


@dataclass(frozen=True)
class Slot:
    """One replica to run: its service, its number (from 1) and its server."""

    service: WebService | WorkerService
    replica: int
    server_id: str


def server_of(servers: Sequence[str], replica: int) -> str:
    """The server replica number ``replica`` (from 1) runs on: the servers in turn."""
    return servers[(replica - 1) % len(servers)]


def spread(servers: Sequence[str], replicas: int) -> list[str]:
    """The server of each replica, in replica order: at least one per server, then in turn."""
    if not servers:
        raise ValueError("a service runs on at least one server")
    if len(set(servers)) != len(servers):
        raise ValueError(f"a server is named twice: {list(servers)}")
    count = max(replicas, len(servers))
    return [server_of(servers, n) for n in range(1, count + 1)]


def replica_count(service: WebService | WorkerService) -> int:
    """How many replicas the service runs (raised to one per server)."""
    return max(service.replicas, len(servers_of(service)))


def slots(spec: ApplicationSpec) -> list[Slot]:
    """Every replica of a deployment of ``spec``, service by service, in replica order."""
    return [
        Slot(svc, n, server)
        for svc in spec.services
        for n, server in enumerate(spread(servers_of(svc), svc.replicas), start=1)
    ]


def servers_in(spec: ApplicationSpec) -> list[str]:
    """The servers a deployment of ``spec`` runs on, each once, in the order they first appear."""
    return list(dict.fromkeys(s.server_id for s in slots(spec)))
