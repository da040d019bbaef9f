"""The remote readiness GET tells what it saw in the same words as the local one: against real servers on
loopback, reached the way the SSH connection reaches a remote replica (a TCP stream opened for it)."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from berth_scheduler.adapters.remote_readiness import RemoteReadiness
from berth_scheduler.domain.readiness import Seen


class Streams:
    """What the checker needs of an SSH connection: a TCP stream to an address (here opened directly)."""

    async def open_connection(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(host, port)


async def connection() -> Streams:
    return Streams()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[int]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for s in servers:
        s.close()


async def answer_500(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.0 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\ndatabase is down\n")
    await writer.drain()
    writer.close()


async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
    writer.transport.abort()


async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.close()


async def test_remote_answers_in_words(serve):
    checker = RemoteReadiness(None, connection)  # type: ignore[arg-type]  # the GET alone needs no engine
    port = await serve(answer_500)
    assert await checker.probe_remote_seen("127.0.0.1", port, "/", 2.0) == Seen(
        False, "GET / answered 500: database is down", "status", 500
    )
    port = await serve(close_at_once)
    assert await checker.probe_remote_seen("127.0.0.1", port, "/", 2.0) == Seen(
        False, "GET /: the connection was closed with no HTTP answer", "closed"
    )
    port = await serve(reset)
    assert await checker.probe_remote_seen("127.0.0.1", port, "/", 2.0) == Seen(
        False, "GET /: connection reset", "reset"
    )
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        free = unused.getsockname()[1]
    assert await checker.probe_remote_seen("127.0.0.1", free, "/", 2.0) == Seen(
        False, "GET /: connection refused", "refused"
    )
