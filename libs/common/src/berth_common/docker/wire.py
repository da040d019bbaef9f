"""HTTP/1.1 as the Docker Engine API speaks it, on asyncio streams: a request's head and body written, an
answer's head read and its body taken as it arrives (whole, in chunks, in lines, or as the multiplexed frames
of a logs stream), the hijacked connection of an exec or attach (:class:`Attached`), and the engine's error
answer as :class:`EngineError`.

Pure protocol over a reader and a writer; connections, reuse and timeouts are :mod:`.api`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from berth_common.docker.engine import DockerUnavailable

Body = bytes | str | AsyncIterable[bytes] | Iterable[bytes] | None
READ_SIZE = 65536
_HEADER = 8  # a multiplexed frame: stream (1 byte), three zero bytes, payload length (4 bytes, big-endian)


class EngineError(Exception):
    """The engine answered with an error status (404: no such object, 409: conflict, ...) and its message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def error_of(status: int, body: bytes) -> EngineError:
    """The engine's error answer: its JSON ``message``, else the text as it is."""
    try:
        message = str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError):
        message = body.decode("utf-8", "replace")
    return EngineError(status, message)


def httpize(params: Mapping[str, Any] | None) -> dict[str, str]:
    """Query values as the engine reads them: a bool as 1 or 0, a string as it is, anything else as JSON
    (``filters``)."""
    out: dict[str, str] = {}
    for key, value in (params or {}).items():
        if isinstance(value, bool):
            value = "1" if value else "0"
        out[key] = value if isinstance(value, str) else json.dumps(value)
    return out


def target(api_version: str, path: str, params: Mapping[str, Any] | None, *, versioned: bool = True) -> str:
    """The request target: ``/<version>/<path>?<query>`` (a path with its own query keeps it)."""
    path = "/" + path.lstrip("/")
    if versioned:
        path = f"/{api_version}{path}"
    query = urlencode(httpize(params))
    if query:
        path += ("&" if "?" in path else "?") + query
    return path


def head(method: str, where: str, host: str, headers: Mapping[str, str], length: int | None) -> bytes:
    """A request head; ``length`` None means a chunked body."""
    lines = [f"{method} {where} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if length is None:
        lines.append("Transfer-Encoding: chunked")
    elif length or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def write_body(writer: asyncio.StreamWriter, data: AsyncIterable[bytes] | Iterable[bytes]) -> None:
    """Send a body in chunked transfer encoding, a piece at a time (waiting while the engine is slower)."""
    if isinstance(data, AsyncIterable):
        async for piece in data:
            await _write_chunk(writer, piece)
    else:
        for piece in data:
            await _write_chunk(writer, piece)
    writer.write(b"0\r\n\r\n")
    await writer.drain()


async def _write_chunk(writer: asyncio.StreamWriter, piece: bytes) -> None:
    if piece:
        writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
        await writer.drain()


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """(status, headers with lower-case names) of an answer; ConnectionResetError when none comes."""
    line = await reader.readline()
    if not line:
        raise ConnectionResetError("the engine closed the connection")
    fields = line.split(None, 2)
    if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
        raise ConnectionResetError(f"not an HTTP answer: {line[:40]!r}")
    headers: dict[str, str] = {}
    while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(fields[1]), headers


@dataclass
class Response:
    """An answer whose head is read; its body is read from ``reader`` as the caller asks for it."""

    status: int
    headers: dict[str, str]
    reader: asyncio.StreamReader
    method: str = "GET"
    done: bool = field(default=False)  # the whole body is read: the connection may serve another request

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    @property
    def keep_alive(self) -> bool:
        """Whether the connection can carry another request once this body is read."""
        return self.headers.get("connection", "").lower() != "close" and (
            self.chunked or "content-length" in self.headers or not self._has_body
        )

    @property
    def _has_body(self) -> bool:
        return self.method != "HEAD" and self.status not in (204, 304) and not 100 <= self.status < 200

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (decoded from chunked transfer encoding when it is); a connection that
        breaks before its end raises DockerUnavailable."""
        try:
            async for chunk in self._chunks():
                yield chunk
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise DockerUnavailable(f"the Docker engine dropped the answer: {exc!r}") from exc

    async def _chunks(self) -> AsyncIterator[bytes]:
        r = self.reader
        if not self._has_body:
            self.done = True
            return
        if self.chunked:
            while True:
                size = int((await r.readline()).split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while (await r.readline()) not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    break
                yield await r.readexactly(size)
                await r.readexactly(2)
        elif "content-length" in self.headers:
            left = int(self.headers["content-length"])
            while left > 0:
                data = await r.read(min(left, READ_SIZE))
                if not data:
                    raise asyncio.IncompleteReadError(b"", left)
                left -= len(data)
                yield data
        else:
            while data := await r.read(READ_SIZE):
                yield data
        self.done = True

    async def body(self) -> bytes:
        return b"".join([c async for c in self.chunks()])

    async def json(self) -> Any:
        data = await self.body()
        return json.loads(data) if data.strip() else None

    async def lines(self) -> AsyncIterator[bytes]:
        """The body's lines without their newline (a progress or events stream), the last one even unended."""
        pending = b""
        async for chunk in self.chunks():
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                yield line
        if pending:
            yield pending

    async def json_lines(self) -> AsyncIterator[Any]:
        """Each JSON value of a line-delimited stream (pull, push, build, load progress); blank lines and lines
        that are no JSON are skipped."""
        async for line in self.lines():
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError:
                    continue

    async def frames(self) -> AsyncIterator[tuple[int, bytes]]:
        """(stream, payload) of each frame of a multiplexed body (a non-TTY container's logs)."""
        async for kind, data in frames_of(_ChunkReader(self.chunks())):
            yield kind, data


class _ChunkReader:
    """``readexactly`` over an async iterator of chunks (a body in chunked encoding read as a plain stream)."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks, self._buffer = chunks, b""

    async def readexactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            try:
                self._buffer += await anext(self._chunks)
            except StopAsyncIteration:
                partial, self._buffer = self._buffer, b""
                raise asyncio.IncompleteReadError(partial, n) from None
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out


async def frames_of(reader: asyncio.StreamReader | _ChunkReader) -> AsyncIterator[tuple[int, bytes]]:
    """(stream, payload) frames until the stream ends (1 stdout, 2 stderr); a frame cut short raises
    IncompleteReadError."""
    while True:
        try:
            header = await reader.readexactly(_HEADER)
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                return
            raise
        size = int.from_bytes(header[4:], "big")
        yield header[0], await reader.readexactly(size) if size else b""


class Attached:
    """A hijacked connection (exec start, container attach): the multiplexed output read frame by frame as
    the caller asks (the engine is paused meanwhile), stdin written and half-closed."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def read_frame(self) -> tuple[int, bytes] | None:
        """The next (stream, payload): 1 stdout, 2 stderr; None at the end of the output."""
        try:
            header = await self.reader.readexactly(8)
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                return None
            raise ConnectionResetError("the output was cut inside a frame header") from None
        size = int.from_bytes(header[4:], "big")
        return header[0], await self.reader.readexactly(size) if size else b""

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def close_stdin(self) -> None:
        """Half-close: the command reads EOF, its output still arrives."""
        if self.writer.can_write_eof():
            self.writer.write_eof()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
