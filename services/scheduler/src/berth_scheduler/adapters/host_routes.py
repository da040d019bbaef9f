"""The server's own routes and addresses, read by a short-lived helper in the host's network namespace
(:func:`berth_scheduler.domain.host_routes.helper_body`), through the connection factory's client of the
server's engine: the same call for the control plane's engine and a remote server's forwarded socket, no
SSH command."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from berth_scheduler.adapters.docker import DockerExecutor, DockerOperationError
from berth_scheduler.adapters.helper_container import HelperContainer
from berth_scheduler.domain import host_routes as dom

HELPER_TIMEOUT_S = 30.0
MAX_OUTPUT = 4 * 1024 * 1024  # far above a server's routing tables; a longer answer is refused, not cut


def helper_name() -> str:
    """A name of its own for each read (two deployments may read one server at once)."""
    return f"berth-host-routes-{uuid.uuid4().hex[:12]}"


async def read_host_network(docker: DockerExecutor, timeout_s: float = HELPER_TIMEOUT_S) -> dom.HostNetwork:
    """The server's routes and addresses; DockerOperationError when the helper cannot say."""
    name = helper_name()
    out = b""
    try:
        async with asyncio.timeout(timeout_s), HelperContainer(docker, name, dom.helper_body()) as helper:
            async for chunk in helper.chunks():
                out += chunk
                if len(out) > MAX_OUTPUT:
                    raise DockerOperationError(f"the routes of the server are longer than {MAX_OUTPUT} bytes")
            code, error = await helper.exit_code(timeout_s), helper.error_text()
    except TimeoutError:
        with contextlib.suppress(Exception):  # timed out while the engine was creating it
            await docker.remove(name)
        raise DockerOperationError(f"reading the routes of the server took longer than {timeout_s:g} s") from None
    if code != 0:
        raise DockerOperationError(f"reading the routes of the server failed (exit {code}): {error[-300:]}")
    return dom.parse(out.decode(errors="replace"))
