"""Backups on the api side, on the real api and bus with the scheduler's part played by the test: backup
destinations (validation naming the field, the secret key never shown, roles, another team's 404, refused
deletion while a schedule uses one), ``cmd.backup.start`` as sent (read off the stream, secrets sealed),
the projection of ``evt.backup.*`` published as the scheduler would, schedules (``cmd.schedule.set`` with
the backup command as its template, ``cmd.schedule.remove``), and restores (into a new database once it
runs; over the existing one only with ``confirm`` and after a fresh backup succeeded)."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from berth_common.catalogue import (
    BackupFailed,
    BackupMissed,
    BackupObject,
    BackupStarted,
    BackupSucceeded,
    DatabaseChanged,
    LogLine,
    RestoreBackup,
    RestoreSucceeded,
    SetSchedule,
    StartBackup,
)
from berth_common.envelope import Envelope
from tests.api.test_databases_api import DatabaseDouble

SECRET = "s3cr3t-k3y-never-shown"


@pytest.fixture
async def cmds(nats_server, api):
    backups = await DatabaseDouble(nats_server.url, "cmd.backup.>", "double--backups").start()
    schedules = await DatabaseDouble(nats_server.url, "cmd.schedule.>", "double--schedules").start()
    databases = await DatabaseDouble(nats_server.url).start()
    yield backups, schedules, databases
    for double in (backups, schedules, databases):
        await double.stop()


def _s3(**over: Any) -> dict[str, Any]:
    body = {
        "kind": "s3",
        "name": "offsite",
        "endpoint": "http://127.0.0.1:9",
        "bucket": "berth-backups",
        "region": "eu-west-1",
        "path_style": True,
        "prefix": "db/",
        "access_key": "AKIAEXAMPLE",
        "secret_key": SECRET,
    }
    return {**body, **over}


async def _database(client, headers, databases: DatabaseDouble, name: str = "orders", running: bool = True) -> dict:
    r = await client.post("/v1/databases", headers=headers, json={"name": name, "engine": "postgresql"})
    assert r.status_code == 201, r.text
    db = r.json()
    if running:
        for _ in range(200):
            runs = [e for subject, _, e in databases.commands if subject == "cmd.database.run"]
            if env := next((e for e in runs if e.data["spec"]["database_id"] == db["id"]), None):
                break
            await asyncio.sleep(0.05)
        assert env is not None, "no cmd.database.run"
        await _changed(databases, env, "running")
        await _until(client, headers, f"/v1/databases/{db['id']}", "running")
    return db


async def _changed(double: DatabaseDouble, env: Envelope, state: str) -> None:
    spec = env.data["spec"]
    event = DatabaseChanged(
        database_id=spec["database_id"], team_id=spec["team_id"], request_id=env.data["request_id"], state=state
    )
    await double.bus.publish(event)


async def _until(client, headers, path: str, state: str) -> dict:
    for _ in range(200):
        got = (await client.get(path, headers=headers)).json()
        if got.get("state") == state:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never {state}: {got}")


async def test_destinations_validation_secret_roles_and_teams(client, members, cmds):
    r = await client.post("/v1/backup-destinations", headers=members.admin, json=_s3())
    assert r.status_code == 201, r.text
    s3 = r.json()
    assert s3["kind"] == "s3" and s3["bucket"] == "berth-backups" and s3["prefix"] == "db/"
    assert SECRET not in r.text and "secret_key" not in s3
    listed = await client.get("/v1/backup-destinations", headers=members.viewer)
    assert [d["id"] for d in listed.json()] == [s3["id"]] and SECRET not in listed.text
    assert (await client.get(f"/v1/backup-destinations/{s3['id']}", headers=members.other)).status_code == 404
    assert (
        await client.post("/v1/backup-destinations", headers=members.developer, json=_s3(name="x"))
    ).status_code == 403
    assert (await client.post("/v1/backup-destinations", headers=members.admin, json=_s3())).status_code == 409

    for bad, where in (
        ({"endpoint": "ftp://example.com"}, "endpoint"),
        ({"endpoint": "http://example.com/path"}, "endpoint"),
        ({"bucket": "Bad_Bucket"}, "bucket"),
        ({"prefix": "../up/"}, "prefix"),
        ({"region": "EU WEST"}, "region"),
    ):
        r = await client.post("/v1/backup-destinations", headers=members.admin, json=_s3(name="bad", **bad))
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert any(where in e["loc"] for e in r.json()["errors"]), r.text
        assert SECRET not in r.text

    directory = {"kind": "directory", "name": "here", "path": "/var/backups/berth"}
    r = await client.post("/v1/backup-destinations", headers=members.admin, json=directory)
    assert r.status_code == 201 and r.json()["server_id"] == "local"
    d_id = r.json()["id"]
    for path in ("relative/dir", "/var/../etc", "/var/./x"):
        r = await client.post("/v1/backup-destinations", headers=members.admin, json={**directory, "path": path})
        assert r.status_code == 422 and "path" in r.json()["errors"][0]["loc"], r.text
    r = await client.post(
        "/v1/backup-destinations", headers=members.admin, json={**directory, "name": "far", "server_id": "f" * 32}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == "/body/server_id"

    r = await client.patch(f"/v1/backup-destinations/{s3['id']}", headers=members.admin, json={"bucket": "other-b"})
    assert r.status_code == 200 and r.json()["bucket"] == "other-b" and r.json()["access_key"] == "AKIAEXAMPLE"
    r = await client.patch(f"/v1/backup-destinations/{d_id}", headers=members.admin, json={"bucket": "nope"})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == "/body/bucket"
    assert (await client.delete(f"/v1/backup-destinations/{d_id}", headers=members.developer)).status_code == 403
    assert (await client.delete(f"/v1/backup-destinations/{d_id}", headers=members.other)).status_code == 404
    assert (await client.delete(f"/v1/backup-destinations/{d_id}", headers=members.admin)).status_code == 204


async def test_backup_command_and_projection(client, members, cmds):
    backups, _, databases = cmds
    db = await _database(client, members.developer, databases)
    dest = (await client.post("/v1/backup-destinations", headers=members.admin, json=_s3())).json()
    path = f"/v1/databases/{db['id']}/backups"
    body = {"destinations": [dest["id"]], "compression": "zstd", "retention": {"keep_count": 5}}
    assert (await client.post(path, headers=members.viewer, json=body)).status_code == 403
    assert (await client.post(path, headers=members.other, json=body)).status_code == 404
    r = await client.post(path, headers=members.developer, json={"destinations": ["0" * 32]})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == "/body/destinations/0"
    r = await client.post(path, headers=members.developer, json={**body, "compression": "lz4"})
    assert r.status_code == 422

    r = await client.post(path, headers=members.developer, json=body)
    assert r.status_code == 202, r.text
    backup = r.json()
    assert backup["state"] == "requested" and backup["objects"] == []
    ((_, raw, env),) = await backups.wait_for("cmd.backup.start")
    url = (await client.get(f"/v1/databases/{db['id']}/connection", headers=members.admin)).json()["url"]
    password = url.split(":")[2].split("@")[0]
    assert SECRET.encode() not in raw and password.encode() not in raw and b"sealed:v1:" in raw
    cmd = StartBackup.model_validate(env.data)
    assert cmd.backup_id == backup["id"] and cmd.database_id == db["id"] and cmd.compression == "zstd"
    assert cmd.source.container == f"berth-db-{db['id']}" and cmd.source.engine == "postgresql"
    assert cmd.source.database == "orders" and cmd.source.user == "orders" and cmd.source.reveal() == password
    (s3,) = cmd.destinations
    assert s3.kind == "s3" and s3.bucket == "berth-backups" and s3.reveal() == SECRET
    assert cmd.retention.keep_count == 5

    ids = {"backup_id": backup["id"], "team_id": cmd.team_id, "database_id": db["id"]}
    await backups.bus.publish(BackupStarted(**ids, engine="postgresql", database="orders"))
    await _until(client, members.viewer, f"/v1/backups/{backup['id']}", "running")
    digest = hashlib.sha256(b"dump").hexdigest()
    obj = BackupObject(destination=s3.name, key="db/orders.dump.zst", size=4, sha256=digest)
    done = BackupSucceeded(
        **ids, engine="postgresql", database="orders", compression="zstd", objects=[obj], duration_s=1.5
    )
    await backups.bus.publish(done)
    got = await _until(client, members.viewer, f"/v1/backups/{backup['id']}", "succeeded")
    assert got["objects"] == [
        {"destination": s3.name, "destination_id": dest["id"], "key": obj.key, "size": 4, "sha256": digest}
    ]
    assert got["duration_s"] == 1.5 and got["finished_at"] is not None
    listed_dbs = (await client.get("/v1/databases", headers=members.viewer)).json()  # the list shows it too
    assert [d["last_verified_backup"]["id"] for d in listed_dbs if d["id"] == db["id"]] == [backup["id"]]
    assert (await client.get(f"/v1/backups/{backup['id']}", headers=members.other)).status_code == 404

    second = (await client.post(path, headers=members.developer, json=body)).json()
    await backups.bus.publish(
        BackupFailed(**{**ids, "backup_id": second["id"]}, engine="postgresql", reason="no bucket")
    )
    failed = await _until(client, members.viewer, f"/v1/backups/{second['id']}", "failed")
    assert failed["reason"] == "no bucket"
    listed_dbs = (await client.get("/v1/databases", headers=members.viewer)).json()  # a failed one is not verified
    assert [d["last_verified_backup"]["id"] for d in listed_dbs if d["id"] == db["id"]] == [backup["id"]]
    await backups.bus.publish(  # a schedule's run the api did not ask for
        BackupMissed(**{**ids, "backup_id": "schedule-x-20261205T023000Z"}, schedule_id="x", due_at="2026-12-05")
    )
    missed = await _until(client, members.viewer, "/v1/backups/schedule-x-20261205T023000Z", "missed")
    assert "did not run" in missed["reason"]
    listed = (await client.get(path, headers=members.viewer)).json()
    assert {b["id"] for b in listed} == {backup["id"], second["id"], missed["id"]}
    assert (await client.get(path, headers=members.other)).status_code == 404


async def test_schedule_set_shown_and_removed(client, members, cmds):
    _, schedules, databases = cmds
    db = await _database(client, members.developer, databases)
    dest = (await client.post("/v1/backup-destinations", headers=members.admin, json=_s3())).json()
    path = f"/v1/databases/{db['id']}/backup-schedule"
    body = {
        "cron": "30 2 * * *",
        "timezone": "Europe/Berlin",
        "destinations": [dest["id"]],
        "retention": {"keep_days": 7},
    }
    assert (await client.put(path, headers=members.developer, json=body)).status_code == 403
    for bad, where in (
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* *"}, "cron"),
        ({"timezone": "Mars/Base"}, "timezone"),
    ):
        r = await client.put(path, headers=members.admin, json={**body, **bad})
        assert r.status_code == 422 and where in r.json()["errors"][0]["loc"], r.text
    assert (await client.get(path, headers=members.viewer)).json() is None

    r = await client.put(path, headers=members.admin, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["cron"] == "30 2 * * *" and r.json()["destinations"] == [dest["id"]]
    ((_, raw, env),) = await schedules.wait_for("cmd.schedule.set")
    assert SECRET.encode() not in raw
    cmd = SetSchedule.model_validate(env.data)
    assert cmd.schedule_id == db["id"] and cmd.target_id == db["id"] and cmd.command_type == "cmd.backup.start"
    template = StartBackup.model_validate(cmd.command)
    assert template.database_id == db["id"] and template.retention.keep_days == 7
    assert template.destinations[0].reveal() == SECRET
    assert (await client.get(path, headers=members.viewer)).json()["timezone"] == "Europe/Berlin"
    assert (await client.get(path, headers=members.other)).status_code == 404

    # a changed destination reaches the schedule: it is sent again with the new key
    r = await client.patch(
        f"/v1/backup-destinations/{dest['id']}", headers=members.admin, json={"secret_key": "n3w-k3y"}
    )
    assert r.status_code == 200 and "n3w-k3y" not in r.text
    (_, (_, raw, env)) = await schedules.wait_for("cmd.schedule.set", 2)
    assert b"n3w-k3y" not in raw
    again = SetSchedule.model_validate(env.data)
    assert again.revision > cmd.revision and again.cron == "30 2 * * *" and again.timezone == "Europe/Berlin"
    resent = StartBackup.model_validate(again.command)
    assert resent.destinations[0].reveal() == "n3w-k3y" and resent.retention.keep_days == 7
    cmd = again
    r = await client.delete(f"/v1/backup-destinations/{dest['id']}", headers=members.admin)
    assert r.status_code == 409
    assert (await client.delete(path, headers=members.admin)).status_code == 204
    ((_, _, removed),) = await schedules.wait_for("cmd.schedule.remove")
    assert removed.data["schedule_id"] == db["id"] and removed.data["revision"] > cmd.revision
    assert (await client.get(path, headers=members.viewer)).json() is None
    assert (await client.delete(f"/v1/backup-destinations/{dest['id']}", headers=members.admin)).status_code == 204


async def _succeeded_backup(client, members, cmds, db: dict, dest: dict) -> tuple[dict, StartBackup]:
    backups = cmds[0]
    before = len([c for c in backups.commands if c[0] == "cmd.backup.start"])
    r = await client.post(
        f"/v1/databases/{db['id']}/backups", headers=members.developer, json={"destinations": [dest["id"]]}
    )
    assert r.status_code == 202, r.text
    env = (await backups.wait_for("cmd.backup.start", before + 1))[-1][2]
    cmd = StartBackup.model_validate(env.data)
    await _succeed(backups, cmd)
    return await _until(client, members.viewer, f"/v1/backups/{cmd.backup_id}", "succeeded"), cmd


async def _succeed(backups: DatabaseDouble, cmd: StartBackup) -> None:
    obj = BackupObject(destination=cmd.destinations[0].name, key=f"db/{cmd.backup_id}.dump.gz", size=9, sha256="a" * 64)
    event = BackupSucceeded(
        backup_id=cmd.backup_id,
        team_id=cmd.team_id,
        database_id=cmd.database_id,
        engine="postgresql",
        database="orders",
        compression="gzip",
        objects=[obj],
        duration_s=0.1,
    )
    await backups.bus.publish(event)


async def test_restore_into_a_new_database(client, members, cmds):
    backups, _, databases = cmds
    db = await _database(client, members.developer, databases)
    dest = (await client.post("/v1/backup-destinations", headers=members.admin, json=_s3())).json()
    backup, _ = await _succeeded_backup(client, members, cmds, db, dest)
    path = f"/v1/databases/{db['id']}/restore"
    r = await client.post(path, headers=members.developer, json={"backup_id": backup["id"]})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == "/body/name"
    r = await client.post(path, headers=members.developer, json={"backup_id": "f" * 32, "name": "copy"})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == "/body/backup_id"
    assert (
        await client.post(path, headers=members.viewer, json={"backup_id": backup["id"], "name": "c"})
    ).status_code == 403
    assert (
        await client.post(path, headers=members.other, json={"backup_id": backup["id"], "name": "c"})
    ).status_code == 404

    r = await client.post(path, headers=members.developer, json={"backup_id": backup["id"], "name": "copy"})
    assert r.status_code == 202, r.text
    restore = r.json()
    assert restore["state"] == "waiting" and restore["target"] == "new" and restore["target_database_id"] != db["id"]
    new = (await client.get(f"/v1/databases/{restore['target_database_id']}", headers=members.viewer)).json()
    assert new["name"] == "copy" and new["engine"] == "postgresql"
    run = next(
        e for _, _, e in await databases.wait_for("cmd.database.run", 2) if e.data["spec"]["database_id"] == new["id"]
    )
    assert not [c for c in backups.commands if c[0] == "cmd.backup.restore"]  # not before the new database runs
    await _changed(databases, run, "running")
    ((_, raw, env),) = await backups.wait_for("cmd.backup.restore")
    assert SECRET.encode() not in raw
    cmd = RestoreBackup.model_validate(env.data)
    assert cmd.restore_id == restore["id"] and cmd.backup_id == backup["id"] and cmd.key == backup["objects"][0]["key"]
    assert cmd.target.container == f"berth-db-{new['id']}" and cmd.target.database == "copy"
    assert cmd.origin.reveal() == SECRET and cmd.sha256 == "a" * 64 and cmd.source_database == "orders"
    await _until(client, members.viewer, f"/v1/restores/{restore['id']}", "running")

    line = LogLine(deployment_id=restore["id"], stream="deploy", seq=0, line="restoring 9 bytes")
    await backups.bus.publish(line, id=f"log-{restore['id']}-0", nats_subject=f"log.{restore['id']}")
    ids = {"restore_id": restore["id"], "backup_id": backup["id"], "team_id": cmd.team_id, "database_id": db["id"]}
    await backups.bus.publish(RestoreSucceeded(**ids, container=cmd.target.container, database="copy", duration_s=2.0))
    done = await _until(client, members.viewer, f"/v1/restores/{restore['id']}", "succeeded")
    assert [line["line"] for line in done["log"]] == ["restoring 9 bytes"]
    assert (await client.get(f"/v1/restores/{restore['id']}", headers=members.other)).status_code == 404


async def test_restore_over_the_existing_database_backs_up_first(client, members, cmds):
    backups, _, databases = cmds
    db = await _database(client, members.developer, databases)
    dest = (await client.post("/v1/backup-destinations", headers=members.admin, json=_s3())).json()
    backup, _ = await _succeeded_backup(client, members, cmds, db, dest)
    path = f"/v1/databases/{db['id']}/restore"
    over = {"backup_id": backup["id"], "target": "existing"}
    r = await client.post(path, headers=members.admin, json=over)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == "/body/confirm"
    assert (await client.post(path, headers=members.developer, json={**over, "confirm": True})).status_code == 403

    r = await client.post(path, headers=members.admin, json={**over, "confirm": True})
    assert r.status_code == 202, r.text
    restore = r.json()
    assert restore["state"] == "backing_up" and restore["pre_backup_id"]
    starts = await backups.wait_for("cmd.backup.start", 2)
    fresh = StartBackup.model_validate(starts[-1][2].data)
    assert fresh.backup_id == restore["pre_backup_id"] and fresh.database_id == db["id"]
    await asyncio.sleep(0.3)
    assert not [c for c in backups.commands if c[0] == "cmd.backup.restore"]
    await _succeed(backups, fresh)
    ((_, _, env),) = await backups.wait_for("cmd.backup.restore")
    cmd = RestoreBackup.model_validate(env.data)
    assert cmd.overwrite and cmd.confirm_overwrite and cmd.target.container == f"berth-db-{db['id']}"
    await _until(client, members.viewer, f"/v1/restores/{restore['id']}", "running")

    # a failed fresh backup fails the restore and sends none
    r = await client.post(path, headers=members.admin, json={**over, "confirm": True})
    second = r.json()
    starts = await backups.wait_for("cmd.backup.start", 3)
    pre = StartBackup.model_validate(starts[-1][2].data)
    failed = BackupFailed(
        backup_id=pre.backup_id, team_id=pre.team_id, database_id=db["id"], engine="postgresql", reason="disk full"
    )
    await backups.bus.publish(failed)
    got = await _until(client, members.viewer, f"/v1/restores/{second['id']}", "failed")
    assert "disk full" in got["reason"]
    await asyncio.sleep(0.3)
    assert len([c for c in backups.commands if c[0] == "cmd.backup.restore"]) == 1


async def test_deleting_the_database_removes_its_schedule(client, members, cmds):
    _, schedules, databases = cmds
    db = await _database(client, members.developer, databases)
    dest = (await client.post("/v1/backup-destinations", headers=members.admin, json=_s3())).json()
    body = {"cron": "0 * * * *", "timezone": "UTC", "destinations": [dest["id"]]}
    assert (
        await client.put(f"/v1/databases/{db['id']}/backup-schedule", headers=members.admin, json=body)
    ).status_code == 200
    assert (await client.delete(f"/v1/databases/{db['id']}", headers=members.admin)).status_code == 202
    ((_, _, removed),) = await schedules.wait_for("cmd.schedule.remove")
    assert removed.data["schedule_id"] == db["id"]
    assert (await client.delete(f"/v1/backup-destinations/{dest['id']}", headers=members.admin)).status_code == 204


async def test_a_redis_database_is_backed_up_with_its_password_alone(client, members, cmds):
    backups, _, _ = cmds
    r = await client.post("/v1/databases", headers=members.developer, json={"name": "cache", "engine": "redis"})
    db = r.json()
    directory = {"kind": "directory", "name": "here", "path": "/var/backups/berth"}
    dest = (await client.post("/v1/backup-destinations", headers=members.admin, json=directory)).json()
    r = await client.post(
        f"/v1/databases/{db['id']}/backups", headers=members.developer, json={"destinations": [dest["id"]]}
    )
    assert r.status_code == 202, r.text
    ((_, _, env),) = await backups.wait_for("cmd.backup.start")
    cmd = StartBackup.model_validate(env.data)
    assert cmd.source.engine == "redis" and cmd.source.reveal() and cmd.destinations[0].kind == "directory"
    r = await client.post(
        f"/v1/databases/{db['id']}/restore", headers=members.developer, json={"backup_id": cmd.backup_id, "name": "c2"}
    )
    assert r.status_code == 409  # not succeeded (yet)


async def test_a_destination_secret_key_is_resealed_by_key_rotation(api, client, members, api_urls):
    from tests.api.test_key_rotation import _key, _opens_with

    assert (await client.post("/v1/backup-destinations", headers=members.admin, json=_s3())).status_code == 201
    directory = {"kind": "directory", "name": "here", "path": "/srv/backups"}
    assert (await client.post("/v1/backup-destinations", headers=members.admin, json=directory)).status_code == 201
    assert await _opens_with(api_urls, _key(api.settings.secrets_key_path)) == 1  # the S3 key; a directory has none
