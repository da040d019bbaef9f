"""The outbound rule (pure): which hosts and addresses Berth may connect to on a team's behalf.

Berth makes requests that a team chooses the target of: notification webhooks and mail servers, git
remotes, image registries, S3 endpoints for backups, forge commit-status APIs. Without a rule, a team
could point one at the control plane's own loopback services, at a cloud's metadata service (and read the
machine's credentials) or at an address only the platform's host can reach (server-side request forgery).

The rule classifies an address into one category and refuses these always, unless an admin allowed them:

* ``loopback`` (127.0.0.0/8, ::1, the name ``localhost`` and ``*.localhost``): the platform's own services;
* ``link-local`` (169.254.0.0/16, fe80::/10) and ``metadata`` (169.254.169.254, fd00:ec2::254,
  100.100.100.200, the names ``metadata.google.internal`` and ``metadata.goog``): a cloud's metadata service;
* ``unspecified`` (0.0.0.0/8, ::): connecting there reaches the local host;
* ``multicast`` and ``reserved`` (every other address that is not globally routable: documentation and
  benchmarking ranges, 240.0.0.0/4, broadcast).

``private`` addresses (RFC 1918: 10/8, 172.16/12, 192.168/16; the shared 100.64/10; IPv6 unique local
fc00::/7) are allowed by default (``BERTH_OUTBOUND_PRIVATE=true``): Berth is self-hosted, and its users'
own git servers, registries, S3 stores and chat hooks usually live on the same private network as Berth.
A platform on a shared or cloud network turns them off and allows the few it needs by name or range.

An allowance is a CIDR (``10.1.2.0/24``, ``127.0.0.1/32``) or a host name (``git.corp.example``): an
address inside an allowed range, or any address of an allowed name, passes whatever its category. The
platform's allowance is ``BERTH_OUTBOUND_ALLOW``; an admin adds one per team (``PUT
/v1/teams/{id}/outbound``). A host is read the way resolvers and browsers read it, so a spelling cannot
hide an address: IPv4 in decimal, octal or hex and with fewer than four parts (``2130706433``,
``0x7f.1``, ``0177.0.0.1``), IPv4 inside IPv6 (``::ffff:127.0.0.1``, NAT64, 6to4), a trailing dot,
brackets and zone ids, international names (IDNA: full-width digits and dots become ASCII).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Category = Literal["public", "private", "loopback", "link-local", "metadata", "unspecified", "multicast", "reserved"]
ALWAYS_REFUSED: frozenset[Category] = frozenset(
    {"loopback", "link-local", "metadata", "unspecified", "multicast", "reserved"}
)

METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog"})
NAME_ADDRESSES: dict[str, IPAddress] = {
    "loopback": ipaddress.ip_address("127.0.0.1"),
    "metadata": ipaddress.ip_address("169.254.169.254"),
}
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_IPV4_PART = re.compile(r"^(0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*)$")


class HostError(ValueError):
    """A host that is not a host name or an address (the message says why, without quoting secrets)."""


@dataclass(frozen=True)
class Refusal:
    """Why one outbound target is refused: ``rule`` is the category, ``address`` what it was (an address
    or a name)."""

    rule: Category | Literal["name"]
    address: str

    @property
    def reason(self) -> str:
        what = {
            "loopback": "a loopback address",
            "link-local": "a link-local address",
            "metadata": "a cloud metadata address",
            "unspecified": "the unspecified address",
            "multicast": "a multicast address",
            "reserved": "a reserved (not routable) address",
            "private": "a private address (BERTH_OUTBOUND_PRIVATE is off)",
            "name": "a name that is refused",
            "public": "an address",
        }[self.rule]
        return (
            f"outbound rule: {self.address} is {what}; an admin can allow it "
            "(BERTH_OUTBOUND_ALLOW, or the team's outbound allowance)"
        )


def _ipv4_loose(host: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address in any spelling ``inet_aton`` accepts (1 to 4 parts, decimal, 0-octal, 0x-hex),
    or None when ``host`` is not one."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_IPV4_PART.fullmatch(p) for p in parts):
        return None
    values = []
    for p in parts:
        if p[:2] in ("0x", "0X"):
            values.append(int(p[2:] or "0", 16))
        elif len(p) > 1 and p.startswith("0"):
            values.append(int(p, 8))
        else:
            values.append(int(p))
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(values)):
        raise HostError("is an IPv4 address with a part out of range")
    number = last
    for i, v in enumerate(head):
        number |= v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def normalize_host(host: str) -> str | IPAddress:
    """A host as resolvers read it: an address (any spelling), or a lowercase ASCII name without a trailing
    dot. Raises :class:`HostError` for what is neither."""
    value = host.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    if ":" in value:
        try:
            return ipaddress.IPv6Address(value.split("%", 1)[0])
        except ValueError:
            raise HostError("is not a valid IPv6 address") from None
    try:
        value = value.encode("idna").decode("ascii") if not value.isascii() else value
    except UnicodeError:
        raise HostError("is not a valid international host name") from None
    value = value.lower().rstrip(".")
    if not value:
        raise HostError("is empty")
    found = _ipv4_loose(value)
    if found is not None:
        return found
    if _IPV4_PART.fullmatch(value.rsplit(".", 1)[-1]) or value.rsplit(".", 1)[-1].isdigit():
        raise HostError("ends in a number but is not an IPv4 address")
    if len(value) > 253 or not all(_LABEL.fullmatch(label) for label in value.split(".")):
        raise HostError("is not a valid host name")
    return value


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # IPv4-compatible ::a.b.c.d (deprecated, still routed by some stacks)
        return ipaddress.IPv4Address(int(ip))
    return None


def classify(ip: IPAddress) -> Category:
    """The category of one address (an IPv4 address inside an IPv6 one is classified as that IPv4)."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            return classify(inner)
    if ip in METADATA_ADDRESSES:
        return "metadata"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.IPv4Network("0.0.0.0/8")):
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if any(ip in net for net in PRIVATE_NETWORKS if net.version == ip.version):
        return "private"
    if not ip.is_global:
        return "reserved"
    return "public"


