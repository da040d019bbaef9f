"""The api as a separate ``berth-api`` process on a loopback port, with real nats-server and Postgres, and
one identity per way of asking: admin, developer, viewer, another team's admin, no token, an expired
token and a revoked one. One api per test module (the modules change its data in different ways).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from benchmarks.support.api_server import ApiProcess, ServiceProcess
from berth_common.db.provision import provision
from tests.api.conftest import Identities, bearer
from tests.support.procs import NatsServer, create_database

# Identities in the order the matrix asks them (those refused first, the admin last).
IDENTITIES = ("no_token", "expired", "revoked", "viewer", "other_team", "developer", "admin")
# The role each identity's token carries in its team (no_token has none).
ROLE_OF = {
    "expired": "admin",
    "revoked": "admin",
    "viewer": "viewer",
    "other_team": "admin",
    "developer": "developer",
    "admin": "admin",
}
UNAUTHENTICATED = ("no_token", "expired", "revoked")
# The services the api asks over the bus for its own routes (notification channels, metrics, alert rules)
# run too, so those routes answer with real data; the scheduler does not (deployments stay queued).
COMPANIONS = ("notifier", "metrics")
API_ENV = {
    # Quick answers where the api asks a service that does not run (the scheduler's replicas, /v1/status).
    "BERTH_STATUS_TIMEOUT_S": "0.2",
    "BERTH_REPLICAS_TIMEOUT_S": "0.2",
    "BERTH_VOLUMES_TIMEOUT_S": "0.2",
    # The host path the application bodies of the sweep bind-mount under (payloads.BIND_ROOT).
    "BERTH_BIND_MOUNT_ALLOW": '["/srv/berth-shared"]',
    "BERTH_SHUTDOWN_GRACE_S": "2",
    # These tests send hundreds of refused requests from one address on purpose: the brute-force limiter
    # (its own tests are the api's) would turn the 401s being checked into 429s.
    "BERTH_AUTH_FAILURES_PER_ADDRESS": "0",
    "BERTH_AUTH_FAILURES_PER_PREFIX": "0",
}
# An idle connection is let go well before the api's keep-alive of 5 s ends it, so a request never goes out on
# one the api is closing at that moment (a read error, not an answer).
KEEP_ALIVE = httpx.Limits(keepalive_expiry=1.0)
SERVICE_ENV = {"BERTH_MIGRATE_IN_SUBPROCESS": "false"}  # one Python start less per service


@dataclass
class LiveApi:
    process: ApiProcess
    db_url: str
    identities: Identities
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    companions: list[ServiceProcess] = field(default_factory=list)
    # Path parameters no collection of the api creates: a member's user id, the server Berth runs on.
    seeds: dict[str, str] = field(default_factory=dict)
    team_user_ids: set[str] = field(default_factory=set)

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def data_dir(self) -> Path:
        return self.process.data_dir

    @property
    def admin(self) -> dict[str, str]:
        return self.headers["admin"]

    def client(self, timeout: float = 15) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout, limits=KEEP_ALIVE)


async def _cast(api: LiveApi) -> None:
    """The identities' headers; a spare member of the default team (the ``{user_id}`` the matrix may
    demote and remove); the ids of the default team's users (another team must never see them)."""
    ids = api.identities

    async def member(role: str, team: str = "default", expires_at: datetime | None = None) -> tuple[str, str]:
        user = await ids.member(f"{role}-{uuid.uuid4().hex[:8]}@example.com", role, team=team)  # type: ignore[arg-type]
        if team == "default":
            api.team_user_ids.add(user)
        return await ids.token(user, team=team, expires_at=expires_at)

    headers = {"no_token": {}, "admin": bearer(api.process.admin_token())}
    for role in ("viewer", "developer"):
        headers[role] = bearer((await member(role))[0])
    headers["other_team"] = bearer((await member("admin", team="other"))[0])
    headers["expired"] = bearer((await member("admin", expires_at=datetime.now(UTC) - timedelta(seconds=1)))[0])
    revoked, revoked_id = await member("admin")
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as c:
        assert (await c.get("/v1/me", headers=bearer(revoked))).status_code == 200
        r = await c.delete(f"/v1/tokens/{revoked_id}", headers=headers["admin"])
        assert r.status_code == 200 and r.json()["revoked_at"], r.text
        me = await c.get("/v1/me", headers=headers["admin"])
        api.team_user_ids.add(me.json()["user"]["id"])
    headers["revoked"] = bearer(revoked)
    spare = await ids.member(f"spare-{uuid.uuid4().hex[:8]}@example.com", "developer")
    api.team_user_ids.add(spare)
    api.seeds = {"user_id": spare, "server_id": "local", "slug": "adminer", "logo_file": "plausible.svg"}
    api.headers = headers


@pytest.fixture(scope="module")
async def live_api(postgres, services_template: str, tmp_root: Path) -> AsyncIterator[LiveApi]:
    """``berth-api`` in its own process (uvicorn on a free loopback port) with its cast of identities, on a copy of
    the session's migrated template (``services_template``): its processes find their schemas at head."""
    run = tmp_root / f"security-{uuid.uuid4().hex[:8]}"
    (run / "nats").mkdir(parents=True)
    nats = NatsServer(run / "nats").start()
    database = await create_database(postgres.admin_url, f"t_{uuid.uuid4().hex[:12]}", template=services_template)
    urls = await provision(database, "test-secret")
    process = ApiProcess("api", nats.url, urls["api"], run / "data", extra_env={**SERVICE_ENV, **API_ENV})
    companions = [ServiceProcess(name, nats.url, urls[name], run / name, extra_env=SERVICE_ENV) for name in COMPANIONS]
    identities = Identities(urls["api"])
    try:
        for service in [process, *companions]:
            service.spawn()
        for service in [process, *companions]:
            service.wait_ready(90)
        api = LiveApi(process, urls["api"], identities, companions=companions)
        await _cast(api)
        yield api
        for service in [process, *companions]:
            assert service.alive(), f"{service.service} died during the tests:\n{service.log_tail()}"
    finally:
        with ThreadPoolExecutor() as pool:  # each waits for its own graceful stop: all at once
            list(pool.map(lambda service: service.stop(), [process, *companions]))
        await identities.close()
        nats.stop()
