"""What the accessibility crawl (``test_accessibility.py``) finds: an application with a succeeded and a
failed deployment and a compose application with routes (the scheduler played by the dashboard's
``SchedulerDouble``), a team server whose validation failed on a changed host key, a one-click database
(running, as the scheduler reports it) with a directory destination, a verified backup and a restore into a
new database (reached by its link on the database's backups page), notification channels (one disabled)
with a subscription and a delivered test message, and alert rules. All through the REST API and the bus,
as the scheduler would answer: nothing is deployed, no SSH connection is tried, no container runs. And a
second team the developer belongs to (``SHARED_TEAM``, with an admin of its own), for the developer's team
switch and leave, and a third the developer is an admin of (``OWN_TEAM``) with a never deployed
application, which the developer deletes from its page."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa
from nats.js.errors import NotFoundError

from berth_api.adapters import identity
from berth_api.adapters.tables import teams
from berth_common import ssh_keys
from berth_common.bus.streams import CMD_STREAM
from berth_common.catalogue import BackupObject, BackupSucceeded, DatabaseChanged, ServerValidated
from tests.api.conftest import bearer

SECRET = "s3cr3t-a11y-value"  # an application's secret variable: in no page's HTML, nor are these
HOOK_SECRET = "whsec-a11y-Signing-Secret-4711"
HOOK_PATH = "/hooks/a11yHookPath0815"  # the channel's URL is write-only too
SECRETS = (SECRET, HOOK_SECRET, HOOK_PATH.strip("/"))
SHARED_TEAM = "shared-a11y"
OWN_TEAM, OWN_APP = "own-a11y", "doomed"  # a team the developer is an admin of, and its application
CHECKS = ("reachable", "authentication", "host_key", "docker", "docker_socket", "docker_version", "disk")


@dataclass
class Seeded:
    """The ids the crawl, the role checks and the developer's posts use."""

    app: dict[str, Any]
    routed: dict[str, Any]  # the compose application (its routes form)
    server: str = ""
    database: str = ""
    backup: str = ""
    restore: str = ""
    channels: list[str] = field(default_factory=list)
    own_app: str = ""  # OWN_APP in OWN_TEAM
    own_token: str = ""  # the developer's token for OWN_TEAM (the posts' effects there are read with it)


async def ok(r: httpx.Response, status: int | tuple[int, ...] = (200, 201, 202)) -> Any:
    assert r.status_code in ((status,) if isinstance(status, int) else status), (r.request.url, r.text)
    return r.json() if r.content else None


async def until(api: httpx.AsyncClient, path: str, key: str, value: str) -> dict[str, Any]:
    """``path``'s answer once its ``key`` is ``value`` (the api consumed the event; 30 s on a busy machine)."""
    for _ in range(600):
        got = (await api.get(path)).json()
        if got.get(key) == value:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path}: {key} never {value}: {got}")


async def server(api: httpx.AsyncClient, bus: Any, team: str) -> str:
    """A team server whose first validation found a changed host key (the checks table, the offered key, the
    admin's actions on its page)."""
    s = await ok(await api.post("/v1/servers", json={"name": "edge-a11y", "host": "203.0.113.41"}), 201)
    checks = [
        {"name": c, "ok": c != "host_key", "detail": "not the pinned key" if c == "host_key" else "fine"}
        for c in CHECKS
    ]
    event = ServerValidated(
        server_id=s["id"],
        team_id=team,
        attempt=1,
        state="unreachable",
        reason="the host key is not the one pinned",
        checks=checks,
        host_key=ssh_keys.generate_key_pair()[1],
        offered_host_key=ssh_keys.generate_key_pair()[1],
        docker_version="27.3.1",
        architecture="x86_64",
        free_bytes=40 * 2**30,
    )
    await bus.publish(event)
    await until(api, f"/v1/servers/{s['id']}", "state", "unreachable")
    return s["id"]


