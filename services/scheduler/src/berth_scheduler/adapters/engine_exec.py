"""A command in a container with its output streamed, spoken directly to the engine's HTTP API on a unix
socket (the local engine's, or a remote server's forwarded over SSH by the scheduler): exec create, exec
start hijacked into a raw multiplexed stream, exec inspect for the exit code.

Built on asyncio streams alone (no aiodocker, aiohttp or pydantic), for the backup worker process whose
memory is the stream's. The socket's reader is read frame by frame as the caller takes chunks, so the
engine's connection is paused while the caller is busy: memory stays flat whatever the output's size.
The exec's environment may hold a password: it is never logged or put in an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

STDERR_KEEP = 4000
HOST = "docker"  # any host name: the engine on a unix socket does not read it


class EngineExecError(RuntimeError):
    """The engine refused or dropped the exec; ``status`` is its HTTP status (0: the connection)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


async def _head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    line = await reader.readline()
    fields = line.split(None, 2)
    if len(fields) < 2 or not fields[0].startswith(b"HTTP/"):
        raise EngineExecError("the Docker engine closed the connection")
    headers = {}
    while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(fields[1]), headers


async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        out = b""
        while size := int((await reader.readline()).split(b";", 1)[0].strip() or b"0", 16):
            out += await reader.readexactly(size)
            await reader.readexactly(2)
        return out
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    return await reader.read()


