"""The machine's interface addresses (``domain/addresses.py`` decides which count): ``ip -j addr`` run by
argv, or, where iproute2 is missing, ``/proc/net/if_inet6`` and each interface's IPv4 address asked of the
kernel (``SIOCGIFADDR``: the interface's primary IPv4 address)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import struct
from pathlib import Path

from berth_common.logging import get_logger
from berth_proxy_sync.domain.addresses import Interface, from_if_inet6, from_ip_json

log = get_logger(__name__)

SIOCGIFADDR = 0x8915
IF_INET6 = Path("/proc/net/if_inet6")


async def interface_addresses(timeout_s: float = 5.0) -> list[Interface]:
    """Every (interface, address) pair of this machine's network namespace."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "ip", "-j", "addr", "show", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
        if proc.returncode == 0:
            return from_ip_json(out.decode())
    except (OSError, TimeoutError, ValueError) as exc:
        log.info("ip -j addr not usable: reading the kernel's tables", error=type(exc).__name__)
    return await asyncio.to_thread(_from_kernel)


def _from_kernel() -> list[Interface]:
    pairs: list[Interface] = []
    with contextlib.suppress(OSError):
        pairs += from_if_inet6(IF_INET6.read_text())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            try:
                answer = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:  # no IPv4 address on this interface
                continue
            pairs.append((name, socket.inet_ntoa(answer[20:24])))
    return pairs
