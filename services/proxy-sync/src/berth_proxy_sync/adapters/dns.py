"""Looking up a host's A and AAAA records: through a named DNS server (one UDP query per type, a tiny
client of RFC 1035's wire format) or, without one, the system's resolver.

A named server is what the tests use (pebble-challtestsrv's DNS, which the test ACME server asks too) and
what an operator whose machine resolves names differently from the world sets (a public resolver).
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
import struct

TYPES = {"A": 1, "AAAA": 28}


class DnsError(Exception):
    """The lookup itself failed (no answer, a malformed one, a server error other than NXDOMAIN)."""


def query(host: str, qtype: int, ident: int) -> bytes:
    """One recursive query for ``host`` (already a checked host name) and ``qtype``."""
    header = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
    name = b"".join(bytes([len(label)]) + label.encode("ascii") for label in host.rstrip(".").split(".")) + b"\0"
    return header + name + struct.pack("!HH", qtype, 1)


def _skip_name(data: bytes, pos: int) -> int:
    while True:
        if pos >= len(data):
            raise DnsError("truncated name")
        length = data[pos]
        if length & 0xC0 == 0xC0:
            return pos + 2
        if length == 0:
            return pos + 1
        pos += 1 + length


def parse(data: bytes, ident: int) -> list[str]:
    """The A/AAAA addresses of an answer (CNAME records are followed by the server; only addresses are
    taken). NXDOMAIN and an empty answer: no address."""
    if len(data) < 12:
        raise DnsError("short answer")
    rid, flags, qd, an, _, _ = struct.unpack("!HHHHHH", data[:12])
    if rid != ident:
        raise DnsError("answer to another query")
    rcode = flags & 0xF
    if rcode == 3:
        return []
    if rcode != 0:
        raise DnsError(f"DNS server answered rcode {rcode}")
    pos = 12
    for _ in range(qd):
        pos = _skip_name(data, pos) + 4
    found: list[str] = []
    for _ in range(an):
        pos = _skip_name(data, pos)
        if pos + 10 > len(data):
            raise DnsError("truncated record")
        rtype, _, _, rdlength = struct.unpack("!HHIH", data[pos : pos + 10])
        pos += 10
        rdata = data[pos : pos + rdlength]
        pos += rdlength
        if rtype == 1 and rdlength == 4:
            found.append(str(ipaddress.IPv4Address(rdata)))
        elif rtype == 28 and rdlength == 16:
            found.append(str(ipaddress.IPv6Address(rdata)))
    return found


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        if not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


async def _ask(server: tuple[str, int], host: str, qtype: int, timeout_s: float) -> list[str]:
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    last: Exception | None = None
    for _ in range(2):
        ident = secrets.randbelow(65536)
        transport, proto = await loop.create_datagram_endpoint(_Protocol, remote_addr=server, family=family)
        try:
            transport.sendto(query(host, qtype, ident))
            return parse(await asyncio.wait_for(proto.answer, timeout_s), ident)
        except (TimeoutError, OSError, DnsError) as exc:
            last = exc
        finally:
            transport.close()
    raise DnsError(f"no answer from {server[0]}:{server[1]}: {type(last).__name__}: {last}")


def parse_server(value: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``; the port 53 when left out) of a DNS server."""
    if value.startswith("["):
        addr, _, rest = value[1:].partition("]")
        port = rest.lstrip(":") or "53"
    elif value.count(":") == 1:
        addr, _, port = value.partition(":")
    else:
        addr, port = value, "53"
    ipaddress.ip_address(addr)
    return addr, int(port)


async def resolve(host: str, server: tuple[str, int] | None = None, timeout_s: float = 2.0) -> list[str]:
    """Every A and AAAA address of ``host``, sorted; [] when the name does not exist."""
    if server is not None:
        found = [a for t in TYPES.values() for a in await _ask(server, host, t, timeout_s)]
        return sorted(set(found))
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), timeout_s)
    except socket.gaierror:
        return []
    except TimeoutError:
        raise DnsError(f"the system resolver did not answer for {host} within {timeout_s:g}s") from None
    return sorted({str(info[4][0]) for info in infos})