class EngineExec:
    """``async with EngineExec(socket, "v1.41", container, argv, env) as ex``: ``ex.chunks()`` is stdout,
    ``ex.stderr`` keeps its end, ``ex.exit_code()`` once the output ended."""

    def __init__(
        self,
        socket: str,
        api_version: str,
        container: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        stdin: bytes = b"",
        timeout_s: float = 60.0,
        *,
        feed: bool = False,
    ) -> None:
        self.socket, self.api = socket, api_version
        self.container, self.argv, self.env, self.stdin = container, argv, env or {}, stdin
        self.tool = argv[0]
        self.feed = feed  # stdin stays open for :meth:`write` until :meth:`close_stdin`
        self.timeout_s = timeout_s
        self.stderr = b""
        self._id = ""
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.StreamReader | None = None

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
        async with asyncio.timeout(self.timeout_s):
            try:
                reader, writer = await asyncio.open_unix_connection(self.socket)
            except OSError as exc:
                raise EngineExecError(f"the Docker engine is not reachable: {exc}") from None
            try:
                writer.write(self._head(method, path, body) + (json.dumps(body).encode() if body is not None else b""))
                await writer.drain()
                status, headers = await _head(reader)
                return status, await _body(reader, headers)
            except (OSError, asyncio.IncompleteReadError) as exc:
                raise EngineExecError(f"the Docker engine dropped the connection: {exc}") from None
            finally:
                writer.close()

    def _head(self, method: str, path: str, body: dict[str, Any] | None, upgrade: bool = False) -> bytes:
        length = len(json.dumps(body).encode()) if body is not None else 0
        extra = "Connection: Upgrade\r\nUpgrade: tcp\r\n" if upgrade else "Connection: close\r\n"
        return (
            f"{method} /{self.api}{path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{extra}\r\n"
        ).encode("latin-1")

    def _refused(self, status: int, body: bytes) -> EngineExecError:
        if status == 404:
            return EngineExecError(f"container {self.container} does not exist", 404)
        if status == 409:
            return EngineExecError(f"container {self.container} is not running", 409)
        try:
            message = str(json.loads(body).get("message", ""))
        except (ValueError, AttributeError):
            message = body[:200].decode("utf-8", "replace")
        return EngineExecError(f"docker exec {self.tool} in {self.container}: {message}", status)

    async def _upgrade(self, path: str, body: dict[str, Any] | None) -> int:
        """Open the raw stream of ``path`` (an exec's start or a container's attach); the HTTP status."""
        async with asyncio.timeout(self.timeout_s):
            try:
                self._reader, self._writer = await asyncio.open_unix_connection(self.socket, limit=1 << 20)
                self._writer.write(self._head("POST", path, body, upgrade=True))
                if body is not None:
                    self._writer.write(json.dumps(body).encode())
                await self._writer.drain()
                status, _ = await _head(self._reader)
            except (OSError, asyncio.IncompleteReadError) as exc:
                raise EngineExecError(f"the Docker engine dropped the connection: {exc}") from None
        if status not in (101, 200):
            raise self._refused(status, await self._reader.read(4096))
        return status

    async def __aenter__(self) -> EngineExec:
        config = {
            "AttachStdout": True,
            "AttachStderr": True,
            "AttachStdin": bool(self.stdin) or self.feed,
            "Tty": False,
            "Cmd": self.argv,
            "Env": [f"{k}={v}" for k, v in self.env.items()],
        }
        status, body = await self._request("POST", f"/containers/{self.container}/exec", config)
        if status != 201:
            raise self._refused(status, body)
        self._id = str(json.loads(body)["Id"])
        await self._upgrade(f"/exec/{self._id}/start", {"Detach": False, "Tty": False})
        if self.stdin:
            assert self._writer is not None
            self._writer.write(self.stdin)
            await self._writer.drain()
            if self._writer.can_write_eof():
                self._writer.write_eof()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()

    async def chunks(self) -> AsyncIterator[bytes]:
        """stdout, frame by frame, until the command closes it (stderr is kept in :attr:`stderr`)."""
        reader = self._reader
        assert reader is not None
        while True:
            try:
                header = await reader.readexactly(8)
            except asyncio.IncompleteReadError as exc:
                if not exc.partial:
                    return
                raise EngineExecError(f"the output of {self.tool} was cut") from None
            except OSError as exc:
                raise EngineExecError(f"the output of {self.tool} was cut: {exc}") from None
            kind, size = header[0], struct.unpack(">I", header[4:])[0]
            try:
                data = await reader.readexactly(size)
            except (OSError, asyncio.IncompleteReadError) as exc:
                raise EngineExecError(f"the output of {self.tool} was cut: {exc}") from None
            if kind == 2:
                self.stderr = (self.stderr + data)[-STDERR_KEEP:]
            elif data:
                yield data

    async def write(self, data: bytes) -> None:
        assert self._writer is not None
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as exc:
            raise EngineExecError(f"{self.tool} stopped reading its input: {exc}") from None

    async def close_stdin(self) -> None:
        """Half-close the stream: the command reads EOF, its output still arrives."""
        if self._writer is not None and self._writer.can_write_eof():
            self._writer.write_eof()

    async def drain(self) -> None:
        """Read the output to its end (stdout is not kept, stderr's end is)."""
        async for _ in self.chunks():
            pass

    def error_text(self) -> str:
        return self.stderr.decode(errors="replace").strip()

    async def exit_code(self, timeout_s: float = 30.0) -> int:
        """The command's exit code once it ended (-1 if the engine cannot say)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            status, body = await self._request("GET", f"/exec/{self._id}/json")
            info = json.loads(body) if status == 200 else {}
            if status == 200 and not info.get("Running"):
                code = info.get("ExitCode")
                return int(code) if code is not None else -1
            if loop.time() > deadline:
                return -1
            await asyncio.sleep(0.05)


class EngineAttach(EngineExec):
    """A helper container the caller created (not started): attached before it starts (no byte of its
    output is missed), started, read to its end, its exit code waited for. The caller removes it."""

    async def __aenter__(self) -> EngineAttach:
        stdin = "&stdin=1" if self.feed else ""
        await self._upgrade(f"/containers/{self.container}/attach?stream=1&stdout=1&stderr=1{stdin}", None)
        status, body = await self._request("POST", f"/containers/{self.container}/start")
        if status not in (204, 304):
            raise self._refused(status, body)
        return self

    async def exit_code(self, timeout_s: float = 60.0) -> int:
        self.timeout_s = max(self.timeout_s, timeout_s)
        status, body = await self._request("POST", f"/containers/{self.container}/wait")
        if status != 200:
            return -1
        code = json.loads(body).get("StatusCode")
        return int(code) if code is not None else -1
