"""The platform the multi-server tests run against: the scheduler and proxy-sync (real, in-process) with the
control plane's Traefik, set up to reach namespace test servers; and a wait for what the scheduler records.

Each test file gives its own scheduler timing (``scheduler`` overrides the defaults below). At the end the
platform stops, its Traefik too, and every container Berth made on the test servers is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from berth_proxy_sync.settings import ProxySyncSettings
from berth_scheduler.settings import SchedulerSettings
from tests.proxy.support import ProxySync, Traefik
from tests.scheduler.platform import Platform, Scheduler
from tests.support.testservers import TestServer

SCHEDULER_DEFAULTS: dict[str, Any] = {
    "drain_grace_s": 0.5,
    "readiness_timeout_s": 25,
    "route_timeout_s": 60,
    "readiness_interval_s": 0.1,
    "ssh_timeout_s": 3,
}


@contextlib.asynccontextmanager
async def server_platform(
    nats_url: str,
    urls: Mapping[str, str],
    tmp_root: Path,
    unique: str,
    servers: Iterable[TestServer],
    *,
    name: str,
    secret: str = "test-secret",
    **scheduler: Any,
) -> AsyncIterator[Platform]:
    """The started platform (``urls``: the provisioned services' database URLs); servers' Traefik files under
    ``tmp_root/servers-<unique>``."""
    root = tmp_root / f"traefik-{name}-{unique}"
    root.mkdir()
    traefik = Traefik(root).start()
    proxy = ProxySync(
        ProxySyncSettings(
            nats_url=nats_url,
            database_url=urls["proxy-sync"],
            http_port=0,
            traefik_dynamic_dir=traefik.dynamic_dir,
            traefik_api_url=traefik.api_url,
            server_traefik_root=str(tmp_root / f"servers-{unique}"),
            server_connect_timeout_s=3.0,
            server_setup_timeout_s=60.0,
        )
    )
    settings = {**SCHEDULER_DEFAULTS, **scheduler}
    sched = Scheduler(
        SchedulerSettings(nats_url=nats_url, database_url=urls["scheduler"], secret_key=secret, http_port=0, **settings)
    )
    platform = await Platform(nats_url, traefik, sched, proxy).start()
    try:
        yield platform
    finally:
        await platform.close()
        traefik.stop()
        for server in servers:
            with contextlib.suppress(Exception):
                made = server.docker("ps", "-aq", "--filter", "label=berth.managed=true").split()
                if made:
                    server.docker("rm", "-f", *made)


async def until_count(engine: Any, query: str, wanted: int, timeout: float = 20) -> None:
    """Wait until ``query`` (a count) answers ``wanted`` on the scheduler's database."""
    deadline = time.monotonic() + timeout
    while True:
        found = -1
        with contextlib.suppress(sa.exc.ProgrammingError):  # its migrations may still be running
            async with engine.connect() as conn:
                found = (await conn.execute(sa.text(query))).scalar()
        if found == wanted:
            return
        assert time.monotonic() < deadline, f"{query}: {found}, not {wanted}"
        await asyncio.sleep(0.1)
