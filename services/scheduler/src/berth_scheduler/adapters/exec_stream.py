"""Commands in a container with their output streamed: the engine's exec create and start with attach,
through the connection factory's client of the container's server (local, or a remote server's forwarded
socket).

:class:`ExecStream` yields stdout in chunks as the engine sends them (the engine's connection is paused
while the caller has not taken a chunk: memory stays flat whatever the output's size), keeps the end of
stderr for the reason of a failure, writes stdin and closes it (half-close: the command sees EOF and the
output goes on), and reads the exit code at the end. The exec's environment may hold a password: it is
never logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiodocker.exceptions import DockerError

from berth_common.docker import DockerUnavailable
from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError
from berth_scheduler.domain.dumps import Exec

STDERR_KEEP = 4000


class Attached:
    """An attached, multiplexed stream of the engine (an exec's or a container's): stdout in chunks, the end
    of stderr kept, stdin written and half-closed. ``tool`` names the command in error messages."""

    tool = "the command"
    _stream: Any = None
    stderr = b""

    async def write(self, data: bytes) -> None:
        await self._stream.write_in(data)

    async def close_stdin(self) -> None:
        """Half-close the attached connection: the command reads EOF, its output still arrives."""
        transport = self._stream._resp.connection.transport  # aiodocker's Stream has no half-close of its own
        if transport is not None and transport.can_write_eof():
            transport.write_eof()

    async def chunks(self) -> AsyncIterator[bytes]:
        """stdout, chunk by chunk, until the command closes it (stderr is kept in :attr:`stderr`)."""
        while True:
            try:
                msg = await self._stream.read_out()
            except (DockerError, OSError) as exc:
                raise DockerUnavailable(f"the output of {self.tool} was cut: {exc}") from None
            if msg is None:
                return
            if msg.stream == 2:
                self.stderr = (self.stderr + msg.data)[-STDERR_KEEP:]
            else:
                yield msg.data

    async def drain(self) -> bytes:
        """Read to the end; the stdout collected (for small outputs: a command's answer)."""
        out = b""
        async for chunk in self.chunks():
            out = (out + chunk)[-65536:]
        return out

    def error_text(self) -> str:
        return self.stderr.decode(errors="replace").strip()


class ExecStream(Attached):
    def __init__(self, docker: DockerExecutor, container: str, command: Exec, *, stdin: bool = False) -> None:
        self.docker, self.container, self.command = docker, container, command
        self.stdin = stdin or bool(command.stdin)
        self.tool = command.argv[0]
        self._exec: Any = None
        self._stream: Any = None
        self.stderr = b""

    async def __aenter__(self) -> ExecStream:
        container = self.docker.docker.containers.container(self.container)
        what = f"exec {self.command.argv[0]} in {self.container}"
        try:
            self._exec = await self.docker._call(
                what,
                container.exec(
                    self.command.argv, stdout=True, stderr=True, stdin=self.stdin, environment=self.command.env
                ),
            )
            self._stream = self._exec.start(detach=False)
            await self.docker._call(what, self._stream._init())
        except DockerOperationError as exc:
            if exc.status == 404:
                raise DockerOperationError(f"container {self.container} does not exist", 404) from None
            if exc.status == 409:
                raise DockerOperationError(f"container {self.container} is not running", 409) from None
            raise
        if self.command.stdin:
            await self.write(self.command.stdin)
            await self.close_stdin()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._stream is not None:
            await self._stream.close()

    async def exit_code(self, timeout_s: float = 30.0) -> int:
        """The command's exit code once it ended (-1 if the engine cannot say)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            info = await self.docker._call("inspect exec", self._exec.inspect())
            if not info.get("Running"):
                code = info.get("ExitCode")
                return int(code) if code is not None else -1
            if loop.time() > deadline:
                return -1
            await asyncio.sleep(0.05)


async def run_small(docker: DockerExecutor, container: str, command: Exec) -> tuple[int, str, str]:
    """Run a command with a small output: (exit code, stdout, stderr)."""
    async with ExecStream(docker, container, command) as ex:
        out = await ex.drain()
        code = await ex.exit_code()
        return code, out.decode(errors="replace"), ex.error_text()