async def database(api: httpx.AsyncClient, bus: Any, team: str) -> str:
    """A one-click PostgreSQL database, reported running by the scheduler (its run command read off the work
    queue, where no scheduler takes it)."""
    db = await ok(await api.post("/v1/databases", json={"name": "ledger", "engine": "postgresql"}), (201, 202))
    data: dict[str, Any] = {}
    for _ in range(600):  # the outbox publishes the command soon after the answer
        with contextlib.suppress(NotFoundError):
            data = json.loads((await bus.js.get_last_msg(CMD_STREAM, "cmd.database.run")).data)["data"]
        if data and data["spec"]["database_id"] == db["id"]:
            break
        await asyncio.sleep(0.05)
    assert data and data["spec"]["database_id"] == db["id"], f"no cmd.database.run for {db['id']}"
    event = DatabaseChanged(
        database_id=db["id"], team_id=team, request_id=data["request_id"], state="running", host="berth-db-ledger"
    )
    await bus.publish(event)
    await until(api, f"/v1/databases/{db['id']}", "state", "running")
    return db["id"]


async def backup_and_restore(api: httpx.AsyncClient, bus: Any, team: str, db: str) -> tuple[str, str]:
    """A directory destination, a backup of ``db`` verified there (so its page offers the restore forms) and a
    restore of it into a new database (waiting)."""
    body = {"kind": "directory", "name": "vault", "path": "/var/backups/berth", "server_id": "local"}
    dest = await ok(await api.post("/v1/backup-destinations", json=body), 201)
    backup = await ok(await api.post(f"/v1/databases/{db}/backups", json={"destinations": [dest["id"]]}), 202)
    obj = BackupObject(destination="dir:local:/var/backups/berth", key="db/ledger.dump.zst", size=4096, sha256="a" * 64)
    done = BackupSucceeded(
        backup_id=backup["id"],
        team_id=team,
        database_id=db,
        engine="postgresql",
        database="ledger",
        compression="zstd",
        objects=[obj],
        duration_s=0.4,
    )
    await bus.publish(done)
    await until(api, f"/v1/backups/{backup['id']}", "state", "succeeded")
    body = {"backup_id": backup["id"], "target": "new", "name": "ledger-copy"}
    restore = await ok(await api.post(f"/v1/databases/{db}/restore", json=body), 202)
    return backup["id"], restore["id"]


async def notifications(api: httpx.AsyncClient, hook_url: str) -> list[str]:
    """A webhook channel (its URL and signing secret write-only) subscribed to failed deployments, with a
    delivered test message in the log, and a disabled Slack channel without subscriptions."""
    target = {"kind": "webhook", "url": hook_url, "signing_secret": HOOK_SECRET}
    hook = await ok(await api.post("/v1/notification-channels", json={"name": "ops-a11y", "target": target}), 201)
    body = {"event_types": ["evt.deployment.failed", "evt.alert.>"]}
    await ok(await api.post(f"/v1/notification-channels/{hook['id']}/subscriptions", json=body), 201)
    await ok(await api.post(f"/v1/notification-channels/{hook['id']}/test", json={"wait_s": 10}))
    log = "/v1/notification-deliveries?status=delivered&channel_id=" + hook["id"]
    for _ in range(300):  # delivered within wait_s unless the machine is busy
        if (await api.get(log)).json():
            break
        await asyncio.sleep(0.1)
    assert (await api.get(log)).json(), "the test message was never delivered"
    target = {"kind": "slack", "webhook_url": "http://127.0.0.1:9/services/T0/B0/a11y"}
    slack = await ok(await api.post("/v1/notification-channels", json={"name": "quiet", "target": target}), 201)
    await ok(await api.patch(f"/v1/notification-channels/{slack['id']}", json={"enabled": False}))
    return [hook["id"], slack["id"]]


async def alert_rules(api: httpx.AsyncClient, app: str) -> None:
    for body in (
        {"name": "reader memory", "target_kind": "app", "target_id": app, "metric": "mem_pct", "threshold": 90},
        {"name": "", "target_kind": "server", "target_id": "*", "metric": "disk_pct", "threshold": 85, "for_s": 300},
    ):
        await ok(await api.post("/v1/alert-rules", json=body), 201)


