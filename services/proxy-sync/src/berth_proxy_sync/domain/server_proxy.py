"""A remote server's Traefik as data: where its files live, the Docker calls that make it, and whether the
container found on the server is the one wanted.

Each server runs its own Traefik container (``berth_common.traefik.server_container``, in the network namespace
of a holder that is on the server's Berth network and published on the server's web port:
``domain/proxy_handover.py``); its API is reached only over SSH, on that network. Every call is built here
and executed by ``adapters/server_proxy.py``; tests compare them exactly.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from berth_common import fleet, labels
from berth_common import traefik as tr

API = "/v1.41"
CONTAINER = "berth-traefik"  # the server's Traefik container
SERVER_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
GATEWAY_NETWORK = "docker_gwbridge"  # the bridge a container on an overlay network also has, on its host


class ServerProxyError(RuntimeError):
    """The server's Traefik could not be set up or reached; the message is for a person."""


@dataclass(frozen=True)
class Call:
    """One Engine API request: method, path (with its query), JSON body."""

    method: str
    path: str
    body: dict[str, Any] | None = None


def server_dir(root: str, server_id: str) -> str:
    """The folder on the server holding its Traefik's static file and dynamic directory: one per server id
    under ``root`` (servers sharing a file system never mix their routes)."""
    if not posixpath.isabs(root) or ".." in root.split("/"):
        raise ValueError(f"not an absolute directory: {root!r}")
    if not SERVER_ID_RE.fullmatch(server_id):
        raise ValueError(f"not a server id: {server_id!r}")
    return posixpath.join(root.rstrip("/") or "/", server_id)


def network_create(name: str = fleet.SERVER_NETWORK) -> Call:
    return Call(
        "POST",
        f"{API}/networks/create",
        {"Name": name, "Driver": "bridge", "CheckDuplicate": True, "Labels": {labels.MANAGED: "true"}},
    )


def network_inspect(name: str = fleet.SERVER_NETWORK) -> Call:
    return Call("GET", f"{API}/networks/{quote(name, safe='')}")


def image_inspect(tag: str) -> Call:
    return Call("GET", f"{API}/images/{quote(tag, safe='')}/json")


def container_inspect(name: str) -> Call:
    return Call("GET", f"{API}/containers/{quote(name, safe='')}/json")


def https_options(websecure_port: int | None, acme: tr.Acme | None) -> dict[str, Any]:
    """``server_container``'s HTTPS arguments: the published HTTPS port, Traefik's ACME environment (the CA
    bundle at its path in the container, a DNS provider's credentials) and whether the bundle is bound."""
    if websecure_port is None:
        return {}
    env = tr.server_acme(acme).env() if acme is not None else {}
    return {"websecure_port": websecure_port, "env": env, "ca_bundle": bool(acme and acme.ca_bundle)}


LOG_TAIL_LINES = 2000  # the container log lines read for a certificate failure's reason


def container_logs(name: str = CONTAINER, tail: int = LOG_TAIL_LINES) -> Call:
    """The last ``tail`` lines of the container's output, both streams (Traefik logs there)."""
    return Call("GET", f"{API}/containers/{quote(name, safe='')}/logs?stdout=1&stderr=1&tail={int(tail)}")


def demux_logs(raw: bytes) -> str:
    """The text of a container log answer: the engine's multiplexed frames (a header of 8 bytes: the
    stream, three zeros, the payload's size big-endian) joined in order; an answer that is not framed (a
    container with a TTY) as it is."""
    out: list[bytes] = []
    at = 0
    while at + 8 <= len(raw):
        stream, size = raw[at], int.from_bytes(raw[at + 4 : at + 8], "big")
        if stream not in (0, 1, 2) or raw[at + 1 : at + 4] != b"\0\0\0" or at + 8 + size > len(raw):
            return raw.decode(errors="replace")
        out.append(raw[at + 8 : at + 8 + size])
        at += 8 + size
    if at != len(raw):
        return raw.decode(errors="replace")
    return b"".join(out).decode(errors="replace")


def container_start(name: str) -> Call:
    return Call("POST", f"{API}/containers/{quote(name, safe='')}/start")


def container_remove(name: str) -> Call:
    return Call("DELETE", f"{API}/containers/{quote(name, safe='')}?force=true")


# Waits before making the container again when its start found no network: a Swarm's overlay network made
# moments before is known by name at once but attachable only once the manager has allocated it.
NETWORK_SETTLE_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)


def network_settling(message: str) -> bool:
    """Whether a failed start (the engine's answer) says the container's network is not there (yet)."""
    text = message.lower()
    return "network" in text and "not found" in text


def running(info: dict[str, Any]) -> bool:
    return bool((info.get("State") or {}).get("Running"))


def api_address(info: dict[str, Any]) -> str:
    """The container's address on the server's Berth network (where its API entry point listens)."""
    network = ((info.get("NetworkSettings") or {}).get("Networks") or {}).get(fleet.SERVER_NETWORK) or {}
    address = network.get("IPAddress")
    if not address:
        raise ServerProxyError(f"the Traefik container has no address on the {fleet.SERVER_NETWORK} network")
    return str(address)


def on_overlay(network: dict[str, Any] | None) -> bool:
    """Whether the server's Berth network (``GET /networks/berth``) is a Swarm's overlay network (a Swarm
    manager's Traefik routes to task addresses on it)."""
    return bool(network) and (network or {}).get("Driver") == "overlay"


def gateway_address(network: dict[str, Any] | None, container_id: str) -> str:
    """The container's address on ``docker_gwbridge`` (``GET /networks/docker_gwbridge``): where the host,
    and so a connection forwarded over SSH, reaches a container whose Berth network is an overlay."""
    entry = ((network or {}).get("Containers") or {}).get(container_id) or {}
    address = str(entry.get("IPv4Address") or "").split("/", 1)[0]
    if not address:
        raise ServerProxyError(f"the Traefik container has no address on {GATEWAY_NETWORK}")
    return address
