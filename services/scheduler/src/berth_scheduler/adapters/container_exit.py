"""A one-off container's end, read from its engine: waiting until it exits (stopped at a deadline or when a
stop is asked) and the last lines it wrote. Shared by runs and pre-deploy commands."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from berth_scheduler.adapters import docker_logs
from berth_scheduler.adapters.docker import DockerExecutor
from berth_scheduler.domain import runs as domain

EPOCH = datetime.fromtimestamp(0, UTC)


async def wait_exit(
    docker: DockerExecutor,
    name: str,
    deadline: float,
    clock: Callable[[], float],
    poll_s: float,
    stop_asked: Callable[[], Awaitable[str | None]] | None = None,
) -> bool:
    """Until the container is no longer running; True when the deadline came first (it is then stopped:
    SIGTERM, SIGKILL ``STOP_GRACE_S`` later). ``stop_asked``: whether a stop was asked meanwhile (a cron
    job's run replaced by a newer firing, a cancelled run): then it is stopped and False is returned."""
    while True:
        info = await docker.inspect(name)
        if domain.next_step("running", info) is not domain.Step.WAIT:
            return False
        if stop_asked is not None and await stop_asked():
            await docker.stop(name, domain.STOP_GRACE_S)
            return False
        if clock() >= deadline:
            await docker.stop(name, domain.STOP_GRACE_S)
            return True
        await asyncio.sleep(min(poll_s, max(0.0, deadline - clock())))


async def written_lines(docker: DockerExecutor, name: str, info: dict[str, Any], keep: int) -> list[str]:
    """The last ``keep`` lines an exited container wrote, stdout and stderr merged by time."""
    params = {"stdout": "1", "stderr": "1", "tail": str(keep), "timestamps": "1"}
    written = await docker_logs.last_lines(docker, name, params, keep, tty=docker_logs.tty_of(info), timeout_s=30)
    return [line.text for line in sorted(written, key=lambda line: line.time or EPOCH)]
