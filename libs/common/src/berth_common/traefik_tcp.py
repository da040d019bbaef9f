"""A TCP proxy that admits only listed client addresses, as data: Berth's own Traefik image
(``berth_common.traefik``) with one TCP entry point, one router and the ``ipAllowList`` TCP middleware.

The router's rule is ``HostSNI(`*`)``: it takes every connection on the entry point, TLS or not (a plain
TCP protocol such as PostgreSQL's or Redis's has no SNI to route by). The middleware closes a connection
whose client address is outside ``allow`` before anything is forwarded; Traefik reads that address from
the connection itself, so it is the client's own only where nothing between rewrites the source address.
The static configuration is the container's arguments; the dynamic one is a YAML file (JSON is YAML)
Traefik's file provider reads once (``FILE``), put into the container before it starts.

Traefik's ping answers on a second entry point bound to the container's loopback only (never published):
:func:`ready_check` is Traefik's own ``healthcheck`` command, run in the container. Traefik binds every entry
point before it serves any, so once the ping answers the public port accepts connections; until then a
connection to it is refused, which is why the scheduler calls a proxy ready only once the check passes.
"""

from __future__ import annotations

import json
from typing import Any

from berth_common.traefik import BINARY_IN_IMAGE, CONFIG_DIR, default_binary, default_image

ENTRY_POINT = "tcp"
ROUTER = "tcp"
MIDDLEWARE = "allow"
SERVICE = "upstream"
FILE = f"{CONFIG_DIR}/tcp-proxy.yml"
PING_ENTRY_POINT = "ping"
PING_PORTS = (8082, 8083)  # the second when the public port is the first


def ping_port(port: int) -> int:
    """The loopback port of the ping entry point: one the public ``port`` does not take."""
    return PING_PORTS[1] if port == PING_PORTS[0] else PING_PORTS[0]


def _ping_arguments(port: int) -> list[str]:
    return [
        f"--entryPoints.{PING_ENTRY_POINT}.address=127.0.0.1:{ping_port(port)}",
        "--ping=true",
        f"--ping.entryPoint={PING_ENTRY_POINT}",
    ]


def arguments(port: int, file: str = FILE) -> list[str]:
    """Traefik's static configuration as its command line: the entry point on ``port`` (every address),
    the file provider on ``file`` (read once: nothing changes it while the container runs), applied as soon
    as it is read (until then a connection finds no router and is closed), and the ping on loopback."""
    return [
        f"--entryPoints.{ENTRY_POINT}.address=:{port}",
        *_ping_arguments(port),
        f"--providers.file.filename={file}",
        "--providers.file.watch=false",
        "--providers.providersThrottleDuration=0s",
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
        "--log.level=WARN",
    ]


def ready_check(port: int) -> list[str]:
    """The argv, run in the proxy's container, that exits 0 once Traefik answers its ping (and so once the
    entry point on ``port`` listens): Traefik's ``healthcheck`` command given the same ping settings."""
    return [BINARY_IN_IMAGE, "healthcheck", *_ping_arguments(port)]


def dynamic_config(allow: list[str], upstream: str) -> dict[str, Any]:
    """Every connection on the entry point from an address in ``allow`` (CIDR blocks or addresses) goes to
    ``upstream`` (``host:port``); any other is closed."""
    return {
        "tcp": {
            "routers": {
                ROUTER: {
                    "entryPoints": [ENTRY_POINT],
                    "rule": "HostSNI(`*`)",
                    "middlewares": [MIDDLEWARE],
                    "service": SERVICE,
                }
            },
            "middlewares": {MIDDLEWARE: {"ipAllowList": {"sourceRange": list(allow)}}},
            "services": {SERVICE: {"loadBalancer": {"servers": [{"address": upstream}]}}},
        }
    }


def dynamic_file(allow: list[str], upstream: str) -> bytes:
    """The dynamic configuration as the file's bytes (stable: the same input gives the same bytes)."""
    return json.dumps(dynamic_config(allow, upstream), indent=2, sort_keys=True).encode() + b"\n"


__all__ = [
    "FILE",
    "arguments",
    "default_binary",
    "default_image",
    "dynamic_config",
    "dynamic_file",
    "ping_port",
    "ready_check",
]
