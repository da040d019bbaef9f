"""Restore drills through the api, on the real api and bus with the scheduler's part played by the test:
``cmd.backup.drill`` as sent (the newest verified backup by default, its copy's credentials sealed, the
engine, version and database of the record, the check), the checks each engine takes (row counts or a
query for PostgreSQL and MariaDB, keys for Redis; MySQL and MongoDB refused with a 422), the projection of
``evt.backup.drill_*`` with the values the check read, and drill schedules (``cmd.schedule.set`` with the
drill as its template, sent again when its destination changes; its runs listed)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from berth_common.catalogue import DrillBackup, DrillFailed, DrillSucceeded, DrillValue, SetSchedule
from tests.api import test_backups_e2e as e2e
from tests.api.test_backups_api import SECRET, _database, _s3, _succeeded_backup, _until
from tests.api.test_databases_api import DatabaseDouble
from tests.api.test_volume_backups_api import _ended as _finished
from tests.support import images

ROWS = {"kind": "row_counts", "tables": [{"table": "items", "at_least": 5}, {"table": "shop.orders"}]}


@pytest.fixture
async def cmds(nats_server, api):
    backups = await DatabaseDouble(nats_server.url, "cmd.backup.>", "double--dbackups").start()
    schedules = await DatabaseDouble(nats_server.url, "cmd.schedule.>", "double--dschedules").start()
    databases = await DatabaseDouble(nats_server.url, durable="double--ddatabases").start()
    yield backups, schedules, databases
    for double in (backups, schedules, databases):
        await double.stop()


def _error(r, status: int = 422) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return r.json()["errors"][0] if status == 422 else r.json()


async def _engine_database(client, headers, engine: str, name: str) -> dict:
    r = await client.post("/v1/databases", headers=headers, json={"name": name, "engine": engine})
    assert r.status_code == 201, r.text
    return r.json()


def _ended(cmd: DrillBackup, **change: Any) -> dict[str, Any]:
    return {
        "drill_id": cmd.drill_id,
        "backup_id": cmd.backup_id or "",
        "team_id": cmd.team_id,
        "database_id": cmd.database_id,
        "check": "row counts: items >= 5, shop.orders >= 1",
        "duration_s": 3.5,
        **change,
    }


async def test_a_drill_is_sent_for_the_newest_backup_and_its_outcome_projected(client, members, cmds):
    backups, _, databases = cmds
    db = await _database(client, members.developer, databases)
    dest = (await client.post("/v1/backup-destinations", headers=members.admin, json=_s3())).json()
    path = f"/v1/databases/{db['id']}/drills"
    body = {"check": ROWS}
    r = await client.post(path, headers=members.developer, json=body)
    assert "no verified backup" in _error(r, 409)["detail"]
    older, _ = await _succeeded_backup(client, members, cmds, db, dest)
    newest, _ = await _succeeded_backup(client, members, cmds, db, dest)

    assert (await client.post(path, headers=members.viewer, json=body)).status_code == 403
    assert (await client.post(path, headers=members.other, json=body)).status_code == 404
    for bad, where in (
        (
            {"check": {"kind": "row_counts", "tables": [{"table": "items; DROP"}]}},
            "/body/check/row_counts/tables/0/table",
        ),
        ({"check": {"kind": "query", "sql": "SELECT 1; DELETE FROM items", "equals": "1"}}, "/body/check/query"),
        ({"check": {"kind": "query", "sql": "SELECT 1"}}, "/body/check/query"),
        ({"check": ROWS, "backup_id": "f" * 32}, "/body/backup_id"),
        ({"check": ROWS, "destination": "e" * 32}, "/body/destination"),
        ({"check": {"kind": "keys", "at_least": 1}}, "/body/check/kind"),
    ):
        err = _error(await client.post(path, headers=members.developer, json=bad))
        assert err["loc"].startswith(where), (bad, err)

    r = await client.post(path, headers=members.developer, json=body)
    assert r.status_code == 202, r.text
    drill = r.json()
    assert drill["state"] == "requested" and drill["backup_id"] == newest["id"] and drill["engine"] == "postgresql"
    assert drill["destination_id"] == dest["id"] and drill["check"]["tables"][1] == {
        "table": "shop.orders",
        "at_least": 1,
    }
    ((_, raw, env),) = await backups.wait_for("cmd.backup.drill")
    assert SECRET.encode() not in raw and b"sealed:v1:" in raw
    cmd = DrillBackup.model_validate(env.data)
    assert cmd.drill_id == drill["id"] and cmd.database_id == db["id"] and cmd.backup_id == newest["id"]
    assert cmd.key == newest["objects"][0]["key"] and cmd.sha256 == "a" * 64 and cmd.compression == "gzip"
    assert cmd.engine == "postgresql" and cmd.version == db["version"] and cmd.database == "orders"
    assert cmd.server_id == "local" and cmd.origin.reveal() == SECRET and cmd.check.kind == "row_counts"

    values = [
        DrillValue(name="items", expected=">= 5", found="20"),
        DrillValue(name="shop.orders", expected=">= 1", found="3"),
    ]
    await backups.bus.publish(DrillSucceeded(**_ended(cmd), values=values, restore_s=1.25))
    got = await _until(client, members.viewer, f"/v1/drills/{drill['id']}", "succeeded")
    assert got["values"] == [v.model_dump() for v in values] and got["restore_s"] == 1.25
    assert got["check_text"] == "row counts: items >= 5, shop.orders >= 1" and got["finished_at"]
    assert (await client.get(f"/v1/drills/{drill['id']}", headers=members.other)).status_code == 404
    shown = (await client.get(f"/v1/databases/{db['id']}", headers=members.viewer)).json()
    assert shown["last_verified_backup"]["id"] == newest["id"] and shown["last_verified_backup"]["finished_at"]
    assert shown["last_drill"] == {"id": drill["id"], "state": "succeeded", "finished_at": got["finished_at"]}

    # an older backup by name, a query check; its failure is shown with what it found
    query = {"kind": "query", "sql": "SELECT count(*) FROM items", "at_least": 100}
    r = await client.post(path, headers=members.developer, json={"check": query, "backup_id": older["id"]})
    assert r.status_code == 202, r.text
    second = r.json()
    (_, (_, _, env)) = await backups.wait_for("cmd.backup.drill", 2)
    cmd2 = DrillBackup.model_validate(env.data)
    assert cmd2.backup_id == older["id"] and cmd2.check.kind == "query"
    found = [DrillValue(name="query", expected=">= 100", found="20")]
    reason = "the check failed: the query's value: expected at least 100, found 20"
    await backups.bus.publish(DrillFailed(**_ended(cmd2), values=found, restore_s=0.5, reason=reason))
    failed = await _until(client, members.viewer, f"/v1/drills/{second['id']}", "failed")
    assert failed["reason"] == reason and failed["values"][0]["found"] == "20"
    listed = (await client.get(path, headers=members.viewer)).json()
    assert [d["id"] for d in listed] == [second["id"], drill["id"]]
    assert (await client.get(path, headers=members.other)).status_code == 404


async def test_each_engine_takes_its_own_check_and_mysql_is_refused(client, members, cmds):
    backups, _, _ = cmds
    dest = (await client.post("/v1/backup-destinations", headers=members.admin, json=_s3())).json()
    redis = await _engine_database(client, members.developer, "redis", "cache")
    backup, _ = await _succeeded_backup(client, members, cmds, redis, dest)
    path = f"/v1/databases/{redis['id']}/drills"
    err = _error(await client.post(path, headers=members.developer, json={"check": ROWS}))
    assert err["loc"] == "/body/check/kind" and "redis backup is checked with keys" in err["detail"]
    err = _error(await client.post(path, headers=members.developer, json={"check": {"kind": "keys"}}))
    assert "at_least" in err["detail"]
    keys = {"kind": "keys", "at_least": 2, "exist": ["session:1", "weird key -x"]}
    r = await client.post(path, headers=members.developer, json={"check": keys})
    assert r.status_code == 202, r.text
    ((_, _, env),) = await backups.wait_for("cmd.backup.drill")
    cmd = DrillBackup.model_validate(env.data)
    assert cmd.engine == "redis" and cmd.database == "0" and cmd.backup_id == backup["id"]
    assert cmd.check.kind == "keys" and cmd.check.exist == ["session:1", "weird key -x"]

    maria = await _engine_database(client, members.developer, "mariadb", "books")
    await _succeeded_backup(client, members, cmds, maria, dest)
    r = await client.post(f"/v1/databases/{maria['id']}/drills", headers=members.developer, json={"check": ROWS})
    assert r.status_code == 202, r.text
    (_, (_, _, env)) = await backups.wait_for("cmd.backup.drill", 2)
    assert DrillBackup.model_validate(env.data).engine == "mariadb"

    mysql = await _engine_database(client, members.developer, "mysql", "legacy")
    err = _error(
        await client.post(f"/v1/databases/{mysql['id']}/drills", headers=members.developer, json={"check": ROWS})
    )
    assert err["loc"] == "/path/database_id" and "drills run for postgresql, mariadb, redis" in err["detail"]
    r = await client.put(
        f"/v1/databases/{mysql['id']}/drill-schedule",
        headers=members.admin,
        json={"cron": "0 4 * * 0", "timezone": "UTC", "destination": dest["id"], "check": ROWS},
    )
    assert _error(r)["loc"] == "/path/database_id"


async def test_a_drill_schedule_is_set_resent_listed_and_removed(client, members, cmds):
    backups, schedules, databases = cmds
    db = await _database(client, members.developer, databases)
    dest = (await client.post("/v1/backup-destinations", headers=members.admin, json=_s3())).json()
    path = f"/v1/databases/{db['id']}/drill-schedule"
    body = {"cron": "0 4 * * 0", "timezone": "America/New_York", "destination": dest["id"], "check": ROWS}
    assert (await client.put(path, headers=members.developer, json=body)).status_code == 403
    assert (await client.get(path, headers=members.viewer)).json() is None
    assert "cron" in _error(await client.put(path, headers=members.admin, json={**body, "cron": "0 4 *"}))["loc"]
    err = _error(await client.put(path, headers=members.admin, json={**body, "destination": "e" * 32}))
    assert err["loc"] == "/body/destination/0"

    r = await client.put(path, headers=members.admin, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["destination"] == dest["id"] and r.json()["check"]["kind"] == "row_counts"
    ((_, raw, env),) = await schedules.wait_for("cmd.schedule.set")
    assert SECRET.encode() not in raw
    cmd = SetSchedule.model_validate(env.data)
    assert cmd.schedule_id == f"drill-{db['id']}" and cmd.command_type == "cmd.backup.drill"
    assert cmd.target_id == db["id"] and cmd.timezone == "America/New_York"
    template = DrillBackup.model_validate(cmd.command)
    assert template.key is None and template.backup_id is None  # each run drills the newest backup there
    assert template.origin.reveal() == SECRET and template.database_id == db["id"]
    assert (await client.get(path, headers=members.viewer)).json()["cron"] == "0 4 * * 0"
    assert (await client.get(path, headers=members.other)).status_code == 404

    r = await client.patch(f"/v1/backup-destinations/{dest['id']}", headers=members.admin, json={"secret_key": "n3w"})
    assert r.status_code == 200
    (_, (_, _, env)) = await schedules.wait_for("cmd.schedule.set", 2)
    resent = SetSchedule.model_validate(env.data)
    assert resent.schedule_id == cmd.schedule_id and resent.revision > cmd.revision
    assert DrillBackup.model_validate(resent.command).origin.reveal() == "n3w"

    run_id = f"schedule-drill-{db['id']}-20261206T090000Z"
    run = template.model_copy(update={"drill_id": run_id})
    values = [DrillValue(name="items", expected=">= 5", found="7")]
    await backups.bus.publish(DrillSucceeded(**_ended(run, backup_id="b1"), values=values, restore_s=2.0))
    got = await _until(client, members.viewer, f"/v1/drills/{run_id}", "succeeded")
    assert got["schedule_id"] == cmd.schedule_id and got["backup_id"] == "b1" and got["destination_id"] == dest["id"]
    listed = (await client.get(f"/v1/databases/{db['id']}/drills", headers=members.viewer)).json()
    assert [d["id"] for d in listed] == [run_id]

    r = await client.delete(f"/v1/backup-destinations/{dest['id']}", headers=members.admin)
    assert "drill schedule" in _error(r, 409)["detail"]
    assert (await client.delete(path, headers=members.developer)).status_code == 403
    assert (await client.delete(path, headers=members.admin)).status_code == 204
    ((_, _, removed),) = await schedules.wait_for("cmd.schedule.remove")
    assert removed.data["schedule_id"] == cmd.schedule_id and removed.data["revision"] > resent.revision
    assert (await client.get(path, headers=members.viewer)).json() is None
    assert (await client.delete(f"/v1/backup-destinations/{dest['id']}", headers=members.admin)).status_code == 204


async def test_deleting_the_database_removes_its_drill_schedule(client, members, cmds):
    _, schedules, databases = cmds
    db = await _database(client, members.developer, databases)
    dest = (await client.post("/v1/backup-destinations", headers=members.admin, json=_s3())).json()
    body = {"cron": "0 4 * * *", "timezone": "UTC", "destination": dest["id"], "check": ROWS}
    assert (
        await client.put(f"/v1/databases/{db['id']}/drill-schedule", headers=members.admin, json=body)
    ).status_code == 200
    assert (await client.delete(f"/v1/databases/{db['id']}", headers=members.admin)).status_code == 202
    ((_, _, removed),) = await schedules.wait_for("cmd.schedule.remove")
    assert removed.data["schedule_id"] == f"drill-{db['id']}"
    assert (await client.delete(f"/v1/backup-destinations/{dest['id']}", headers=members.admin)).status_code == 204


# --- end to end: the api and the real scheduler ----------------------------------------------------------

platform = e2e.platform  # the api, the real scheduler in-process and a real S3 API (moto)


@pytest.mark.slow
@pytest.mark.docker
async def test_a_backup_made_through_the_api_is_drilled_by_the_real_scheduler(client, members, platform):
    s3, made = platform
    bucket = s3.make_bucket(f"drill-{uuid.uuid4().hex[:8]}")
    r = await client.post("/v1/databases", headers=members.admin, json={"name": "shop", "engine": "postgresql"})
    assert r.status_code == 201, r.text
    db = r.json()
    made.append(db["id"])
    await e2e._until(client, members.viewer, f"/v1/databases/{db['id']}", "running")
    password = await e2e._password(client, members.admin, db["id"])
    e2e._psql(db["id"], password, "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)", "shop")
    e2e._psql(db["id"], password, "INSERT INTO items SELECT i, md5(i::text) FROM generate_series(1, 700) i", "shop")
    dest = {
        "kind": "s3",
        "name": "moto",
        "endpoint": s3.endpoint,
        "bucket": bucket,
        "access_key": s3.access_key,
        "secret_key": s3.secret_key,
    }
    dest_id = (await client.post("/v1/backup-destinations", headers=members.admin, json=dest)).json()["id"]
    r = await client.post(
        f"/v1/databases/{db['id']}/backups", headers=members.developer, json={"destinations": [dest_id]}
    )
    assert r.status_code == 202, r.text
    backup = await _finished(client, members.viewer, f"/v1/backups/{r.json()['id']}", "succeeded")
    e2e._psql(db["id"], password, "DELETE FROM items WHERE id > 100", "shop")  # the drill reads the backup

    path = f"/v1/databases/{db['id']}/drills"
    r = await client.post(
        path,
        headers=members.developer,
        json={"check": {"kind": "row_counts", "tables": [{"table": "items", "at_least": 700}]}},
    )
    assert r.status_code == 202, r.text
    drill = await _finished(client, members.viewer, f"/v1/drills/{r.json()['id']}", "succeeded")
    assert drill["backup_id"] == backup["id"] and drill["values"] == [
        {"name": "items", "expected": ">= 700", "found": "700"}
    ]
    assert drill["check_text"] == "row counts: items >= 700" and 0 < drill["restore_s"] <= drill["duration_s"]

    query = {"kind": "query", "sql": "SELECT max(id) FROM items", "equals": "100"}
    r = await client.post(path, headers=members.developer, json={"check": query})
    assert r.status_code == 202, r.text
    failed = await _finished(client, members.viewer, f"/v1/drills/{r.json()['id']}", "failed")
    assert failed["reason"] == "the check failed: the query's value: expected '100', found '700'"
    assert failed["values"] == [{"name": "query", "expected": "= 100", "found": "700"}]
    listed = (await client.get(path, headers=members.viewer)).json()
    assert [d["state"] for d in listed] == ["failed", "succeeded"]
    assert (
        images.docker(
            "ps", "-a", "-q", "--filter", "label=berth.kind=drill", "--filter", f"label=berth.drill={drill['id']}"
        )
        == ""
    )
