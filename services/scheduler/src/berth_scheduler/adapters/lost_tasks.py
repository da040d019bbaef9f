"""End the processes of a container's lost task (``domain/lost_tasks.py``) with a short-lived helper, through
the connection factory's client of the server's engine (local, or a remote server's forwarded socket)."""

from __future__ import annotations

import asyncio
import contextlib

from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError
from berth_scheduler.adapters.helper_container import HelperContainer
from berth_scheduler.domain import lost_tasks as dom

HELPER_TIMEOUT_S = 30.0
MAX_OUTPUT = 64 * 1024  # process ids, one per line


async def end_lost_task(docker: DockerExecutor, container_id: str, timeout_s: float = HELPER_TIMEOUT_S) -> list[int]:
    """The ids of the processes of ``container_id`` the helper ended (none: nothing of it ran);
    DockerOperationError when the helper could not run to its end."""
    name = dom.reaper_name(container_id)
    out = b""
    try:
        async with asyncio.timeout(timeout_s), HelperContainer(docker, name, dom.reaper_body(container_id)) as helper:
            async for chunk in helper.chunks():
                out = (out + chunk)[:MAX_OUTPUT]
            code, error = await helper.exit_code(timeout_s), helper.error_text()
    except TimeoutError:
        with contextlib.suppress(Exception):
            await docker.remove(name)
        raise DockerOperationError(
            f"ending the lost task of {container_id[:12]} took longer than {timeout_s:g} s"
        ) from None
    if code != 0:
        raise DockerOperationError(f"ending the lost task of {container_id[:12]} failed (exit {code}): {error[-300:]}")
    return dom.ended(out.decode(errors="replace"))
