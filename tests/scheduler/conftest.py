"""Fixtures of the scheduler's tests: a busybox image, a Docker executor, cleanup by label."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator

import pytest

from berth_common.docker import DockerEngines, local_engine
from berth_scheduler.adapters.docker import DockerExecutor
from berth_scheduler.adapters.readiness import ReadinessChecker
from berth_scheduler.domain.readiness import ReadinessConfig
from tests.scheduler.images import busybox_image
from tests.support.procs import Postgres, create_database, migrated_template, provisioned


def _docker_ok() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "version"], capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="session")
def busybox() -> str:
    if not _docker_ok():
        pytest.skip("no Docker engine")
    return busybox_image()


def remove_labelled(label: str) -> None:
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True, check=False
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)


@pytest.fixture
def app_id(unique: str, busybox: str):
    """An application id for one test; every container it leads to is removed afterwards, and its private
    network (a compose application's): left behind, such networks use up the engine's address pools."""
    app = f"test-{unique}"
    yield app
    remove_labelled(f"berth.app={app}")
    subprocess.run(["docker", "network", "rm", f"berth-app-{app}"], capture_output=True, check=False)


@pytest.fixture
async def docker() -> AsyncIterator[DockerExecutor]:
    ex = DockerExecutor(DockerEngines(local_engine(None)))
    yield ex
    await ex.engines.close()


@pytest.fixture
async def readiness(docker: DockerExecutor) -> AsyncIterator[ReadinessChecker]:
    checker = ReadinessChecker(docker, ReadinessConfig(interval_s=0.1, attempt_timeout_s=1.0, worker_settle_s=0.5))
    yield checker
    await checker.close()


@pytest.fixture(scope="session")
async def scheduler_template(postgres: Postgres) -> str:
    """A database with the scheduler and proxy-sync provisioned and migrated (``migrated_template``)."""
    return await migrated_template(postgres.admin_url, ("scheduler", "proxy-sync"))


@pytest.fixture
async def database(postgres: Postgres, scheduler_template: str) -> str:
    """A database for one scheduler test: a copy of ``scheduler_template`` (the scheduler and proxy-sync the
    test starts find their schemas at head). Other schemas a test makes on it are its own."""
    return await create_database(postgres.admin_url, f"t_{uuid.uuid4().hex[:12]}", template=scheduler_template)


@pytest.fixture
async def platform(nats_server, database, traefik_spares, busybox):
    """Scheduler + proxy-sync (real) + Traefik (real, fresh: ``traefik_spares``) on a fresh bus and database."""
    from berth_proxy_sync.settings import ProxySyncSettings
    from berth_scheduler.settings import SchedulerSettings
    from tests.proxy.support import ProxySync
    from tests.scheduler.platform import Platform, Scheduler

    urls = await provisioned(database, "test-secret", ("scheduler", "proxy-sync"))
    traefik = traefik_spares.take()
    proxy = ProxySync(
        ProxySyncSettings(
            nats_url=nats_server.url,
            database_url=urls["proxy-sync"],
            http_port=0,
            traefik_dynamic_dir=traefik.dynamic_dir,
            traefik_api_url=traefik.api_url,
        )
    )
    scheduler = Scheduler(
        SchedulerSettings(
            nats_url=nats_server.url,
            database_url=urls["scheduler"],
            secret_key="test-secret",
            http_port=0,
            drain_grace_s=1.5,
            readiness_timeout_s=30,
            route_timeout_s=15,
            readiness_interval_s=0.1,
            worker_settle_s=0.5,
        )
    )
    p = await Platform(nats_server.url, traefik, scheduler, proxy).start()
    yield p
    await p.close()
    traefik.kill()  # thrown away: no graceful second (``Traefik.kill``)
