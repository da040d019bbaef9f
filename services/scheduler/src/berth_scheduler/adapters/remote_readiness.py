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
from berth_scheduler.adapters.readiness import NOT_RUNNING, ReadinessChecker
from berth_scheduler.domain.containers import ContainerSpec
from berth_scheduler.domain.readiness import ReadinessConfig, Seen, answer_text

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
        seen = await self.probe_remote_seen(address, port, path, timeout_s)
        return seen.ok, seen.text

    async def probe_remote_seen(self, address: str, port: int, path: str, timeout_s: float) -> Seen:
        """One GET through the SSH connection, told in words (a failed answer with its first body bytes)."""
        return await get_seen(self._connection, address, port, path, timeout_s)

    async def _look(self, spec: ContainerSpec, deadline: float) -> tuple[dict[str, Any] | None, Seen]:
        assert spec.health_path is not None and spec.container_port is not None
        timeout = min(self.config.attempt_timeout_s, max(deadline - time.time(), 0.1))
        info = await self.docker.inspect(spec.name)
        address = address_of(info)
        if address is None or not ((info or {}).get("State") or {}).get("Running"):
            return info, NOT_RUNNING
        return info, await self.probe_remote_seen(address, spec.container_port, spec.health_path, timeout)

    async def answer_on(self, spec: ContainerSpec, port: int, timeout_s: float) -> Seen:
        address = address_of(await self.docker.inspect(spec.name))
        if address is None:
            return NOT_RUNNING
        return await self.probe_remote_seen(address, port, "/", timeout_s)


async def get_seen(connection: Connection, address: str, port: int, path: str, timeout_s: float) -> Seen:
    """One GET of ``path`` at ``address:port`` through a server's SSH connection (``direct-tcpip``), told in
    words: passed, or connection refused/reset, timed out, closed with no answer, the status with the first
    bytes of the body. A remote replica's check and a Swarm task's (on its node) both use it."""
    try:
        async with asyncio.timeout(timeout_s):
            conn = await connection()
            reader, writer = await conn.open_connection(address, port)
            try:
                writer.write(request_bytes(address, port, path))
                line = await reader.readline()
                status = status_of(line)
                rest = b"" if status is None or 200 <= status < 300 else await _some(reader)
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
    except TimeoutError:
        return Seen(False, f"GET {path} timed out after {timeout_s:g} s", "timeout")
    except ConnectionResetError:
        return Seen(False, f"GET {path}: connection reset", "reset")
    except Exception as exc:  # asyncssh's ChannelOpenError says "Connection refused" in its reason
        if isinstance(exc, ConnectionRefusedError) or "refused" in str(exc).lower():
            return Seen(False, f"GET {path}: connection refused", "refused")
        return Seen(False, f"GET {path} failed: {exc or type(exc).__name__}", "error")
    if status is None:
        return Seen(False, f"GET {path}: the connection was closed with no HTTP answer", "closed")
    if 200 <= status < 300:
        return Seen(True, f"GET {path} answered {status}", "ok", status)
    return Seen(False, answer_text(path, status, rest.partition(b"\r\n\r\n")[2]), "status", status)


async def _some(reader: Any, limit: int = 4096) -> bytes:
    """The start of the rest of an answer (headers and body), as much as comes within a short wait."""
    out = b""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(0.5):
            while len(out) < limit and (chunk := await reader.read(limit - len(out))):
                out += chunk
    return out
