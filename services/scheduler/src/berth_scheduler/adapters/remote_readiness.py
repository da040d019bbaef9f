"""Readiness of a replica on a remote server: its health path asked through the server's SSH connection.

A remote replica publishes no port; it listens on the server's Berth network at its container address.
The check opens a TCP channel from the server to that address over the pooled SSH connection
(``direct-tcpip``, nothing run in a shell) and sends a minimal HTTP/1.0 GET; a 2xx status line passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from berth_common.fleet import SERVER_NETWORK
from berth_scheduler.adapters.docker import DockerExecutor
from berth_scheduler.adapters.readiness import ReadinessChecker, ReadinessConfig
from berth_scheduler.domain.containers import ContainerSpec

Connection = Callable[[], Awaitable[Any]]  # the server's asyncssh connection


def request_bytes(address: str, port: int, path: str) -> bytes:
    """The GET a check sends (``path`` is the spec's health path, already validated)."""
    return f"GET {path} HTTP/1.0\r\nHost: {address}:{port}\r\nUser-Agent: berth-readiness\r\n\r\n".encode()


def status_of(first_line: bytes) -> int | None:
    """The status code of an HTTP status line, or None when it is not one."""
    parts = first_line.decode("latin-1").split()
    if len(parts) >= 2 and parts[0].startswith("HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return None


def address_of(info: dict[str, Any] | None) -> str | None:
    """The replica's address on the server's Berth network (None while it has none)."""
    networks = ((info or {}).get("NetworkSettings") or {}).get("Networks") or {}
    return (networks.get(SERVER_NETWORK) or {}).get("IPAddress") or None


class RemoteReadiness(ReadinessChecker):
    def __init__(self, docker: DockerExecutor, connection: Connection, config: ReadinessConfig | None = None) -> None:
        super().__init__(docker, config)
        self._connection = connection

    async def probe_remote(self, address: str, port: int, path: str, timeout_s: float) -> tuple[bool, str]:
        """One GET through the SSH connection; (passed, what happened)."""
        try:
            async with asyncio.timeout(timeout_s):
                conn = await self._connection()
                reader, writer = await conn.open_connection(address, port)
                try:
                    writer.write(request_bytes(address, port, path))
                    line = await reader.readline()
                finally:
                    writer.close()
                    with contextlib.suppress(Exception):
                        await writer.wait_closed()
        except TimeoutError:
            return False, f"GET {path} timed out"
        except Exception as exc:
            return False, f"GET {path} failed: {type(exc).__name__}"
        status = status_of(line)
        if status is None:
            return False, f"GET {path} got no HTTP answer"
        return 200 <= status < 300, f"GET {path} answered {status}"

    async def _look(self, spec: ContainerSpec, deadline: float) -> tuple[dict[str, Any] | None, bool, str]:
        assert spec.health_path is not None and spec.container_port is not None
        timeout = min(self.config.attempt_timeout_s, max(deadline - time.time(), 0.1))
        info = await self.docker.inspect(spec.name)
        address = address_of(info)
        if address is None or not ((info or {}).get("State") or {}).get("Running"):
            return info, False, "the container is not running"
        ok, seen = await self.probe_remote(address, spec.container_port, spec.health_path, timeout)
        return info, ok, seen
