"""What running a database needs from a server's engine beyond the replica operations of
:class:`DockerExecutor`: named volumes, a pull of a missing image, a restart, and commands run in the
container with secrets in the exec's environment (never in its argv when the tool reads them from there).

Every operation can be repeated: an existing volume or network is fine, an absent one is removed already.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from berth_common.dbengines import Exec
from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError
from berth_scheduler.adapters.docker_exec import ExecResult


class DatabaseEngine:
    """One server's engine, for databases."""

    def __init__(self, docker: DockerExecutor) -> None:
        self.docker = docker

    async def ensure_volume(self, body: dict[str, Any]) -> None:
        name = body["Name"]
        try:
            await self.docker._call(f"inspect volume {name}", self.docker.docker.get(f"volumes/{name}"))
        except DockerOperationError as exc:
            if exc.status != 404:
                raise
            await self.docker._call(
                f"create volume {name}", self.docker.docker.json("POST", "volumes/create", body=body)
            )

    async def volume_exists(self, name: str) -> bool:
        try:
            await self.docker._call(f"inspect volume {name}", self.docker.docker.get(f"volumes/{name}"))
        except DockerOperationError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def remove_volume(self, name: str) -> None:
        try:
            await self.docker._call(f"inspect volume {name}", self.docker.docker.get(f"volumes/{name}"))
            await self.docker._call(f"remove volume {name}", self.docker.docker.request("DELETE", f"volumes/{name}"))
        except DockerOperationError as exc:
            if exc.status != 404:
                raise

    async def has_image(self, image: str) -> bool:
        try:
            await self.docker._call(f"inspect image {image}", self.docker.docker.get(f"images/{image}/json"))
        except DockerOperationError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def pull(self, image: str, timeout_s: float = 600) -> None:
        """Pull ``image`` (a server without a registry answers with the reason)."""
        await self.docker._call(f"pull {image}", self.docker.pull(image), timeout_s)

    async def restart(self, name: str, timeout_s: int) -> None:
        await self.docker.restart(name, timeout_s)

    async def run(self, name: str, command: Exec, timeout_s: float = 30) -> ExecResult:
        """Run ``command`` in the container, its secrets in the exec's environment."""
        env = dict(command.env) or None
        return await self.docker.exec(name, list(command.argv), timeout_s, env=env, user=command.user or "")

    async def passes(self, name: str, command: Exec, timeout_s: float = 30) -> bool:
        """``command`` exits 0 (and prints what it must print)."""
        result = await self.run(name, command, timeout_s)
        return result.exit_code == 0 and (command.expect is None or command.expect in result.output)


CRASH_RESTARTS = 3  # restarts while waiting that make a crash loop (as replicas' ``crash_restarts``)


async def wait_ready(engine: DatabaseEngine, name: str, check: Exec, timeout_s: float, interval_s: float) -> str | None:
    """Wait until the database in container ``name`` passes ``check``: None once it does, else why not, with
    its last log lines: its container stopped (with the exit code), keeps exiting and being restarted (a crash
    loop: told at once, not at the deadline), or was not ready within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    first: int | None = None
    while True:
        info = await engine.docker.inspect(name)
        state = (info or {}).get("State") or {}
        restarts = int((info or {}).get("RestartCount") or 0)
        first = restarts if first is None else first
        if info is None or (not state.get("Running") and not state.get("Restarting")):
            logs = await engine.docker.logs(name, tail=15)
            return f"stopped (exit code {state.get('ExitCode')}): {logs}"
        if restarts - first >= CRASH_RESTARTS:
            logs = await engine.docker.logs(name, tail=15)
            return f"keeps exiting (exit code {state.get('ExitCode')}, restarted {restarts - first} times): {logs}"
        if state.get("Running") and not state.get("Restarting") and await _passes(engine, name, check):
            return None
        if time.monotonic() > deadline:
            logs = (await engine.docker.logs(name, tail=15)).strip()
            return f"was not ready within {timeout_s:.0f} s" + (f"; last log lines: {logs}" if logs else "")
        await asyncio.sleep(interval_s)


async def _passes(engine: DatabaseEngine, name: str, check: Exec) -> bool:
    """The check passes now; a container that stopped or is restarting between the inspection and the exec
    does not pass (the next inspection says why)."""
    try:
        return await engine.passes(name, check)
    except DockerOperationError as exc:
        if exc.status in (404, 409) or "restarting" in str(exc) or "not running" in str(exc):
            return False
        raise