def name_category(name: str) -> Category:
    """The category of a (normalized) host name before it is resolved: ``localhost`` and the metadata names
    are known; any other name is ``public`` until its addresses say otherwise."""
    if name == "localhost" or name.endswith(".localhost"):
        return "loopback"
    if name in METADATA_NAMES:
        return "metadata"
    return "public"


def parse_allowance(entries: Iterable[str]) -> tuple[tuple[IPNetwork, ...], frozenset[str]]:
    """(networks, host names) from allowance entries: CIDRs or addresses, and host names. Raises
    ``ValueError`` naming the first bad entry."""
    nets: list[IPNetwork] = []
    names: set[str] = set()
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        try:
            nets.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        try:
            host = normalize_host(entry)
        except HostError as exc:
            raise ValueError(f"{entry!r} is neither a CIDR nor a host name ({exc})") from None
        if isinstance(host, str):
            names.add(host)
        else:
            nets.append(ipaddress.ip_network(host))
    return tuple(nets), frozenset(names)


def split_setting(value: str) -> list[str]:
    """Entries of a comma- or space-separated setting such as ``BERTH_OUTBOUND_ALLOW``."""
    return [e for e in re.split(r"[,\s]+", value) if e]


@dataclass(frozen=True)
class OutboundPolicy:
    """Decides about one team's outbound targets: the platform's setting plus the team's allowance."""

    allow_private: bool = True
    networks: tuple[IPNetwork, ...] = ()
    names: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_entries(cls, entries: Iterable[str], *, allow_private: bool = True) -> OutboundPolicy:
        nets, names = parse_allowance(entries)
        return cls(allow_private=allow_private, networks=nets, names=names)

    def with_allowance(self, entries: Iterable[str]) -> OutboundPolicy:
        """This policy widened by a team's allowance entries."""
        nets, names = parse_allowance(entries)
        return OutboundPolicy(self.allow_private, self.networks + nets, self.names | names)

    def _refused(self, category: Category) -> bool:
        return category in ALWAYS_REFUSED or (category == "private" and not self.allow_private)

    def check_address(self, ip: IPAddress, name: str | None = None) -> Refusal | None:
        """None when ``ip`` may be connected to (``name``: the allowed host it was resolved from, if any)."""
        if name is not None and name in self.names:
            return None
        inner = _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
        for candidate in (ip, inner) if inner is not None else (ip,):
            if any(candidate.version == net.version and candidate in net for net in self.networks):
                return None
        category = classify(ip)
        return Refusal(category, str(ip)) if self._refused(category) else None

    def check_host(self, host: str) -> Refusal | None:
        """The check of a host as written (validation time): an address in any spelling is checked as one;
        a name is refused when it is a known loopback or metadata name. Raises :class:`HostError`."""
        found = normalize_host(host)
        if not isinstance(found, str):
            return self.check_address(found)
        if found in self.names:
            return None
        category = name_category(found)
        if category in NAME_ADDRESSES and self.check_address(NAME_ADDRESSES[category]) is None:
            return None  # ``localhost`` is 127.0.0.1: allowed where that address is
        return Refusal(category, found) if self._refused(category) else None

    def check_url(self, url: str) -> Refusal | None:
        """:meth:`check_host` of a URL's host (``scheme://[user@]host[:port]/...`` or scp-like ``user@host:path``);
        raises :class:`HostError` when it names no host."""
        host = url_host(url)
        return self.check_host(host)


_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(\[[^\]]+\]|[^:/]+):(?!//)")


def url_host(url: str) -> str:
    """The host a URL names, as written (``http(s)://``, ``ssh://``, ``git://`` or scp-like ``git@host:path``)."""
    if "://" in url:
        try:
            host = urlsplit(url).hostname
        except ValueError:
            raise HostError("is not a valid URL") from None
        if not host:
            raise HostError("names no host")
        return host
    m = _SCP_LIKE.match(url)
    if m is None:
        raise HostError("names no host")
    return m.group(1)
