"""Fixtures for proxy-sync tests: a real Traefik per test, loopback upstreams, the service, a route client."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from berth_common.db.provision import provision
from berth_proxy_sync.settings import ProxySyncSettings
from tests.proxy.support import ProxySync, RouteClient, Traefik, Upstream
from tests.support.procs import Postgres, create_database, migrated_template


@pytest.fixture(scope="session")
async def proxy_template(postgres: Postgres) -> str:
    """A database with proxy-sync provisioned and migrated (``migrated_template``)."""
    return await migrated_template(postgres.admin_url, ("proxy-sync",))


@pytest.fixture
async def database(postgres: Postgres, proxy_template: str) -> str:
    """A database for one proxy test: a copy of ``proxy_template`` (the proxy-sync it starts migrates nothing);
    the migrations themselves are tested on ``empty_database``."""
    return await create_database(postgres.admin_url, f"t_{uuid.uuid4().hex[:12]}", template=proxy_template)


@pytest.fixture
def traefik(traefik_spares) -> Iterator[Traefik]:
    """A fresh Traefik, already up (started while the test before ran: ``traefik_spares``)."""
    t = traefik_spares.take()
    yield t
    t.kill()  # thrown away: no graceful second (``Traefik.kill``)


@pytest.fixture
def upstream() -> Iterator[Callable[[str], Upstream]]:
    made: list[Upstream] = []

    def make(name: str) -> Upstream:
        u = Upstream(name).start()
        made.append(u)
        return u

    yield make
    for u in made:
        u.stop()


@pytest.fixture
async def proxy_settings(nats_server, database, traefik) -> ProxySyncSettings:
    urls = await provision(database, "test-secret", ("proxy-sync",))
    return ProxySyncSettings(
        nats_url=nats_server.url,
        database_url=urls["proxy-sync"],
        http_port=0,
        traefik_dynamic_dir=traefik.dynamic_dir,
        traefik_api_url=traefik.api_url,
        route_live_timeout_s=10.0,
    )


@pytest.fixture
async def proxy_sync(proxy_settings) -> AsyncIterator[ProxySync]:
    svc = await ProxySync(proxy_settings).start()
    yield svc
    await svc.stop()


@pytest.fixture
async def routes(nats_server) -> AsyncIterator[RouteClient]:
    client = await RouteClient(nats_server.url).start()
    yield client
    await client.close()
