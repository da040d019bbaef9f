"""The scheduler's engine executor for a test server's engine (its own unix socket), as Berth reaches a
server's engine once connected, for tests that drive the scheduler's adapters against a real engine."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from berth_common.docker import DockerEngines, local_engine
from berth_common.docker.engine import Engine, endpoint
from berth_scheduler.adapters.docker import DockerExecutor
from tests.support.testservers import TestServer


@contextlib.asynccontextmanager
async def server_executor(server: TestServer, server_id: str) -> AsyncIterator[DockerExecutor]:
    """The executor of ``server``'s engine under ``server_id``; its connections closed at the end."""
    engines = DockerEngines(local_engine(None))
    await engines.add(Engine(endpoint(server.docker_host), "v1.41", server_id))
    try:
        yield DockerExecutor(engines, server_id)
    finally:
        await engines.close()
