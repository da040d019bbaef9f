"""A TCP proxy that admits only listed client addresses, as data: Berth's own Traefik image
(``berth_common.traefik``) with one TCP entry point, one router and the ``ipAllowList`` TCP middleware.

The router's rule is ``HostSNI(`*`)``: it takes every connection on the entry point, TLS or not (a plain
TCP protocol such as PostgreSQL's or Redis's has no SNI to route by). The middleware closes a connection
whose client address is outside ``allow`` before anything is forwarded; Traefik reads that address from
the connection itself, so it is the client's own only where nothing between rewrites the source address.
The static configuration is the container's arguments; the dynamic one is a YAML file (JSON is YAML)
Traefik's file provider reads once (``FILE``), put into the container before it starts.
"""

from __future__ import annotations

import json
from typing import Any

from berth_common.traefik import CONFIG_DIR, default_binary, default_image

ENTRY_POINT = "tcp"
ROUTER = "tcp"
MIDDLEWARE = "allow"
SERVICE = "upstream"
FILE = f"{CONFIG_DIR}/tcp-proxy.yml"


def arguments(port: int, file: str = FILE) -> list[str]:
    """Traefik's static configuration as its command line: the entry point on ``port`` (every address),
    the file provider on ``file`` (read once: nothing changes it while the container runs), applied as soon
    as it is read (until then a connection finds no router and is closed)."""
    return [
        f"--entryPoints.{ENTRY_POINT}.address=:{port}",
        f"--providers.file.filename={file}",
        "--providers.file.watch=false",
        "--providers.providersThrottleDuration=0s",
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
        "--log.level=WARN",
    ]


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


__all__ = ["FILE", "arguments", "default_binary", "default_image", "dynamic_config", "dynamic_file"]
