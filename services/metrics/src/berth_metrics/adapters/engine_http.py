"""A small HTTP/1.1 client for the Docker Engine API: GET requests only (all the metrics service makes),
JSON answers, and one streamed answer (the events stream).

The service reads the engine every few seconds for the whole life of the process, so the client is
built on asyncio streams alone (no aiohttp: about 8 MB less per process). Connections are kept alive and
reused; a reused connection the engine closed meanwhile is retried once on a new one (every request is a
GET, so a retry is harmless).

Where the engine is, and the connections to it, come from :class:`~berth_common.docker.DockerEngines`
(the same description the other services' clients are made from).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from berth_common.docker import LOCAL, DockerEngines, DockerUnavailable, Stream

Conn = Stream


class EngineError(Exception):
    """The engine answered with an error status (404: no such container, ...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


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
    """GET requests to one server's engine over kept-alive connections."""

    def __init__(self, engines: DockerEngines, timeout_s: float, max_idle: int = 32, server_id: str = LOCAL) -> None:
        self.engines = engines
        self.server_id = server_id
        engine = engines.engine(server_id)
        self.api_version = engine.api_version
        self.host_header = engine.where.host_header
        self.timeout_s = timeout_s
        self.max_idle = max_idle
        self._idle: list[Conn] = []

    async def _connect(self) -> Conn:
        return await self.engines.open_stream(self.server_id)

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
            f"GET /{self.api_version}/{path.lstrip('/')}{query} HTTP/1.1\r\nHost: {self.host_header}\r\n"
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
                    raise DockerUnavailable(f"the Docker engine dropped the connection: {exc}") from exc
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
                raise DockerUnavailable(f"the Docker engine dropped the stream: {exc}") from exc
        finally:
            writer.close()

    async def close(self) -> None:
        while self._idle:
            _, writer = self._idle.pop()
            writer.close()
