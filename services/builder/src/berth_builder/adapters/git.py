"""Runs the git commands of a clone plan: argv lists, a clean environment, a deadline, output streamed.

Each git process gets its own process group; on timeout (or cancellation) the whole group is killed, so
helpers it started (``git-remote-https``, ``ssh``) go with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from berth_builder.domain.clone import GitCommand

LineSink = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class GitRunner:
    def __init__(self, max_output: int = 1024 * 1024) -> None:
        self.max_output = max_output
        self.started: int = 0  # how many git processes ran (observable by tests)

    async def run(
        self,
        command: GitCommand,
        env: Mapping[str, str],
        timeout_s: float,
        on_line: LineSink | None = None,
    ) -> GitResult:
        self.started += 1
        proc = await asyncio.create_subprocess_exec(
            *command.argv,
            cwd=command.cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        out_parts: list[bytes] = []
        err_lines: list[str] = []

        async def read_stdout(stream: asyncio.StreamReader) -> None:
            size = 0
            while chunk := await stream.read(65536):
                if size < self.max_output:
                    out_parts.append(chunk)
                size += len(chunk)

        async def read_stderr(stream: asyncio.StreamReader) -> None:
            buf = b""
            while chunk := await stream.read(4096):
                buf += chunk.replace(b"\r", b"\n")
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    await _emit(raw)
            if buf:
                await _emit(buf)

        async def _emit(raw: bytes) -> None:
            line = raw.decode(errors="replace").rstrip()
            if not line:
                return
            if sum(len(x) for x in err_lines) < self.max_output:
                err_lines.append(line)
            if on_line is not None:
                await on_line(line)

        timed_out = False
        readers = asyncio.gather(read_stdout(proc.stdout), read_stderr(proc.stderr))
        try:
            async with asyncio.timeout(timeout_s):
                await readers
                await proc.wait()
        except TimeoutError:
            timed_out = True
            _kill_group(proc)
            readers.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await readers
            await proc.wait()
        except BaseException:
            _kill_group(proc)
            readers.cancel()
            with contextlib.suppress(BaseException):
                await proc.wait()
            raise
        return GitResult(
            returncode=proc.returncode if proc.returncode is not None else -1,
            stdout=b"".join(out_parts).decode(errors="replace"),
            stderr="\n".join(err_lines),
            timed_out=timed_out,
        )
