"""A minimal HTTP server for liveness, readiness and Prometheus metrics (services without FastAPI)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST

ReadyCheck = Callable[[], Awaitable[dict[str, bool]]]
# The exposition for a request's ``Authorization`` header (empty when absent); None: refused (401).
Exposition = Callable[[str], bytes | None]

_REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


async def health_response(
    path: str, ready: ReadyCheck, exposition: Exposition | None = None, authorization: str = ""
) -> tuple[int, str, bytes]:
    """(status, content type, body) for /livez, /readyz and /metrics; 404 otherwise. /metrics is what
    ``exposition`` answers for the caller's ``authorization`` (401 when it refuses); without one, 401 to all:
    a service's metrics are never open (``berth_common.scrape.platform_exposition``)."""
    if path == "/livez":
        return 200, "application/json", b'{"status":"ok"}'
    if path == "/readyz":
        components = await ready()
        ok = all(components.values())
        body = json.dumps({"status": "ready" if ok else "not ready", "components": components}).encode()
        return (200 if ok else 503), "application/json", body
    if path == "/metrics":
        scraped = exposition(authorization) if exposition is not None else None
        if scraped is None:
            return 401, "application/json", b'{"status":"a bearer token is required"}'
        return 200, CONTENT_TYPE_LATEST, scraped
    return 404, "application/json", b'{"status":"not found"}'


class HealthServer:
    """``exposition``: who may read /metrics and what they see (none: no one)."""

    def __init__(self, host: str, port: int, ready: ReadyCheck, exposition: Exposition | None = None) -> None:
        self.host, self.port, self.ready, self.exposition = host, port, ready, exposition
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), 5)
            authorization = ""
            for _ in range(100):
                header = await asyncio.wait_for(reader.readline(), 5)
                if header in (b"\r\n", b"\n", b""):
                    break
                name, _, value = header.decode("latin-1").partition(":")
                if name.strip().lower() == "authorization":
                    authorization = value.strip()
            parts = request_line.decode("latin-1").split()
            if len(parts) < 2:
                return
            method, path = parts[0], parts[1].split("?", 1)[0]
            if method not in ("GET", "HEAD"):
                status, ctype, body = 405, "application/json", b'{"status":"method not allowed"}'
            else:
                status, ctype, body = await health_response(path, self.ready, self.exposition, authorization)
            challenge = 'WWW-Authenticate: Bearer realm="berth-metrics"\r\n' if status == 401 else ""
            head = (
                f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\nContent-Type: {ctype}\r\n{challenge}"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + (body if method == "GET" else b""))
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
