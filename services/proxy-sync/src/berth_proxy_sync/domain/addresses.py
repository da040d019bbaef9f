"""The local server's addresses for the DNS check before ACME, as data: what the machine's interfaces hold
(from ``ip -j addr`` or ``/proc/net/if_inet6``), less what no public DNS record points at, plus the public
addresses the operator names.

A host served by the control plane's machine must resolve to one of its addresses. The machine's own
addresses are those of its interfaces, except loopback, link-local, multicast and the unspecified address,
and except those of Docker's own interfaces (``docker0``, ``docker_gwbridge``, a network's ``br-<id>``,
``veth...``): a container network's gateway is never where a public record points. A machine behind NAT
does not see its public address on any interface: the operator names it in ``BERTH_PUBLIC_ADDRESSES``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable

DOCKER_INTERFACE = re.compile(r"(?:docker\d*|docker_gwbridge|br-[0-9a-f]{12}|veth[0-9a-f]+)")
Interface = tuple[str, str]  # (interface name, address)


def from_ip_json(text: str) -> list[Interface]:
    """The (interface, address) pairs of ``ip -j addr``'s output."""
    pairs: list[Interface] = []
    for link in json.loads(text):
        name = str(link.get("ifname", ""))
        for info in link.get("addr_info", []):
            if info.get("family") in ("inet", "inet6") and info.get("local"):
                pairs.append((name, str(info["local"])))
    return pairs


def from_if_inet6(text: str) -> list[Interface]:
    """The (interface, address) pairs of ``/proc/net/if_inet6`` (address as 32 hex digits, then index,
    prefix length, scope, flags, interface name)."""
    pairs: list[Interface] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 6 and re.fullmatch(r"[0-9a-fA-F]{32}", fields[0]):
            pairs.append((fields[5], str(ipaddress.IPv6Address(bytes.fromhex(fields[0])))))
    return pairs


def reachable(address: str) -> bool:
    """Whether a DNS record may point at ``address``: not loopback, link-local, multicast or unspecified."""
    ip = ipaddress.ip_address(address.split("%")[0])
    return not (ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified)


def parse_addresses(text: str, setting: str) -> list[str]:
    """Addresses separated by commas or spaces, each checked (ValueError naming ``setting`` otherwise)."""
    out = []
    for item in re.split(r"[,\s]+", text.strip()):
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_address(item)))
        except ValueError:
            raise ValueError(f"{setting}: {item!r} is not an IP address") from None
    return out


def server_addresses(interfaces: Iterable[Interface], public: Iterable[str] = ()) -> list[str]:
    """The addresses a host served here may resolve to: the interfaces' reachable ones (Docker's own left
    out) and ``public``; each once, IPv4 first, in address order."""
    found = {str(ipaddress.ip_address(a)) for a in public}
    for name, address in interfaces:
        if not DOCKER_INTERFACE.fullmatch(name) and reachable(address):
            found.add(str(ipaddress.ip_address(address.split("%")[0])))
    ips = [ipaddress.ip_address(a) for a in found]
    return [str(ip) for ip in sorted(ips, key=lambda ip: (ip.version, int(ip)))]
