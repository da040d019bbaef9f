"""Run the api in-process (the shared runtime's ``serve``) against the real nats-server and Postgres."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ssl
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from berth_api.adapters import identity as repo
from berth_api.bootstrap import VERSIONS, spec
from berth_api.domain import tokens
from berth_api.domain.roles import Role
from berth_api.settings import ApiSettings
from berth_cli.components import free_port
from berth_common.db import make_engine, make_sessionmaker
from berth_common.db.migrate import run_migrations
from berth_common.db.provision import provision
from berth_common.runtime import serve
from tests.support.procs import Postgres, create_database, provisioned

# The TLS settings of the tests' clients of the api (plain HTTP on loopback), built once: httpx builds a
# context for each client it makes, loading the CA bundle (30-70 ms of CPU), and an api test makes two.
CLIENT_TLS = ssl.create_default_context()


@dataclass
class RunningApi:
    settings: ApiSettings
    stop: asyncio.Event
    task: asyncio.Task[None]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}"

    @property
    def token_path(self) -> Path:
        return self.settings.admin_token_path

    def admin_token(self) -> str:
        return self.token_path.read_text().strip()

    async def shutdown(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 40)


async def start_api(settings: ApiSettings, timeout: float = 90.0, attempts: int = 3) -> RunningApi:
    """Serve the api and wait until /readyz answers 200 (fails fast if the service task dies). Its port is chosen
    free (``free_port``), but under parallel workers another process may bind it first: then it is served
    again on another (``attempts`` in all)."""
    for _ in range(attempts - 1):
        try:
            return await _start_api(settings, timeout)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            settings = settings.model_copy(update={"http_port": free_port()})
    return await _start_api(settings, timeout)


async def _start_api(settings: ApiSettings, timeout: float) -> RunningApi:
    stop = asyncio.Event()
    task = asyncio.create_task(serve(spec(settings), stop), name="api-under-test")
    running = RunningApi(settings=settings, stop=stop, task=task)
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient(base_url=running.url, timeout=2, verify=CLIENT_TLS) as client:
        while True:
            if task.done():
                task.result()  # raises the service's error
                raise RuntimeError("the api stopped before it was ready")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/readyz")).status_code == 200:
                    return running
            if asyncio.get_running_loop().time() > deadline:
                stop.set()
                raise TimeoutError("the api did not become ready")
            await asyncio.sleep(0.05)


@pytest.fixture(scope="session")
async def api_template(postgres: Postgres) -> str:
    """A database whose roles and schemas are provisioned and whose api schema is migrated to head, copied
    for each test (``CREATE DATABASE ... TEMPLATE``): migrating every revision again for each of the
    hundreds of api tests costs minutes of the suite. The migrations themselves are tested from an empty
    database (``empty_database``)."""
    name = f"tmpl_api_{uuid.uuid4().hex[:12]}"
    url = await create_database(postgres.admin_url, name)
    urls = await provision(url, "test-secret")
    engine = make_engine(urls["api"], "api")
    try:
        await run_migrations(engine, "api", VERSIONS)
    finally:
        await engine.dispose()
    return name


@pytest.fixture
async def database(postgres: Postgres, api_template: str) -> str:
    """A database for one api test: a copy of the migrated template (see ``api_template``)."""
    return await create_database(postgres.admin_url, f"t_{uuid.uuid4().hex[:12]}", template=api_template)


@pytest.fixture
async def api_urls(database: str) -> dict[str, str]:
    """Per-service role URLs on a fresh database (the api connects with its own role): the template's roles
    and schemas, provisioned again only when a test changed them (``provisioned``)."""
    return await provisioned(database, "test-secret")


@pytest.fixture
def api_settings(nats_server, api_urls, tmp_path: Path) -> ApiSettings:
    return ApiSettings(
        nats_url=nats_server.url,
        database_url=api_urls["api"],
        http_port=free_port(),
        data_dir=tmp_path / "data",
        status_timeout_s=1.0,
        shutdown_grace_s=10,
        webhook_status_poll_s=0.1,  # owed commit statuses and previews: sent a tenth of a second after they are due
    )


@pytest.fixture
async def api(api_settings: ApiSettings) -> AsyncIterator[RunningApi]:
    running = await start_api(api_settings)
    yield running
    if not running.task.done():
        await running.shutdown()


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, timeout=10, verify=CLIENT_TLS) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Identities:
    """Make users, memberships and tokens straight in the api schema (as issue 4's invitations will)."""

    def __init__(self, db_url: str) -> None:
        self.engine = make_engine(db_url, "api")
        self.sessionmaker = make_sessionmaker(self.engine)

    async def member(self, email: str, role: Role, team: str = "default") -> str:
        async with self.sessionmaker() as s, s.begin():
            from sqlalchemy import select

            from berth_api.adapters.tables import teams

            team_id = (await s.execute(select(teams.c.id).where(teams.c.name == team))).scalar()
            if team_id is None:
                team_id = await repo.create_team(s, team)
            user_id = await repo.create_user(s, email, email.split("@")[0])
            await repo.add_member(s, user_id, team_id, role)
        return user_id

    async def token(
        self, user_id: str, team: str = "default", *, name: str = "test", expires_at: datetime | None = None
    ) -> tuple[str, str]:
        """(plaintext, token id)."""
        from sqlalchemy import select

        from berth_api.adapters.tables import teams

        new = tokens.generate()
        async with self.sessionmaker() as s, s.begin():
            team_id = (await s.execute(select(teams.c.id).where(teams.c.name == team))).scalar_one()
            row = await repo.insert_token(s, user_id, team_id, name, new, expires_at)
        return new.plaintext, row["id"]

    async def close(self) -> None:
        await self.engine.dispose()


@pytest.fixture
async def identities(api_urls) -> AsyncIterator[Identities]:
    ids = Identities(api_urls["api"])
    yield ids
    await ids.close()


@dataclass
class Members:
    """Bearer headers of the default team's admin, developer and viewer, and of another team's admin."""

    admin: dict[str, str]
    developer: dict[str, str]
    viewer: dict[str, str]
    other: dict[str, str]


@pytest.fixture
async def members(api: RunningApi, identities: Identities) -> Members:
    async def make(email: str, role: Role, team: str = "default") -> dict[str, str]:
        user = await identities.member(email, role, team=team)
        token, _ = await identities.token(user, team=team)
        return bearer(token)

    return Members(
        admin=bearer(api.admin_token()),
        developer=await make("dev@example.com", "developer"),
        viewer=await make("view@example.com", "viewer"),
        other=await make("boss@other.example", "admin", team="other"),
    )


@pytest.fixture
async def scheduler(nats_server, api: RunningApi):
    """The scheduler's stand-in on the bus (started after the api, which declared the streams)."""
    from tests.api.scheduler_double import SchedulerDouble

    double = await SchedulerDouble(nats_server.url).start(serve_replicas=True)
    yield double
    await double.stop()


WEB_APP: dict = {
    "name": "shop",
    "source": {"kind": "image", "image": "registry.example.com:5000/acme/shop:1.0"},
    "services": [
        {"kind": "web", "name": "web", "port": 8080, "replicas": 2, "health_path": "/healthz"},
        {"kind": "worker", "name": "jobs", "command": ["python", "-m", "jobs"]},
    ],
    "env": [{"name": "LOG_LEVEL", "value": "debug"}],
    "limits": {"cpus": 0.5, "memory_mb": 256},
}


async def make_project(client: httpx.AsyncClient, headers: dict[str, str], name: str = "acme") -> dict:
    r = await client.post("/v1/projects", headers=headers, json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()


async def make_app(
    client: httpx.AsyncClient, headers: dict[str, str], body: dict | None = None, project: str = "acme"
) -> dict:
    """A project (if needed) and an application in its production environment."""
    projects = (await client.get("/v1/projects", headers=headers)).json()
    found = [p for p in projects if p["name"] == project]
    proj = found[0] if found else await make_project(client, headers, project)
    env = proj["environments"][0]
    r = await client.post(f"/v1/environments/{env['id']}/applications", headers=headers, json=body or WEB_APP)
    assert r.status_code == 201, r.text
    return r.json()
