"""A pinned subnet against a server's own routes and addresses. Pure.

Docker refuses a subnet that overlaps another of its networks, but not one the server itself routes: a
private network pinned to the server's LAN (``192.168.1.0/24``) would take that LAN into the application's
bridge, cutting the server off it (and off the control plane, if its SSH comes from there). Before the
private network is made on a server, a short-lived helper (:func:`helper_body`: Berth's busybox ``cat`` in the
host's network namespace, read-only, no capability) prints the server's ``/proc/net/route`` (its main
routing table, the connected subnet of each address included) and ``/proc/net/fib_trie`` (for the server's
own addresses, a ``/32`` with no route of its own among them). :func:`overlap` says why the subnet cannot be
made there, or None.

Left out: the default route (every subnet is in it), loopback's ``127/8``, and the routes of the bridge of
the application's own network made before (a redeploy finds its network, and its route, there).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass
from typing import Any

from berth_common import labels as label
from berth_common.images import BUSYBOX_IMAGE

ROUTES_ARGV = ["cat", "/proc/net/route", "/proc/net/fib_trie"]
ROUTES_LABEL = "berth.host-routes-helper"  # on the helper: what it reads
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")


@dataclass(frozen=True, order=True)
class HostRoute:
    """One route of the server's main table: ``network`` through ``device`` (``*`` for none: unreachable)."""

    network: ipaddress.IPv4Network
    device: str


@dataclass(frozen=True)
class HostNetwork:
    """What the helper read: the server's routes and its own addresses."""

    routes: tuple[HostRoute, ...]
    addresses: tuple[ipaddress.IPv4Address, ...]


def helper_body() -> dict[str, Any]:
    """The ``POST /containers/create`` body of the helper that prints the server's routes and addresses:
    busybox ``cat`` in the host's network namespace (``/proc/net`` is the namespace's), nothing else shared,
    its root read-only, every capability dropped, as nobody."""
    return {
        "Image": BUSYBOX_IMAGE,
        "Cmd": list(ROUTES_ARGV),
        "Entrypoint": [],
        "User": "65534:65534",
        "AttachStdout": True,
        "AttachStderr": True,
        "Tty": False,
        "Labels": {label.MANAGED: "true", ROUTES_LABEL: "routes"},
        "HostConfig": {
            "NetworkMode": "host",
            "ReadonlyRootfs": True,
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"],
            "AutoRemove": False,
        },
    }


def _hex_ipv4(text: str) -> ipaddress.IPv4Address:
    """An address of ``/proc/net/route``: 8 hex digits in the host's byte order (little-endian here)."""
    if len(text) != 8:
        raise ValueError(text)
    return ipaddress.IPv4Address(socket.inet_ntoa(struct.pack("<I", int(text, 16))))


def parse_routes(text: str) -> list[HostRoute]:
    """The routes of ``/proc/net/route`` (lines of 11 tab-separated fields after its header; other lines,
    the fib_trie's, are skipped), the default route and loopback left out; sorted, each once."""
    found: set[HostRoute] = set()
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) < 11 or fields[0].strip() == "Iface":
            continue
        try:
            destination, mask = _hex_ipv4(fields[1].strip()), _hex_ipv4(fields[7].strip())
            network = ipaddress.IPv4Network(f"{destination}/{mask}", strict=False)
        except ValueError:
            continue
        if network.prefixlen == 0 or network.subnet_of(LOOPBACK):
            continue
        found.add(HostRoute(network, fields[0].strip() or "*"))
    return sorted(found)


def parse_addresses(text: str) -> list[ipaddress.IPv4Address]:
    """The server's own addresses of ``/proc/net/fib_trie`` (a ``|-- <address>`` line followed by ``/32 host
    LOCAL``), loopback's left out; sorted, each once."""
    found: set[ipaddress.IPv4Address] = set()
    last: ipaddress.IPv4Address | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if "|-- " in line:
            try:
                last = ipaddress.IPv4Address(line.rsplit("|-- ", 1)[1].strip())
            except ValueError:
                last = None
        elif stripped == "/32 host LOCAL" and last is not None and last not in LOOPBACK:
            found.add(last)
    return sorted(found)


def parse(text: str) -> HostNetwork:
    """The helper's output (``/proc/net/route`` then ``/proc/net/fib_trie``) as routes and addresses."""
    return HostNetwork(tuple(parse_routes(text)), tuple(parse_addresses(text)))


def own_bridge(found: dict[str, Any]) -> str | None:
    """The Linux bridge of an existing network (its inspection; empty: none): its ``bridge.name`` option, or
    Docker's ``br-<first 12 of its id>``."""
    if not found:
        return None
    named = (found.get("Options") or {}).get(BRIDGE_NAME_OPTION)
    return str(named) if named else f"br-{str(found.get('Id') or '')[:12]}"


def overlap(subnet: str, server: str, host: HostNetwork, own: str | None = None) -> str | None:
    """Why the pinned ``subnet`` cannot be made on ``server`` (in words): the first route of the server it
    overlaps (those through ``own``, the bridge of the application's network made before, do not count),
    or else an address of the server in it (not one of that bridge's); None when it overlaps neither."""
    pinned = ipaddress.IPv4Network(subnet)
    for route in host.routes:
        if route.device != own and route.network.overlaps(pinned):
            return (
                f"the compose file pins the subnet {pinned} for the application's network, which overlaps the "
                f"route {route.network} dev {route.device} of {server}: the server would send that range into "
                "the application's network and lose its own; pin a subnet the server does not use"
            )
    ours = [route.network for route in host.routes if route.device == own]
    for address in host.addresses:
        if address in pinned and not any(address in network for network in ours):
            return (
                f"the compose file pins the subnet {pinned} for the application's network, which holds the "
                f"address {address} of {server}: pin a subnet the server does not use"
            )
    return None
