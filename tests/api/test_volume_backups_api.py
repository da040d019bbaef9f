"""Volume backups through the api, on the real api and bus with the scheduler's part played by the test:
``cmd.backup.start`` with the application's volume as its source (the volume must be one the application's
services declare: a 404 naming ``/path/volume``, as another team's application is), the projection of
``evt.backup.*`` listed per volume (size, SHA-256, destination, state, reason; a schedule's run too),
schedules (``cmd.schedule.set`` with the volume's backup as its template, sent again when a destination
changes), and restores (into a new volume by default; over the existing one only for admins with
``confirm``, after a fresh backup succeeded, with the service stopped meanwhile)."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import subprocess
import uuid
from typing import Any

import pytest

from berth_common.catalogue import (
    BackupFailed,
    BackupObject,
    BackupStarted,
    BackupSucceeded,
    RestoreBackup,
    RestoreSucceeded,
    SetSchedule,
    StartBackup,
)
from tests.api import test_backups_e2e as e2e
from tests.api.conftest import WEB_APP, make_app
from tests.api.test_backups_api import SECRET, _s3, _until
from tests.api.test_databases_api import DatabaseDouble
from tests.scheduler.test_volume_backups import listing, write_tree
from tests.support import images


@pytest.fixture
async def cmds(nats_server, api):
    backups = await DatabaseDouble(nats_server.url, "cmd.backup.>", "double--vbackups").start()
    schedules = await DatabaseDouble(nats_server.url, "cmd.schedule.>", "double--vschedules").start()
    yield backups, schedules
    for double in (backups, schedules):
        await double.stop()


def _app_body(name: str = "shop") -> dict[str, Any]:
    body = copy.deepcopy(WEB_APP)
    body["name"] = name
    body["services"][0].update(replicas=1, strategy="recreate", volumes=[{"name": "data", "path": "/data"}])
    return body


async def _setup(client, members) -> tuple[dict, dict]:
    app = await make_app(client, members.developer, _app_body())
    dest = (await client.post("/v1/backup-destinations", headers=members.admin, json=_s3())).json()
    return app, dest


def _error(r, status: int = 422) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return r.json()["errors"][0]


async def _succeed(backups: DatabaseDouble, cmd: StartBackup, digest: str = "b" * 64) -> None:
    obj = BackupObject(destination=cmd.destinations[0].name, key=f"v/{cmd.backup_id}.tar.gz", size=42, sha256=digest)
    ids = {"backup_id": cmd.backup_id, "team_id": cmd.team_id, "database_id": cmd.database_id}
    event = BackupSucceeded(
        **ids, engine="volume", database=cmd.source.volume, compression="gzip", objects=[obj], duration_s=0.2
    )
    await backups.bus.publish(event)


async def test_a_volume_backup_is_sent_and_projected(client, members, cmds):
    backups, _ = cmds
    app, dest = await _setup(client, members)
    path = f"/v1/applications/{app['id']}/volumes/data/backups"
    body = {"destinations": [dest["id"]], "stop_service": True, "retention": {"keep_count": 3}}
    assert (await client.post(path, headers=members.viewer, json=body)).status_code == 403
    assert (await client.post(path, headers=members.other, json=body)).status_code == 404
    err = _error(
        await client.post(f"/v1/applications/{app['id']}/volumes/cache/backups", headers=members.developer, json=body),
        404,
    )
    assert err["loc"] == "/path/volume" and "no volume cache" in err["detail"] and "data" in err["detail"]
    err = _error(await client.post(path, headers=members.developer, json={"destinations": ["0" * 32]}))
    assert err["loc"] == "/body/destinations/0"
    err = _error(await client.post(path, headers=members.developer, json={**body, "server_id": "f" * 32}))
    assert err["loc"] == "/body/server_id"

    r = await client.post(path, headers=members.developer, json=body)
    assert r.status_code == 202, r.text
    backup = r.json()
    assert backup["state"] == "requested" and backup["application_id"] == app["id"] and backup["volume"] == "data"
    ((_, raw, env),) = await backups.wait_for("cmd.backup.start")
    assert SECRET.encode() not in raw
    cmd = StartBackup.model_validate(env.data)
    assert cmd.backup_id == backup["id"] and cmd.database_id == backup["database_id"]
    assert cmd.source.kind == "volume" and cmd.source.volume == f"berth-{app['id']}-data"
    assert cmd.source.application_id == app["id"] and cmd.source.server_id == "local"
    assert cmd.source.stop_service == "web" and cmd.retention.keep_count == 3
    assert cmd.destinations[0].reveal() == SECRET

    ids = {"backup_id": cmd.backup_id, "team_id": cmd.team_id, "database_id": cmd.database_id}
    await backups.bus.publish(BackupStarted(**ids, engine="volume", database=cmd.source.volume))
    await _until(client, members.viewer, f"/v1/backups/{backup['id']}", "running")
    digest = hashlib.sha256(b"tar").hexdigest()
    await _succeed(backups, cmd, digest)
    await _until(client, members.viewer, f"/v1/backups/{backup['id']}", "succeeded")
    (listed,) = (await client.get(path, headers=members.viewer)).json()
    assert listed["state"] == "succeeded" and listed["volume"] == "data" and listed["server_id"] == "local"
    assert listed["objects"] == [
        {
            "destination": cmd.destinations[0].name,
            "destination_id": dest["id"],
            "key": f"v/{cmd.backup_id}.tar.gz",
            "size": 42,
            "sha256": digest,
        }
    ]

    second = (await client.post(path, headers=members.developer, json={"destinations": [dest["id"]]})).json()
    (_, (_, _, env2)) = await backups.wait_for("cmd.backup.start", 2)
    assert StartBackup.model_validate(env2.data).source.stop_service is None  # not asked: not stopped
    await backups.bus.publish(BackupFailed(**{**ids, "backup_id": second["id"]}, engine="volume", reason="disk full"))
    failed = await _until(client, members.viewer, f"/v1/backups/{second['id']}", "failed")
    assert failed["reason"] == "disk full"
    listed = (await client.get(path, headers=members.viewer)).json()
    assert [b["id"] for b in listed] == [second["id"], backup["id"]]
    assert (await client.get(path, headers=members.other)).status_code == 404
    # a volume the application does not declare (and that has no backups) is not found
    r = await client.get(f"/v1/applications/{app['id']}/volumes/other/backups", headers=members.viewer)
    assert _error(r, 404)["loc"] == "/path/volume"


async def test_a_volume_schedule_is_set_resent_and_removed(client, members, cmds):
    backups, schedules = cmds
    app, dest = await _setup(client, members)
    path = f"/v1/applications/{app['id']}/volumes/data/backup-schedule"
    body = {"cron": "15 3 * * *", "timezone": "Europe/Berlin", "destinations": [dest["id"]], "stop_service": True}
    assert (await client.put(path, headers=members.developer, json=body)).status_code == 403
    err = _error(await client.put(path, headers=members.admin, json={**body, "timezone": "Mars/Base"}))
    assert "timezone" in err["loc"]
    err = _error(
        await client.put(f"/v1/applications/{app['id']}/volumes/x/backup-schedule", headers=members.admin, json=body),
        404,
    )
    assert err["loc"] == "/path/volume"
    assert (await client.get(path, headers=members.viewer)).json() is None

    r = await client.put(path, headers=members.admin, json=body)
    assert r.status_code == 200, r.text
    shown = r.json()
    assert shown["cron"] == "15 3 * * *" and shown["stop_service"] == "web" and shown["server_id"] == "local"
    ((_, raw, env),) = await schedules.wait_for("cmd.schedule.set")
    assert SECRET.encode() not in raw
    cmd = SetSchedule.model_validate(env.data)
    template = StartBackup.model_validate(cmd.command)
    assert cmd.schedule_id == shown["database_id"] and cmd.command_type == "cmd.backup.start"
    assert template.source.kind == "volume" and template.source.volume == f"berth-{app['id']}-data"
    assert template.database_id == shown["database_id"] and template.source.stop_service == "web"
    assert (await client.get(path, headers=members.viewer)).json()["timezone"] == "Europe/Berlin"
    assert (await client.get(path, headers=members.other)).status_code == 404

    r = await client.patch(f"/v1/backup-destinations/{dest['id']}", headers=members.admin, json={"secret_key": "n3w"})
    assert r.status_code == 200
    (_, (_, _, env)) = await schedules.wait_for("cmd.schedule.set", 2)
    resent = SetSchedule.model_validate(env.data)
    again = StartBackup.model_validate(resent.command)
    assert resent.schedule_id == cmd.schedule_id and resent.revision > cmd.revision
    assert again.source == template.source and again.destinations[0].reveal() == "n3w"

    # a schedule's run the api did not ask for is listed with the volume's backups
    run_id = f"schedule-{cmd.schedule_id}-20261205T031500Z"
    await _succeed(backups, template.model_copy(update={"backup_id": run_id}))
    got = await _until(client, members.viewer, f"/v1/backups/{run_id}", "succeeded")
    assert got["schedule_id"] == cmd.schedule_id
    listed = (await client.get(f"/v1/applications/{app['id']}/volumes/data/backups", headers=members.viewer)).json()
    assert [b["id"] for b in listed] == [run_id] and listed[0]["volume"] == "data"

    assert (await client.delete(f"/v1/backup-destinations/{dest['id']}", headers=members.admin)).status_code == 409
    assert (await client.delete(path, headers=members.admin)).status_code == 204
    ((_, _, removed),) = await schedules.wait_for("cmd.schedule.remove")
    assert removed.data["schedule_id"] == cmd.schedule_id
    assert (await client.get(path, headers=members.viewer)).json() is None


async def test_deleting_the_application_removes_its_volume_schedules(client, members, cmds):
    _, schedules = cmds
    app, dest = await _setup(client, members)
    body = {"cron": "0 1 * * *", "timezone": "UTC", "destinations": [dest["id"]]}
    r = await client.put(f"/v1/applications/{app['id']}/volumes/data/backup-schedule", headers=members.admin, json=body)
    assert r.status_code == 200, r.text
    assert (await client.delete(f"/v1/applications/{app['id']}", headers=members.admin)).status_code in (200, 202, 204)
    ((_, _, removed),) = await schedules.wait_for("cmd.schedule.remove")
    assert removed.data["schedule_id"] == r.json()["database_id"]
    assert (await client.delete(f"/v1/backup-destinations/{dest['id']}", headers=members.admin)).status_code == 204


async def _volume_backup(client, members, backups: DatabaseDouble, app: dict, dest: dict) -> tuple[dict, StartBackup]:
    before = len([c for c in backups.commands if c[0] == "cmd.backup.start"])
    r = await client.post(
        f"/v1/applications/{app['id']}/volumes/data/backups",
        headers=members.developer,
        json={"destinations": [dest["id"]]},
    )
    assert r.status_code == 202, r.text
    cmd = StartBackup.model_validate((await backups.wait_for("cmd.backup.start", before + 1))[-1][2].data)
    await _succeed(backups, cmd)
    return await _until(client, members.viewer, f"/v1/backups/{cmd.backup_id}", "succeeded"), cmd


async def test_a_volume_restores_into_a_new_volume_or_over_it_after_a_fresh_backup(client, members, cmds):
    backups, _ = cmds
    app, dest = await _setup(client, members)
    backup, _ = await _volume_backup(client, members, backups, app, dest)
    path = f"/v1/applications/{app['id']}/volumes/data/restore"
    assert (
        _error(await client.post(path, headers=members.developer, json={"backup_id": backup["id"]}))["loc"]
        == "/body/name"
    )
    err = _error(await client.post(path, headers=members.developer, json={"backup_id": backup["id"], "name": "data"}))
    assert err["loc"] == "/body/name"
    err = _error(await client.post(path, headers=members.developer, json={"backup_id": "f" * 32, "name": "copy"}))
    assert err["loc"] == "/body/backup_id"
    asked = {"backup_id": backup["id"], "name": "data-restored"}
    assert (await client.post(path, headers=members.viewer, json=asked)).status_code == 403
    assert (await client.post(path, headers=members.other, json=asked)).status_code == 404

    r = await client.post(path, headers=members.developer, json=asked)
    assert r.status_code == 202, r.text
    restore = r.json()
    assert restore["state"] == "running" and restore["target_volume"] == f"berth-{app['id']}-data-restored"
    ((_, raw, env),) = await backups.wait_for("cmd.backup.restore")
    assert SECRET.encode() not in raw
    cmd = RestoreBackup.model_validate(env.data)
    assert cmd.target.kind == "volume" and cmd.target.volume == f"berth-{app['id']}-data-restored"
    assert not cmd.overwrite and cmd.target.stop_service is None and cmd.key == backup["objects"][0]["key"]
    await backups.bus.publish(
        RestoreSucceeded(
            restore_id=cmd.restore_id,
            backup_id=cmd.backup_id,
            team_id=cmd.team_id,
            database_id=cmd.database_id,
            container=cmd.target.volume,
            database=cmd.target.volume,
            duration_s=0.3,
        )
    )
    await _until(client, members.viewer, f"/v1/restores/{restore['id']}", "succeeded")

    over = {"backup_id": backup["id"], "target": "existing"}
    assert (await client.post(path, headers=members.developer, json={**over, "confirm": True})).status_code == 403
    assert _error(await client.post(path, headers=members.admin, json=over))["loc"] == "/body/confirm"
    starts = len([c for c in backups.commands if c[0] == "cmd.backup.start"])
    r = await client.post(path, headers=members.admin, json={**over, "confirm": True})
    assert r.status_code == 202, r.text
    restore = r.json()
    assert restore["state"] == "backing_up" and restore["pre_backup_id"]
    fresh = StartBackup.model_validate((await backups.wait_for("cmd.backup.start", starts + 1))[-1][2].data)
    assert fresh.backup_id == restore["pre_backup_id"] and fresh.source.volume == f"berth-{app['id']}-data"
    assert len([c for c in backups.commands if c[0] == "cmd.backup.restore"]) == 1  # not before the backup
    await _succeed(backups, fresh)
    (_, (_, _, env)) = await backups.wait_for("cmd.backup.restore", 2)
    cmd = RestoreBackup.model_validate(env.data)
    assert cmd.overwrite and cmd.confirm_overwrite and cmd.target.volume == f"berth-{app['id']}-data"
    assert cmd.target.stop_service == "web" and cmd.backup_id == backup["id"]
    await _until(client, members.viewer, f"/v1/restores/{restore['id']}", "running")


# --- end to end: the api and the real scheduler ----------------------------------------------------------

platform = e2e.platform  # the api, the real scheduler in-process and a real S3 API (moto)


async def _ended(client, headers, path: str, state: str, timeout: float = 180) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = (await client.get(path, headers=headers)).json()
        if got.get("state") in ("succeeded", "failed"):
            assert got["state"] == state, got
            return got
        assert asyncio.get_running_loop().time() < deadline, f"{path} never {state}: {got}"
        await asyncio.sleep(0.3)


@pytest.mark.slow
@pytest.mark.docker
async def test_a_volume_is_backed_up_and_restored_through_the_api_byte_identical(client, members, platform, unique):
    s3, _ = platform
    images.busybox_image()  # the helper image of volume backups
    bucket = s3.make_bucket(f"vol-{uuid.uuid4().hex[:8]}")
    app = await make_app(client, members.developer, _app_body())
    volume, copy_volume = f"berth-{app['id']}-data", f"berth-{app['id']}-data-copy"
    images.docker("volume", "create", "--label", f"berth.app={app['id']}", "--label", images.TEST_LABEL, volume)
    try:
        write_tree(volume, unique)
        before = listing(volume)
        dest = {
            "kind": "s3",
            "name": "moto",
            "endpoint": s3.endpoint,
            "bucket": bucket,
            "access_key": s3.access_key,
            "secret_key": s3.secret_key,
            "prefix": "volumes/",
        }
        dest_id = (await client.post("/v1/backup-destinations", headers=members.admin, json=dest)).json()["id"]
        base = f"/v1/applications/{app['id']}/volumes/data"
        r = await client.post(f"{base}/backups", headers=members.developer, json={"destinations": [dest_id]})
        assert r.status_code == 202, r.text
        backup = await _ended(client, members.viewer, f"/v1/backups/{r.json()['id']}", "succeeded")
        (obj,) = backup["objects"]
        assert s3.objects(bucket, "volumes/")[obj["key"]] == obj["size"] and obj["destination_id"] == dest_id
        assert obj["key"].endswith(".tar.zst") and len(obj["sha256"]) == 64  # zstd: the default compression
        (listed,) = (await client.get(f"{base}/backups", headers=members.viewer)).json()
        assert listed["state"] == "succeeded" and listed["objects"] == backup["objects"]

        r = await client.post(
            f"{base}/restore", headers=members.developer, json={"backup_id": backup["id"], "name": "data-copy"}
        )
        assert r.status_code == 202, r.text
        done = await _ended(client, members.viewer, f"/v1/restores/{r.json()['id']}", "succeeded")
        assert done["log"] and listing(copy_volume) == before

        # over the existing volume, changed since: a fresh backup first, then the data as it was backed up
        images.docker("run", "--rm", "-v", f"{volume}:/v", images.busybox_image(), "rm", "-rf", "/v/data/nested")
        assert listing(volume) != before
        asked = {"backup_id": backup["id"], "target": "existing", "confirm": True}
        r = await client.post(f"{base}/restore", headers=members.admin, json=asked)
        assert r.status_code == 202, r.text
        done = await _ended(client, members.viewer, f"/v1/restores/{r.json()['id']}", "succeeded", timeout=240)
        assert listing(volume) == before
        fresh = (await client.get(f"/v1/backups/{done['pre_backup_id']}", headers=members.viewer)).json()
        assert fresh["state"] == "succeeded" and fresh["objects"][0]["sha256"] != obj["sha256"]
    finally:
        for name in (volume, copy_volume):
            subprocess.run([images.DOCKER, "volume", "rm", "-f", name], capture_output=True)