async def applications(dashboard: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The application with its two deployments and the compose application with a path route."""
    sched = dashboard.scheduler
    async with httpx.AsyncClient(base_url=dashboard.api.url, headers=bearer(dashboard.admin)) as api:
        project = (await api.post("/v1/projects", json={"name": "access"})).json()
        env = project["environments"][0]["id"]
        body = {
            "name": "reader",
            "source": {"kind": "image", "image": "nginx:1.27"},
            "services": [{"kind": "web", "name": "web", "port": 80, "domains": ["reader.example.com"]}],
            "env": [
                {"name": "API_KEY", "value": SECRET, "secret": True},
                {"name": "LOG_LEVEL", "value": "info"},
            ],
        }
        r = await api.post(f"/v1/environments/{env}/applications", json=body)
        assert r.status_code == 201, r.text
        app = r.json()
        for number, ok in ((1, True), (2, False)):
            r = await api.post(f"/v1/applications/{app['id']}/deployments", json={})
            assert r.is_success, r.text
            start = (await sched.wait_for("cmd.deployment.start", count=number))[number - 1]
            dep = start.data["deployment_id"]
            await sched.log(dep, "Step 1/2 : FROM nginx:1.27", stream="build")
            await sched.log(dep, "[starting] starting replicas")
            if ok:
                await sched.run_to_success(start)
                sched.set_replicas(app["id"], dep, [("running", "ready"), ("running", "unready")])
            else:
                await sched.failed(dep, app["id"], start.data["team_id"], "replica web.1 exited with code 1")
            for _ in range(100):
                state = (await api.get(f"/v1/deployments/{dep}")).json()["state"]
                if state in ("succeeded", "failed"):
                    break
                await asyncio.sleep(0.1)
        compose = {
            "name": "routed",
            "compose": {"inline": "services:\n  front:\n    image: nginx:1.27\n  api:\n    image: nginx:1.27\n"},
            "hosts": [{"service": "front", "port": 80}, {"service": "api", "port": 80, "path": "/api"}],
        }
        r = await api.post(f"/v1/environments/{env}/applications", json=compose)  # its page has the routes form
        assert r.status_code == 201, r.text
    return app, r.json()


async def seed(
    url: str, admin: str, bus: Any, app: dict[str, Any], routed: dict[str, Any], hook_url: str, own: tuple[str, str]
) -> Seeded:
    """Everything above, for the team of ``admin``; ``bus`` publishes as the scheduler; ``own``: what
    ``developer_teams`` answered."""
    out = Seeded(app, routed, own_app=own[0], own_token=own[1])
    async with httpx.AsyncClient(base_url=url, headers=bearer(admin), timeout=30) as api:
        team = (await ok(await api.get("/v1/me")))["team"]["id"]
        out.server, out.database = await asyncio.gather(server(api, bus, team), database(api, bus, team))
        out.backup, out.restore = await backup_and_restore(api, bus, team, out.database)
        out.channels = await notifications(api, hook_url)
        await alert_rules(api, app["id"])
    return out


async def developer_teams(url: str, identities: Any, developer: str) -> tuple[str, str]:
    """The developer of ``developer`` (a token) in two more teams, each with an admin of its own:
    ``SHARED_TEAM`` as a developer, to switch to and leave (a team's last admin may not leave), and
    ``OWN_TEAM`` as an admin, holding a project with ``OWN_APP`` (never deployed) to delete: its id and the
    developer's token for ``OWN_TEAM``."""
    async with httpx.AsyncClient(base_url=url, headers=bearer(developer)) as api:
        user_id = (await ok(await api.get("/v1/me")))["user"]["id"]
    for team, role in ((SHARED_TEAM, "developer"), (OWN_TEAM, "admin")):
        await identities.member(f"owner@{team}.example", "admin", team=team)
        async with identities.sessionmaker() as s, s.begin():
            team_id = (await s.execute(sa.select(teams.c.id).where(teams.c.name == team))).scalar_one()
            await identity.add_member(s, user_id, team_id, role)
    token, _ = await identities.token(user_id, team=OWN_TEAM)
    async with httpx.AsyncClient(base_url=url, headers=bearer(token)) as api:
        env = (await ok(await api.post("/v1/projects", json={"name": "own"}), 201))["environments"][0]["id"]
        body = {
            "name": OWN_APP,
            "source": {"kind": "image", "image": "nginx:1.27"},
            "services": [{"kind": "web", "name": "web", "port": 80}],
        }
        app = await ok(await api.post(f"/v1/environments/{env}/applications", json=body), 201)
    return app["id"], token
