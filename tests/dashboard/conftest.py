"""One api per test module, in-process on the real nats-server and Postgres (``tests/api/conftest.py``'s
``start_api``), with the scheduler played by ``SchedulerDouble``, and the members a dashboard test signs in as."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from berth_api.settings import ApiSettings
from berth_cli.components import free_port
from berth_common.db.provision import provision
from tests.api.conftest import Identities, RunningApi, start_api
from tests.support.procs import Postgres, create_database


@dataclass
class Dashboard:
    api: RunningApi
    scheduler: object
    admin: str
    developer: str
    viewer: str
    identities: Identities

    @property
    def url(self) -> str:
        return self.api.url + "/ui/"


@pytest.fixture(scope="module")
async def module_database(postgres: Postgres, services_template: str) -> str:
    """The module's database (the api's and the notifier's a test starts on it): a copy of the session's migrated
    template (``services_template``), so the services start on their schemas at head instead of running every
    revision again for each dashboard module."""
    return await create_database(postgres.admin_url, f"m_{uuid.uuid4().hex[:12]}", template=services_template)


@pytest.fixture(scope="module")
async def dashboard(module_nats_server, module_database, tmp_root) -> AsyncIterator[Dashboard]:
    from tests.api.scheduler_double import SchedulerDouble

    urls = await provision(module_database, "test-secret")
    settings = ApiSettings(
        nats_url=module_nats_server.url,
        database_url=urls["api"],
        http_port=free_port(),
        data_dir=tmp_root / f"dashboard-{free_port()}",
        status_timeout_s=1.0,
        shutdown_grace_s=10,
        trusted_proxies=["127.0.0.1/32"],  # the tests' X-Forwarded-Proto comes from a trusted proxy
    )
    api = await start_api(settings)
    scheduler = await SchedulerDouble(module_nats_server.url).start(serve_replicas=True)
    ids = Identities(urls["api"])
    tokens = {}
    for email, role in (("dev@example.com", "developer"), ("view@example.com", "viewer")):
        tokens[role] = (await ids.token(await ids.member(email, role)))[0]
    try:
        yield Dashboard(api, scheduler, api.admin_token(), tokens["developer"], tokens["viewer"], ids)
    finally:
        await scheduler.stop()
        await ids.close()
        await api.shutdown()
