"""A short-lived helper container with its output streamed: created, attached (before it starts, so no byte
is missed), started, read to its end and waited for, then removed whatever happened (a leftover of the same
name from an interrupted run is removed first). Through the connection factory's client of the server's
engine (local, or a remote server's forwarded socket), like :mod:`adapters.exec_stream`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError
from berth_scheduler.adapters.exec_stream import Attached


class HelperContainer(Attached):
    def __init__(self, docker: DockerExecutor, name: str, body: dict[str, Any]) -> None:
        self.docker, self.name, self.body = docker, name, body
        self.tool = str(body["Cmd"][0])
        self.stdin = bool(body.get("OpenStdin"))
        self._stream = None
        self.stderr = b""

    async def __aenter__(self) -> HelperContainer:
        await create(self.docker, self.name, self.body)
        try:
            params = {"stream": True, "stdout": True, "stderr": True, "stdin": self.stdin}
            attach = self.docker.docker.attach("POST", f"containers/{self.name}/attach", params=params)
            self._stream = await self.docker._call(f"attach {self.name}", attach)
            await self.docker.start(self.name)
        except BaseException:
            await self._remove()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._remove()

    async def _remove(self) -> None:
        """Close the stream and remove the container (kills it if it still runs), even when cancelled."""
        if self._stream is not None:
            with contextlib.suppress(Exception):
                await self._stream.close()
            self._stream = None
        with contextlib.suppress(Exception):
            await asyncio.shield(self.docker.remove(self.name))

    async def exit_code(self, timeout_s: float = 60.0) -> int:
        """The helper's exit code once it ended (-1 if the engine cannot say)."""
        wait = self.docker.docker.json("POST", f"containers/{self.name}/wait", timeout=None)
        info = await self.docker._call(f"wait {self.name}", wait, timeout_s)
        code = (info or {}).get("StatusCode")
        return int(code) if code is not None else -1


async def create(docker: DockerExecutor, name: str, body: dict[str, Any]) -> None:
    """Create the helper ``name`` (not started), a leftover of the same name removed first."""
    await docker.remove(name)
    try:
        made = docker.docker.json("POST", "containers/create", params={"name": name}, body=body)
        await docker._call(f"create {name}", made)
    except DockerOperationError as exc:
        if exc.status == 404 and "volume" not in str(exc).lower():
            raise DockerOperationError(f"image {body['Image']!r} is not on server {docker.server_id}", 404) from None
        raise


@contextlib.asynccontextmanager
async def created(docker: DockerExecutor, name: str, body: dict[str, Any]) -> AsyncIterator[str]:
    """The helper ``name`` created for another process to attach and start; removed whatever happened. A
    cancelled caller still waits for the removal, so what runs next (an undo removing the helper's volume)
    never finds the helper half removed."""
    try:
        await create(docker, name, body)  # a creation cut short may still complete on the engine
        yield name
    finally:
        removal = asyncio.ensure_future(docker.remove(name))
        try:
            with contextlib.suppress(Exception):
                await asyncio.shield(removal)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await removal
            raise


async def run_helper(docker: DockerExecutor, name: str, body: dict[str, Any]) -> tuple[int, str]:
    """Run a helper with a small output to its end: (exit code, stderr)."""
    async with HelperContainer(docker, name, body) as helper:
        await helper.drain()
        return await helper.exit_code(), helper.error_text()
