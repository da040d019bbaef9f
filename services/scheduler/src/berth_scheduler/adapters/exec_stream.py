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

from berth_common.docker import Attached as EngineStream
from berth_common.docker import DockerUnavailable
from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError
from berth_scheduler.domain.dumps import Exec

STDERR_KEEP = 4000


class Attached:
    """An attached, multiplexed stream of the engine (an exec's or a container's): stdout in chunks, the end
    of stderr kept, stdin written and half-closed. ``tool`` names the command in error messages."""

    tool = "the command"
    _stream: EngineStream | None = None
    stderr = b""

    async def write(self, data: bytes) -> None:
        assert self._stream is not None
        await self._stream.write(data)

    async def close_stdin(self) -> None:
        """Half-close the attached connection: the command reads EOF, its output still arrives."""
        if self._stream is not None:
            self._stream.close_stdin()

    async def chunks(self) -> AsyncIterator[bytes]:
        """stdout, chunk by chunk, until the command closes it (stderr is kept in :attr:`stderr`)."""
        assert self._stream is not None
        while True:
            try:
                frame = await self._stream.read_frame()
            except (OSError, asyncio.IncompleteReadError) as exc:
                raise DockerUnavailable(f"the output of {self.tool} was cut: {exc}") from None
            if frame is None:
                return
            if frame[0] == 2:
                self.stderr = (self.stderr + frame[1])[-STDERR_KEEP:]
            elif frame[1]:
                yield frame[1]

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
        self._exec = ""
        self._stream: EngineStream | None = None
        self.stderr = b""

    async def __aenter__(self) -> ExecStream:
        what = f"exec {self.command.argv[0]} in {self.container}"
        config: dict[str, Any] = {
            "Cmd": list(self.command.argv),
            "AttachStdout": True,
            "AttachStderr": True,
            "AttachStdin": self.stdin,
            "Tty": False,
        }
        if self.command.env:
            config["Env"] = [f"{k}={v}" for k, v in self.command.env.items()]
        api = self.docker.docker
        try:
            made = await self.docker._call(what, api.json("POST", f"containers/{self.container}/exec", body=config))
            self._exec = str(made["Id"])
            start = api.attach("POST", f"exec/{self._exec}/start", body={"Detach": False, "Tty": False})
            self._stream = await self.docker._call(what, start)
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
            info = await self.docker._call("inspect exec", self.docker.docker.get(f"exec/{self._exec}/json"))
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
