"""A small HTTP/1.1 client for the Docker Engine API: GET requests only (all the metrics service makes),
JSON answers, and one streamed answer (the events stream).

The service reads the engine every few seconds for the whole life of the process, so the client is
built on asyncio streams alone (no aiohttp: about 8 MB less per process). Connections are kept alive and
reused; a reused connection the engine closed meanwhile is retried once on a new one (every request is a
GET, so a retry is harmless).

Where the engine is: ``unix:///path/docker.sock``, ``tcp://host:port`` or ``http://host:port``, and
``https://host:port`` (or ``tcp://`` with ``DOCKER_TLS_VERIFY=1``) with the client certificate, key and CA
from ``DOCKER_CERT_PATH`` (default ``~/.docker``), as the docker CLI does. Without a URL: ``DOCKER_HOST``,
else the local socket.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

DEFAULT_SOCKET = "/var/run/docker.sock"
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class DockerUnavailableError(RuntimeError):
    """The engine did not answer (down, the socket missing, or the connection broke)."""


class EngineError(Exception):
    """The engine answered with an error status (404: no such container, ...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Endpoint:
    unix_path: str | None = None
    host: str = "localhost"
    port: int = 2375
    tls: ssl.SSLContext | None = None

    @property
    def host_header(self) -> str:
        return "docker" if self.unix_path else f"{self.host}:{self.port}"


def _tls_context(env: Mapping[str, str]) -> ssl.SSLContext:
    certs = Path(env.get("DOCKER_CERT_PATH") or Path.home() / ".docker")
    ca = certs / "ca.pem"
    context = ssl.create_default_context(cafile=str(ca) if ca.exists() else None)
    if (certs / "cert.pem").exists():
        context.load_cert_chain(str(certs / "cert.pem"), str(certs / "key.pem"))
    return context


def endpoint(url: str | None, env: Mapping[str, str] | None = None) -> Endpoint:
    """Where the engine listens, from a URL (or ``DOCKER_HOST``, or the local socket)."""
    env = os.environ if env is None else env
    url = url or env.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    parts = urlsplit(url)
    if parts.scheme == "unix":
        path = (parts.netloc + parts.path) or DEFAULT_SOCKET
        return Endpoint(unix_path=path)
    if parts.scheme in ("tcp", "http", "https"):
        if not parts.hostname:
            raise ValueError(f"no host in the Docker URL {url!r}")
        tls = parts.scheme == "https" or (parts.scheme == "tcp" and env.get("DOCKER_TLS_VERIFY") == "1")
        port = parts.port or (2376 if tls else 2375)
        return Endpoint(host=parts.hostname, port=port, tls=_tls_context(env) if tls else None)
    raise ValueError(f"unsupported Docker URL {url!r} (unix://, tcp://, http:// or https://)")


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    reader: asyncio.StreamReader

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    @property
    def keep_alive(self) -> bool:
        return self.headers.get("connection", "").lower() != "close" and (
            self.chunked or "content-length" in self.headers or self.status in (204, 304)
        )

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (decoded from chunked transfer encoding when it is)."""
        r = self.reader
        if self.status in (204, 304):
            return
        if self.chunked:
            while True:
                size = int((await r.readline()).split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while (await r.readline()) not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return
                yield await r.readexactly(size)
                await r.readexactly(2)
        elif "content-length" in self.headers:
            length = int(self.headers["content-length"])
            if length:
                yield await r.readexactly(length)
        else:
            while data := await r.read(65536):
                yield data

    async def body(self) -> bytes:
        return b"".join([c async for c in self.chunks()])


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    line = await reader.readline()
    if not line:
        raise ConnectionResetError("the engine closed the connection")
    fields = line.split(None, 2)
    if len(fields) < 2 or not fields[0].startswith(b"HTTP/"):
        raise ConnectionResetError(f"not an HTTP answer: {line[:40]!r}")
    headers = {}
    while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(fields[1]), headers


def _error(status: int, body: bytes) -> EngineError:
    try:
        message = str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError):
        message = body[:200].decode("utf-8", "replace")
    return EngineError(status, message)


class EngineClient:
    def __init__(self, where: Endpoint, api_version: str, timeout_s: float, max_idle: int = 32) -> None:
        self.where = where
        self.api_version = api_version.strip("/")
        self.timeout_s = timeout_s
        self.max_idle = max_idle
        self._idle: list[Conn] = []

    async def _connect(self) -> Conn:
        w = self.where
        try:
            if w.unix_path is not None:
                return await asyncio.open_unix_connection(w.unix_path)
            return await asyncio.open_connection(w.host, w.port, ssl=w.tls, server_hostname=w.host if w.tls else None)
        except OSError as exc:
            raise DockerUnavailableError(f"cannot reach the Docker engine: {exc}") from exc

    def _take_idle(self) -> Conn | None:
        while self._idle:
            reader, writer = self._idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        return None

    def _give_back(self, conn: Conn) -> None:
        if len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn[1].close()

    def _request(self, path: str, params: Mapping[str, str] | None) -> bytes:
        query = f"?{urlencode(params)}" if params else ""
        return (
            f"GET /{self.api_version}/{path.lstrip('/')}{query} HTTP/1.1\r\nHost: {self.where.host_header}\r\n"
            "User-Agent: berth-metrics\r\nAccept: application/json\r\n\r\n"
        ).encode("latin-1")

    async def _exchange(self, conn: Conn, request: bytes) -> tuple[int, bytes, bool]:
        reader, writer = conn
        writer.write(request)
        await writer.drain()
        status, headers = await _read_head(reader)
        response = Response(status, headers, reader)
        return status, await response.body(), response.keep_alive

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> bytes:
        """The body of a 2xx answer; an error status raises :class:`EngineError`."""
        request = self._request(path, params)
        async with asyncio.timeout(self.timeout_s):
            for attempt in (0, 1):
                reused = self._take_idle() if attempt == 0 else None
                conn = reused or await self._connect()
                try:
                    status, body, keep = await self._exchange(conn, request)
                except (ConnectionError, asyncio.IncompleteReadError) as exc:
                    conn[1].close()
                    if reused is not None:
                        continue  # closed by the engine while idle: once more on a new connection
                    raise DockerUnavailableError(f"the Docker engine dropped the connection: {exc}") from exc
                except BaseException:  # timeout or cancel: the connection is mid-answer, never reuse it
                    conn[1].close()
                    raise
                if keep:
                    self._give_back(conn)
                else:
                    conn[1].close()
                if status >= 400:
                    raise _error(status, body)
                return body
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return json.loads(await self.get(path, params))

    async def stream_lines(self, path: str, params: Mapping[str, str] | None = None) -> AsyncIterator[bytes]:
        """The lines of a streamed answer (the events stream) until the engine ends it; its own connection."""
        reader, writer = await self._connect()
        try:
            try:
                writer.write(self._request(path, params))
                await writer.drain()
                async with asyncio.timeout(self.timeout_s):
                    status, headers = await _read_head(reader)
                response = Response(status, headers, reader)
                if status >= 400:
                    raise _error(status, await response.body())
                pending = b""
                async for chunk in response.chunks():
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        yield line
                if pending:
                    yield pending
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                raise DockerUnavailableError(f"the Docker engine dropped the stream: {exc}") from exc
        finally:
            writer.close()

    async def close(self) -> None:
        while self._idle:
            _, writer = self._idle.pop()
            writer.close()
