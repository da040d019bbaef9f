"""One api per test module (NATS, Postgres, the scheduler's stand-in on the bus), for modules whose tests
share it: import the fixtures by name (``from tests.api.module_api import api, api_settings, ...``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from berth_api.settings import ApiSettings
from berth_cli.components import free_port
from berth_common.db.provision import provision
from tests.api.conftest import CLIENT_TLS, Identities, Members, bearer, start_api


@pytest.fixture(scope="module")
async def api_urls(module_database: str) -> dict[str, str]:
    return await provision(module_database, "test-secret")


@pytest.fixture(scope="module")
def base_api_settings(module_nats_server, api_urls, tmp_path_factory) -> ApiSettings:
    """The module api's settings; a module changes them by its own ``api_settings`` built on these."""
    return ApiSettings(
        nats_url=module_nats_server.url,
        database_url=api_urls["api"],
        http_port=free_port(),
        data_dir=tmp_path_factory.mktemp("module-api") / "data",
        status_timeout_s=1.0,
        shutdown_grace_s=10,
        webhook_debounce_s=0.2,
    )


@pytest.fixture(scope="module")
def api_settings(base_api_settings) -> ApiSettings:
    return base_api_settings


@pytest.fixture(scope="module")
async def api(api_settings):
    running = await start_api(api_settings)
    yield running
    await running.shutdown()


@pytest.fixture(scope="module")
async def client(api) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, timeout=10, verify=CLIENT_TLS) as c:
        yield c


@pytest.fixture(scope="module")
async def members(api, api_urls) -> AsyncIterator[Members]:
    ids = Identities(api_urls["api"])

    async def make(email: str, role, team: str = "default") -> dict[str, str]:
        token, _ = await ids.token(await ids.member(email, role, team=team), team=team)
        return bearer(token)

    yield Members(
        admin=bearer(api.admin_token()),
        developer=await make("dev@example.com", "developer"),
        viewer=await make("view@example.com", "viewer"),
        other=await make("boss@other.example", "admin", team="other"),
    )
    await ids.close()


@pytest.fixture(scope="module")
async def scheduler(module_nats_server, api):
    from tests.api.scheduler_double import SchedulerDouble

    double = await SchedulerDouble(module_nats_server.url).start(serve_replicas=True)
    yield double
    await double.stop()


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 20.0, what: str = "condition") -> Any:
    """What ``check`` answers once it answers something true (polled every 0.1 s; fails after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)
