"""Forwarded headers (``X-Forwarded-For``, ``X-Forwarded-Proto``), believed only from trusted proxies.

A request's peer is the address its TCP connection came from. When that peer lies in one of the trusted
networks (``BERTH_TRUSTED_PROXIES``, CIDR notation; empty by default), the proxy's word is taken: the caller
is the last ``X-Forwarded-For`` hop that is not itself a trusted proxy, and the scheme is the proxy's
``X-Forwarded-Proto``. From any other peer both headers are ignored, so a client cannot write another
address into the audit log or spread its failed attempts over made-up addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_ADDRESS = 64  # characters of an address kept (the audit log's column)


def networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """The trusted networks of ``entries`` (``10.0.0.0/8``, ``127.0.0.1``, ``::1``); ValueError names a bad one."""
    found: list[Network] = []
    for entry in entries:
        text = entry.strip()
        if not text:
            continue
        try:
            found.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"not an address or CIDR network: {text!r}") from None
    return tuple(found)


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    if not trusted:
        return False
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in trusted)


def client_address(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The caller's address: the peer, or behind a trusted proxy the last forwarded hop not a proxy."""
    if not _trusted(peer, trusted):
        return peer[:MAX_ADDRESS]
    hops = [h.strip() for h in (forwarded_for or "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop[:MAX_ADDRESS]
    return peer[:MAX_ADDRESS]


def scheme(peer: str, own: str, forwarded_proto: str | None, trusted: Sequence[Network]) -> str:
    """The scheme the client used: the connection's own, or a trusted proxy's first ``X-Forwarded-Proto``."""
    if forwarded_proto and _trusted(peer, trusted):
        told = forwarded_proto.split(",")[0].strip().lower()
        if told in ("http", "https"):
            return told
    return own
