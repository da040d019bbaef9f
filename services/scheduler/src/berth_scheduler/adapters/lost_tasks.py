"""Run the helpers of ``domain/lost_tasks.py`` and ``domain/stale_ports.py`` on a server: the reaper that ends
the processes of a container's lost task, the sweeper that ends the processes of containers an engine's crash
left running unknown to it, and the port sweeper that deletes the bridges' ports no container is behind.
Short-lived helper containers, through the connection factory's client of the server's engine (local, or a
remote server's forwarded socket)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from berth_common.labels import MANAGED
from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError
from berth_scheduler.adapters.helper_container import HelperContainer
from berth_scheduler.domain import lost_tasks as dom
from berth_scheduler.domain import stale_ports as ports

HELPER_TIMEOUT_S = 30.0
MAX_OUTPUT = 64 * 1024  # process ids, one per line


async def end_lost_task(docker: DockerExecutor, container_id: str, timeout_s: float = HELPER_TIMEOUT_S) -> list[int]:
    """The ids of the processes of ``container_id`` the helper ended (none: nothing of it ran);
    DockerOperationError when the helper could not run to its end."""
    what = f"ending the lost task of {container_id[:12]}"
    out = await _run(docker, dom.reaper_name(container_id), dom.reaper_body(container_id), what, timeout_s)
    return dom.ended(out)


async def end_orphans(docker: DockerExecutor, timeout_s: float = HELPER_TIMEOUT_S) -> list[int]:
    """The ids of the processes the sweeper ended: those of containers the engine no longer has (listed after
    its clock was read); DockerOperationError when the sweeper could not run to its end."""
    info = await docker._call("info", docker.docker.get("info"))
    listed_at = dom.engine_seconds(str((info or {}).get("SystemTime") or ""))
    known = [c.id for c in await docker.list_containers({})]
    what = "ending the processes of containers the engine no longer has"
    return dom.ended(await _run(docker, dom.SWEEPER_NAME, dom.sweeper_body(listed_at, known), what, timeout_s))


async def end_stale_ports(docker: DockerExecutor, timeout_s: float = HELPER_TIMEOUT_S) -> list[str]:
    """The names of the veths the port sweeper deleted from the Berth networks' bridges (``domain/stale_ports``:
    those no namespace of the engine's containers is behind, seen so twice); DockerOperationError when it could
    not run to its end. Nothing runs on a server with no Berth bridge network."""
    bridges = ports.berth_bridges(await docker.list_networks({"driver": ["bridge"], "label": [f"{MANAGED}=true"]}))
    if not bridges:
        return []
    what = "deleting the ports no container is behind"
    body = ports.port_sweeper_body(bridges)
    out = await _run(docker, ports.PORT_SWEEPER_NAME, body, what, timeout_s + ports.APART_S)
    return ports.deleted(out)


async def _run(docker: DockerExecutor, name: str, body: dict[str, Any], what: str, timeout_s: float) -> str:
    """Run the helper ``name`` to its end; what it printed."""
    out = b""
    try:
        async with asyncio.timeout(timeout_s), HelperContainer(docker, name, body) as helper:
            async for chunk in helper.chunks():
                out = (out + chunk)[:MAX_OUTPUT]
            code, error = await helper.exit_code(timeout_s), helper.error_text()
    except TimeoutError:
        with contextlib.suppress(Exception):
            await docker.remove(name)
        raise DockerOperationError(f"{what} took longer than {timeout_s:g} s") from None
    if code != 0:
        raise DockerOperationError(f"{what} failed (exit {code}): {error[-300:]}")
    return out.decode(errors="replace")
