"""``/v1/databases`` and application links on the real api and bus, with a stand-in for the scheduler's
database side: creation with generated (sealed) credentials, validation naming the field, roles, the
audited reveal of the connection URL, start/stop/restart/delete commands, the scheduler's answers, links
that put the URL in every deployment's snapshot, and rotation that redeploys the linked applications."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from berth_common.bus import Bus
from berth_common.bus.streams import CMD_STREAM
from berth_common.catalogue import (
    ApplicationSpec,
    DatabaseChanged,
    DatabaseCredentialsRotated,
    RotateDatabaseCredentials,
    RunDatabase,
)
from berth_common.envelope import Envelope
from berth_common.tasks import cancel_and_wait
from tests.api.conftest import make_app
from tests.api.test_deployments import _until

SUBJECT = "cmd.database.>"
DURABLE = "double--databases"


@dataclass
class DatabaseDouble:
    """Takes ``cmd.database.*`` off the work queue and answers as the scheduler would when told to."""

    url: str
    subject: str = SUBJECT  # the commands taken (another double takes others: tests/api/test_backups_api.py)
    durable: str = DURABLE
    bus: Bus = field(init=False)
    commands: list[tuple[str, bytes, Envelope]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def start(self) -> DatabaseDouble:
        self.bus = Bus("scheduler", self.url, fetch_wait_s=0.25)
        await self.bus.connect()
        config = ConsumerConfig(
            name=self.durable, durable_name=self.durable, filter_subject=self.subject, ack_policy=AckPolicy.EXPLICIT
        )
        await self.bus.js.add_consumer(CMD_STREAM, config)
        sub = await self.bus.js.pull_subscribe_bind(durable=self.durable, stream=CMD_STREAM)

        async def pull() -> None:
            while True:
                with contextlib.suppress(Exception):
                    for msg in await sub.fetch(10, timeout=0.5):
                        self.commands.append((msg.subject, msg.data, Envelope.model_validate_json(msg.data)))
                        await msg.ack()

        self._task = asyncio.create_task(pull())
        return self

    async def stop(self) -> None:
        await cancel_and_wait(self._task)  # a fetch's wait_for can swallow one cancellation on 3.11
        await self.bus.nc.close()

    async def wait_for(self, subject: str, count: int = 1, timeout: float = 10) -> list[tuple[str, bytes, Envelope]]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(got := [c for c in self.commands if c[0] == subject]) < count:
            assert asyncio.get_running_loop().time() < deadline, f"{len(got)} of {count} {subject}"
            await asyncio.sleep(0.05)
        return got

    async def changed(self, command: Envelope, state: str, **extra: Any) -> None:
        data = command.data
        spec = data.get("spec") or data
        event = DatabaseChanged(
            database_id=spec["database_id"],
            team_id=spec["team_id"],
            request_id=data["request_id"],
            state=state,
            **extra,
        )
        await self.bus.publish(event)


@pytest.fixture
async def dbs(nats_server, api):
    double = await DatabaseDouble(nats_server.url).start()
    yield double
    await double.stop()


async def _create(client, headers, **body: Any) -> Any:
    return await client.post("/v1/databases", headers=headers, json={"name": "orders", "engine": "postgresql", **body})


async def _state(client, headers, db_id: str, state: str) -> dict:
    for _ in range(200):
        got = (await client.get(f"/v1/databases/{db_id}", headers=headers)).json()
        if got.get("state") == state:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"database {db_id} never {state}: {got}")


async def _url(client, members, db_id: str) -> str:
    r = await client.get(f"/v1/databases/{db_id}/connection", headers=members.admin)
    assert r.status_code == 200, r.text
    assert r.headers.get("cache-control", "no-store") is not None
    return r.json()["url"]


async def test_engines_are_listed(client, members):
    r = await client.get("/v1/databases/engines", headers=members.viewer)
    assert r.status_code == 200
    engines = {e["name"]: e for e in r.json()}
    assert list(engines) == ["postgresql", "mysql", "mariadb", "redis", "mongodb"]
    assert engines["postgresql"]["versions"] == ["17", "16", "15", "14", "13"]
    assert engines["redis"]["variable"] == "REDIS_URL" and engines["redis"]["port"] == 6379


async def test_create_runs_it_with_sealed_credentials_and_never_shows_the_password(client, members, dbs, capfd):
    r = await _create(client, members.developer, version="15", limits={"memory_mb": 256}, config={"work_mem": "8MB"})
    assert r.status_code == 201, r.text
    db = r.json()
    assert db["state"] == "starting" and db["engine"] == "postgresql" and db["version"] == "15"
    assert db["host"] == f"berth-db-{db['id']}" and db["port"] == 5432 and db["variable"] == "DATABASE_URL"
    assert db["user"] == "orders" and db["database"] == "orders" and db["public"] is None
    assert "password" not in r.text.lower()
    ((_, raw, env),) = await dbs.wait_for("cmd.database.run")
    url = await _url(client, members, db["id"])
    password = url.split(":")[2].split("@")[0]
    assert len(password) == 32 and password.encode() not in raw and b"sealed:v1:" in raw
    spec = RunDatabase.model_validate(env.data).spec
    assert spec.reveal() == password and spec.image == "postgres:15" and spec.config == {"work_mem": "8MB"}
    assert spec.limits.memory_mb == 256
    assert url == f"postgresql://orders:{password}@berth-db-{db['id']}:5432/orders"

    await dbs.changed(env, "running", host=db["host"])
    running = await _state(client, members.viewer, db["id"], "running")
    for shown in (running, (await client.get("/v1/databases", headers=members.viewer)).json()):
        assert password not in str(shown)
    audit = (await client.get("/v1/audit", headers=members.admin)).json()
    assert any(a.get("fields") == ["connection_url"] and a["target_id"] == db["id"] for a in audit), audit
    assert password not in str(audit)
    out, err = capfd.readouterr()
    assert password not in out and password not in err


@pytest.mark.parametrize(
    ("body", "status", "where"),
    [
        ({"engine": "oracle"}, 422, "engine"),
        ({"version": "9.6"}, 422, "/body/version"),
        ({"config": {"archive_command": "true"}}, 422, "/body/config/archive_command"),
        ({"config": {"work_mem": "1 -c archive_command=x"}}, 422, "/body/config/work_mem"),
        ({"public": {"port": 15432, "allow": ["300.1.2.3/8"]}}, 422, "allow"),
        ({"public": {"port": 80, "allow": ["0.0.0.0/0"]}}, 422, "port"),
        ({"server_id": "0" * 32}, 422, "/body/server_id"),
        ({"name": "Bad_Name"}, 422, "name"),
        ({"limits": {"memory_mb": 1}}, 422, "memory_mb"),
    ],
)
async def test_bad_input_is_refused_naming_the_field(client, members, body, status, where):
    r = await _create(client, members.developer, **body)
    assert r.status_code == status, r.text
    assert where in r.text


async def test_conflicts_roles_and_other_teams(client, members, dbs):
    public = {"port": 15432, "allow": ["203.0.113.7", "2001:db8::/32"]}
    r = await _create(client, members.developer, public=public)
    assert r.status_code == 201, r.text
    db = r.json()
    assert db["public"] == {"port": 15432, "allow": ["203.0.113.7/32", "2001:db8::/32"]}
    assert (await _create(client, members.developer, name="other", public=public)).status_code == 409
    assert (await _create(client, members.developer)).status_code == 409  # the name
    assert (await _create(client, members.viewer, name="v")).status_code == 403
    assert (await client.get(f"/v1/databases/{db['id']}/connection", headers=members.developer)).status_code == 403
    assert (await client.post(f"/v1/databases/{db['id']}/rotate", headers=members.developer)).status_code == 403
    assert (await client.get(f"/v1/databases/{db['id']}", headers=members.other)).status_code == 404
    assert (await client.get(f"/v1/databases/{db['id']}/connection", headers=members.other)).status_code == 404
    assert (await client.delete(f"/v1/databases/{db['id']}", headers=members.developer)).status_code == 403


async def test_start_stop_restart_and_delete_send_their_commands(client, members, dbs):
    db = (await _create(client, members.developer, engine="redis", name="cache")).json()
    ((_, _, run),) = await dbs.wait_for("cmd.database.run")
    await dbs.changed(run, "running")
    await _state(client, members.viewer, db["id"], "running")

    r = await client.post(f"/v1/databases/{db['id']}/stop", headers=members.developer)
    assert r.status_code == 202 and r.json()["state"] == "stopping"
    ((_, _, stop),) = await dbs.wait_for("cmd.database.stop")
    assert stop.data["database_id"] == db["id"] and stop.data["server_id"] == "local"
    await dbs.changed(run, "running")  # an older request's late answer changes nothing
    await dbs.changed(stop, "stopped")
    await _state(client, members.viewer, db["id"], "stopped")

    assert (await client.post(f"/v1/databases/{db['id']}/start", headers=members.developer)).status_code == 202
    ((_, _, start),) = await dbs.wait_for("cmd.database.start")
    assert start.data["spec"]["engine"] == "redis"
    await dbs.changed(start, "failed", reason="the database's container stopped")
    failed = await _state(client, members.viewer, db["id"], "failed")
    assert failed["reason"] == "the database's container stopped"
    assert (await client.post(f"/v1/databases/{db['id']}/restart", headers=members.developer)).status_code == 202
    await dbs.wait_for("cmd.database.restart")

    r = await client.delete(f"/v1/databases/{db['id']}", headers=members.admin)
    assert r.status_code == 202 and r.json()["state"] == "removing"
    ((_, _, remove),) = await dbs.wait_for("cmd.database.remove")
    assert remove.data["keep_volume"] is True
    assert (await client.post(f"/v1/databases/{db['id']}/start", headers=members.developer)).status_code == 409
    await dbs.changed(remove, "removed", volume_kept=True)
    for _ in range(100):
        if (await client.get(f"/v1/databases/{db['id']}", headers=members.viewer)).status_code == 404:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the removed database is still listed")

    other = (await _create(client, members.developer, engine="redis", name="scratch")).json()
    r = await client.delete(f"/v1/databases/{other['id']}", headers=members.admin, params={"delete_volume": "true"})
    assert r.status_code == 202
    (_, (_, _, remove2)) = await dbs.wait_for("cmd.database.remove", 2)
    assert remove2.data["keep_volume"] is False


def _env(cmd) -> dict[str, tuple[str, bool]]:
    spec = ApplicationSpec.model_validate(cmd.data["spec"])
    return {e.name: (e.reveal(), e.secret) for e in spec.env}


async def test_links_put_the_url_in_deployments_and_rotation_redeploys(client, members, dbs, scheduler, capfd):
    db = (await _create(client, members.developer)).json()
    cache = (await _create(client, members.developer, engine="redis", name="cache")).json()
    app = await make_app(client, members.developer)
    url = f"/v1/applications/{app['id']}/links"
    r = await client.post(url, headers=members.developer, json={"database_id": db["id"]})
    assert r.status_code == 201 and r.json()["variable"] == "DATABASE_URL", r.text
    r = await client.post(url, headers=members.developer, json={"database_id": cache["id"], "variable": "CACHE_URL"})
    assert r.status_code == 201, r.text
    assert (await client.post(url, headers=members.developer, json={"database_id": db["id"]})).status_code == 409
    r = await client.post(url, headers=members.developer, json={"database_id": "f" * 32})
    assert r.status_code == 422 and "/body/database_id" in r.text
    assert [x["variable"] for x in (await client.get(url, headers=members.viewer)).json()] == [
        "CACHE_URL",
        "DATABASE_URL",
    ]
    # a linked database cannot be deleted
    assert (await client.delete(f"/v1/databases/{db['id']}", headers=members.admin)).status_code == 409

    old_url = await _url(client, members, db["id"])
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    dep = r.json()
    (cmd,) = await scheduler.wait_for("cmd.deployment.start")
    assert old_url.encode() not in cmd.raw
    env = _env(cmd)
    assert env["DATABASE_URL"] == (old_url, True)
    assert env["CACHE_URL"] == (await _url(client, members, cache["id"]), True)
    assert cmd.data["spec"]["network"] == f"berth-team-{cmd.data['team_id']}"
    await scheduler.run_to_success(cmd)
    await _until(client, members.viewer, dep["id"], lambda b: b["state"] == "succeeded")

    # a failed rotation keeps the old password and redeploys nothing
    assert (await client.post(f"/v1/databases/{db['id']}/rotate", headers=members.admin)).status_code == 202
    ((_, raw, rot),) = await dbs.wait_for("cmd.database.rotate")
    rotate = RotateDatabaseCredentials.model_validate(rot.data)
    assert rotate.reveal_new().encode() not in raw and rotate.spec.reveal().encode() not in raw
    assert (await client.get(f"/v1/databases/{db['id']}", headers=members.viewer)).json()["rotation_pending"] is True
    assert (await client.post(f"/v1/databases/{db['id']}/rotate", headers=members.admin)).status_code == 409
    failed = DatabaseCredentialsRotated(
        database_id=db["id"], team_id=rotate.spec.team_id, request_id=rotate.request_id, outcome="failed", reason="x"
    )
    await dbs.bus.publish(failed)
    for _ in range(100):
        shown = (await client.get(f"/v1/databases/{db['id']}", headers=members.viewer)).json()
        if not shown["rotation_pending"]:
            break
        await asyncio.sleep(0.05)
    assert shown["rotation_pending"] is False and await _url(client, members, db["id"]) == old_url

    # a successful one: the new password, and the live application is redeployed with it
    assert (await client.post(f"/v1/databases/{db['id']}/rotate", headers=members.admin)).status_code == 202
    (_, (_, _, rot2)) = await dbs.wait_for("cmd.database.rotate", 2)
    rotate = RotateDatabaseCredentials.model_validate(rot2.data)
    assert rotate.spec.reveal() == old_url.split(":")[2].split("@")[0]
    done = DatabaseCredentialsRotated(
        database_id=db["id"], team_id=rotate.spec.team_id, request_id=rotate.request_id, outcome="succeeded"
    )
    await dbs.bus.publish(done)
    (_, cmd2) = await scheduler.wait_for("cmd.deployment.start", 2)
    new_url = await _url(client, members, db["id"])
    assert new_url != old_url and rotate.reveal_new() in new_url
    assert _env(cmd2)["DATABASE_URL"] == (new_url, True) and cmd2.data["application_id"] == app["id"]
    assert rotate.reveal_new() not in (await client.get(f"/v1/databases/{db['id']}", headers=members.admin)).text

    assert (await client.delete(f"{url}/{db['id']}", headers=members.developer)).status_code == 403
    assert (await client.delete(f"{url}/{db['id']}", headers=members.admin)).status_code == 204
    assert (await client.delete(f"{url}/{db['id']}", headers=members.admin)).status_code == 204  # idempotent
    assert [x["variable"] for x in (await client.get(url, headers=members.viewer)).json()] == ["CACHE_URL"]
    assert (await client.delete(f"{url}/{'f' * 32}", headers=members.admin)).status_code == 404
    out, err = capfd.readouterr()  # the api's log
    for secret in (old_url, new_url, rotate.reveal_new(), rotate.spec.reveal()):
        assert secret not in out and secret not in err


async def test_key_rotation_reseals_a_database_password_and_a_pending_one(client, members, dbs, api_urls, api_settings):
    import os

    from berth_api.adapters.sealed import reseal_all
    from berth_api.adapters.secretbox import SecretBox
    from berth_common.db import make_engine, make_sessionmaker

    db = (await _create(client, members.developer, engine="redis", name="cache")).json()
    assert (await client.post(f"/v1/databases/{db['id']}/rotate", headers=members.admin)).status_code == 202
    old, new = api_settings.secrets_key_path.read_bytes().strip(), os.urandom(32)
    engine = make_engine(api_urls["api"], "api")
    try:
        async with make_sessionmaker(engine)() as s, s.begin():
            done = await reseal_all(s, SecretBox([new, old]))
        assert done.counts["databases"] == 2  # its password, and the rotation's next one
        async with make_sessionmaker(engine)() as s, s.begin():  # every value opens with the new key alone
            assert (await reseal_all(s, SecretBox([os.urandom(32), new]))).counts["databases"] == 2
            await s.rollback()
    finally:
        await engine.dispose()
