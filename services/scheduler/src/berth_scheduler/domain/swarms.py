"""Forming a Swarm, as decisions on what the engines say: where each node stands, what to do with it, and
the Swarm's nodes as Berth shows them. Pure; the use case asks the engines and carries the decisions out.

A node's standing comes from ``GET /info`` (its ``Swarm`` part): not in a Swarm (``inactive``), a manager
or a worker of a cluster (``active``), or on its way in (``pending``). Forming is idempotent: a worker
the manager already lists is left as it is, one in another Swarm is refused (it must leave that one
first, which Berth never does on its own).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Literal

from berth_common.redaction import mask

GATEWAY_NETWORK = "docker_gwbridge"  # the bridge every task on an overlay also has, on its own node


class SwarmProblem(Exception):
    """Why the Swarm cannot be formed, for a person."""


@dataclass(frozen=True)
class Standing:
    """Where one engine stands, from its ``GET /info``."""

    state: str  # inactive, pending, active, error, locked
    node_id: str
    cluster_id: str
    manager: bool
    node_addr: str

    @property
    def in_swarm(self) -> bool:
        return self.state == "active"


def standing(info: dict[str, Any]) -> Standing:
    swarm = info.get("Swarm") or {}
    return Standing(
        state=str(swarm.get("LocalNodeState") or "inactive"),
        node_id=str(swarm.get("NodeID") or ""),
        cluster_id=str(((swarm.get("Cluster") or {}).get("ID")) or ""),
        manager=bool(swarm.get("ControlAvailable")),
        node_addr=str(swarm.get("NodeAddr") or ""),
    )


def manager_step(name: str, s: Standing, adopt: bool) -> Literal["init", "use"]:
    """What to do with the manager server ``name``: make a Swarm there, or use the one it manages."""
    if s.state == "inactive":
        if adopt:
            raise SwarmProblem(f"server {name} is not in a Swarm: there is nothing to adopt (form one instead)")
        return "init"
    if s.state != "active":
        raise SwarmProblem(f"server {name}'s Swarm state is {s.state}: fix the engine, then form again")
    if not s.manager:
        raise SwarmProblem(f"server {name} is a Swarm worker, not a manager: name its manager instead")
    return "use"


def worker_step(name: str, s: Standing, member_ids: set[str]) -> Literal["join", "keep"]:
    """What to do with worker server ``name`` for the Swarm whose nodes are ``member_ids`` (a worker's own
    ``/info`` does not name its cluster: it is in this Swarm when the manager lists its node id)."""
    if s.state == "inactive":
        return "join"
    if s.state == "active" and s.node_id in member_ids:
        return "keep"
    if s.state == "active":
        raise SwarmProblem(f"server {name} is already in another Swarm: make it leave that one first")
    raise SwarmProblem(f"server {name}'s Swarm state is {s.state}: fix the engine, then form again")


def advertise_address(host: str) -> str:
    """The address a server advertises to the Swarm: its host, which must be an IP address here."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        raise SwarmProblem(f"server address {host!r} is not an IP address: a Swarm node needs one") from None


def node_address(node: dict[str, Any]) -> str:
    """The address a node is reached at (a manager's may show 0.0.0.0 in ``Status``: its ``ManagerStatus``)."""
    addr = str((node.get("Status") or {}).get("Addr") or "")
    if addr in ("", "0.0.0.0"):
        addr = str((node.get("ManagerStatus") or {}).get("Addr") or "").rsplit(":", 1)[0]
    return addr


def nodes_view(nodes: list[dict[str, Any]], servers_by_address: dict[str, str]) -> list[dict[str, Any]]:
    """Each node as ``SwarmNode`` fields, managers first, then by host name; ``server_id`` from its address."""
    out = []
    for node in nodes:
        spec = node.get("Spec") or {}
        address = node_address(node)
        out.append(
            {
                "node_id": str(node.get("ID", "")),
                "server_id": servers_by_address.get(address),
                "hostname": str((node.get("Description") or {}).get("Hostname") or ""),
                "address": address,
                "role": "manager" if spec.get("Role") == "manager" else "worker",
                "state": str((node.get("Status") or {}).get("State") or ""),
                "availability": str(spec.get("Availability") or ""),
            }
        )
    return sorted(out, key=lambda n: (n["role"] != "manager", n["hostname"], n["node_id"]))


def network_problem(network: dict[str, Any] | None, name: str) -> str | None:
    """Why an existing network named ``name`` on the manager cannot be the Swarm's (None: it can, or none)."""
    if network is None:
        return None
    if network.get("Driver") != "overlay" or not network.get("Attachable"):
        return f"the manager has a network {name!r} that is not an attachable overlay network: remove or rename it"
    return None


def gateway_address(network: dict[str, Any], container_id: str) -> str | None:
    """A task container's address on its node's ``docker_gwbridge`` (from ``GET /networks/docker_gwbridge``
    on that node): the node itself reaches the task there, which Berth's readiness check uses."""
    entry = (network.get("Containers") or {}).get(container_id)
    if not entry:
        return None
    return str(entry.get("IPv4Address") or "").split("/", 1)[0] or None


def scrub(text: str, *secrets: str) -> str:
    """``text`` with every secret masked (the shared rule): what an engine said may repeat what it was sent."""
    return mask(text, secrets)
