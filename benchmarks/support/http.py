"""A small HTTP/1.1 client on raw asyncio streams, for loopback only: cheap enough to poll every few
milliseconds and to send a steady load from one process without the client being what is measured.

``Conn`` is one keep-alive connection (``Content-Length`` and chunked bodies); ``get_once`` opens a
connection per request, like a new visitor; ``wait_status`` polls until an answer matches.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"


class HttpError(Exception):
    """The connection failed or the answer could not be read."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    close: bool = False


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            line = await reader.readline()
            if not line:  # closed before the last chunk: a cut answer, never a complete one
                raise asyncio.IncompleteReadError(b"".join(chunks), None)
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readline()
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    return await reader.read()  # until the server closes


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    line = await reader.readline()
    if not line:
        raise HttpError("connection closed before an answer")
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise HttpError(f"not an HTTP answer: {line[:80]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    while True:
        h = await reader.readline()
        if h in (b"\r\n", b"\n"):
            break
        if not h:
            raise HttpError("connection closed in the headers")
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    body = await _read_body(reader, headers)
    close = headers.get("connection", "").lower() == "close" or parts[0] == b"HTTP/1.0"
    return Answer(status, body, close)


def request_bytes(
    host: str, path: str = "/", *, keep_alive: bool = True, method: str = "GET", body: bytes | None = None
) -> bytes:
    """One request; with ``body`` its ``Content-Length`` (and ``Content-Type: text/plain``) go with it."""
    conn = "keep-alive" if keep_alive else "close"
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: berth-bench\r\nConnection: {conn}\r\n"
    if body is not None:
        head += f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + (body or b"")


class Conn:
    """One keep-alive connection to ``127.0.0.1:port``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> Conn:
        self.reader, self.writer = await asyncio.open_connection(LOOPBACK, self.port)
        return self

    @property
    def usable(self) -> bool:
        return self.writer is not None and not self.writer.is_closing()

    async def get(self, host: str, path: str = "/") -> Answer:
        return await self.request(host, path)

    async def request(self, host: str, path: str = "/", *, method: str = "GET", body: bytes | None = None) -> Answer:
        """``method path`` on this connection (opened again when the server closed it), ``body`` sent whole."""
        if not self.usable:
            await self.open()
        assert self.reader is not None and self.writer is not None
        try:
            self.writer.write(request_bytes(host, path, method=method, body=body))
            await self.writer.drain()
            answer = await read_answer(self.reader)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            self.close()
            raise HttpError(f"{type(exc).__name__}: {exc}") from None
        except HttpError:
            self.close()
            raise
        if answer.close:
            self.close()
        return answer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def get_once(port: int, host: str, path: str = "/", timeout: float = 5.0, address: str = LOOPBACK) -> Answer:
    """One request on a new connection (closed afterwards); ``address``: a test server's, not loopback."""

    async def go() -> Answer:
        reader, writer = await asyncio.open_connection(address, port)
        try:
            writer.write(request_bytes(host, path, keep_alive=False))
            await writer.drain()
            return await read_answer(reader)
        finally:
            writer.close()

    try:
        return await asyncio.wait_for(go(), timeout)
    except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as exc:
        raise HttpError(f"{type(exc).__name__}: {exc}") from None


async def wait_status(
    port: int,
    host: str,
    *,
    path: str = "/",
    ok: Callable[[Answer], bool] = lambda a: a.status == 200,
    timeout: float = 30.0,
    interval: float = 0.005,
) -> float:
    """``time.monotonic()`` of the first answer that satisfies ``ok`` (a new connection per attempt)."""
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while True:
        try:
            answer = await get_once(port, host, path, timeout=2.0)
            if ok(answer):
                return time.monotonic()
            last = f"HTTP {answer.status} {answer.body[:60]!r}"
        except HttpError as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{host} on port {port}: no matching answer within {timeout}s (last: {last})")
        await asyncio.sleep(interval)
