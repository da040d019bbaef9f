"""A team's backup key on the api side (real api and bus; the scheduler's part played by the test): made on
first use, the same for every backup of the team, sealed at rest and in every command, exported to admins
only (audited, never in the audit row), different per team; backups are encrypted when the request, the
schedule or a destination asks; a restore of an encrypted object carries the key; key rotation re-seals
the team key and it still opens to the same bytes."""

from __future__ import annotations

import base64
import os

import asyncpg
import sqlalchemy as sa

from berth_api.adapters.sealed import reseal_all
from berth_api.adapters.secretbox import SecretBox
from berth_common import streamcrypt
from berth_common.catalogue import BackupObject, BackupSucceeded, RestoreBackup, SetSchedule, StartBackup
from berth_common.db import make_engine, make_sessionmaker
from tests.api.test_backups_api import _changed, _database, _s3, _until, cmds  # noqa: F401 (the fixture)

KEY_PATH = "/v1/team/backup-key"


async def _export(client, headers) -> dict:
    r = await client.get(KEY_PATH, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_the_key_is_exported_to_admins_only_audited_and_the_same_each_time(client, members, api_urls):
    for who in (members.viewer, members.developer):
        assert (await client.get(KEY_PATH, headers=who)).status_code == 403
    first = await _export(client, members.admin)
    key = base64.b64decode(first["key"], validate=True)
    assert len(key) == 32 and first["key_id"] == streamcrypt.key_id(key).hex()
    assert first["format"] == "berth-streamcrypt-v1" and first["algorithm"] == "AES-256-GCM"
    assert await _export(client, members.admin) == first
    other = await _export(client, members.other)  # another team's admin: that team's own key
    assert other["key"] != first["key"] and other["key_id"] != first["key_id"]

    audit = (await client.get("/v1/audit", headers=members.admin)).json()
    reads = [a for a in audit if a.get("fields") == ["backup_key"]]
    assert len(reads) == 2, audit
    assert first["key"] not in str(audit)

    # sealed at rest: the row holds neither the key nor its base64
    conn = await asyncpg.connect(api_urls["api"].replace("+asyncpg", ""))
    try:
        rows = await conn.fetch("SELECT id, key_id, sealed FROM backup_keys")
    finally:
        await conn.close()
    assert len(rows) == 2 and first["key_id"] in {r["key_id"] for r in rows}
    for row in rows:
        assert key not in row["sealed"] and first["key"].encode() not in row["sealed"]


async def test_backups_carry_the_team_key_sealed_when_asked(client, members, cmds):  # noqa: F811
    backups, schedules, databases = cmds
    db = await _database(client, members.developer, databases)
    plain = (await client.post("/v1/backup-destinations", headers=members.admin, json=_s3())).json()
    assert plain["encrypt"] is False
    path = f"/v1/databases/{db['id']}/backups"

    # not asked: no key, and zstd by default
    assert (await client.post(path, headers=members.developer, json={"destinations": [plain["id"]]})).status_code == 202
    ((_, raw, env),) = await backups.wait_for("cmd.backup.start")
    cmd = StartBackup.model_validate(env.data)
    assert cmd.encryption is None and cmd.compression == "zstd"

    # asked by the request: the key travels sealed; it is the one the admins export
    r = await client.post(path, headers=members.developer, json={"destinations": [plain["id"]], "encrypt": True})
    assert r.status_code == 202, r.text
    (_, (_, raw, env)) = await backups.wait_for("cmd.backup.start", 2)
    cmd = StartBackup.model_validate(env.data)
    exported = await _export(client, members.admin)
    assert cmd.encryption is not None and cmd.encryption.reveal() == exported["key"]
    assert cmd.encryption.key_id == exported["key_id"] and cmd.encryption.team_id == cmd.team_id
    assert exported["key"].encode() not in raw and b"sealed:v1:" in raw

    # asked by a destination: every backup sent there is encrypted
    enc = (
        await client.post("/v1/backup-destinations", headers=members.admin, json=_s3(name="vault", encrypt=True))
    ).json()
    assert enc["encrypt"] is True
    r = await client.post(path, headers=members.developer, json={"destinations": [plain["id"], enc["id"]]})
    assert r.status_code == 202
    env = (await backups.wait_for("cmd.backup.start", 3))[-1][2]
    cmd = StartBackup.model_validate(env.data)
    assert cmd.encryption is not None and cmd.encryption.reveal() == exported["key"]
    r = await client.patch(f"/v1/backup-destinations/{enc['id']}", headers=members.admin, json={"encrypt": False})
    assert r.status_code == 200 and r.json()["encrypt"] is False

    # a schedule asks: its template carries the key; shown on the schedule
    body = {"cron": "0 3 * * *", "timezone": "UTC", "destinations": [plain["id"]], "encrypt": True}
    r = await client.put(f"/v1/databases/{db['id']}/backup-schedule", headers=members.admin, json=body)
    assert r.status_code == 200 and r.json()["encrypt"] is True and r.json()["compression"] == "zstd"
    ((_, raw, env),) = await schedules.wait_for("cmd.schedule.set")
    template = StartBackup.model_validate(SetSchedule.model_validate(env.data).command)
    assert template.encryption is not None and template.encryption.reveal() == exported["key"]
    assert exported["key"].encode() not in raw

    # the encrypted backup succeeds; restoring it sends the key with the command
    key = f"db/{cmd.backup_id}.dump.zst.enc"
    obj = BackupObject(destination=cmd.destinations[0].name, key=key, size=9, sha256="b" * 64)
    ids = {"backup_id": cmd.backup_id, "team_id": cmd.team_id, "database_id": db["id"]}
    done = BackupSucceeded(
        **ids,
        engine="postgresql",
        database="orders",
        compression="zstd",
        objects=[obj],
        duration_s=0.2,
        encrypted=True,
        key_id=exported["key_id"],
    )
    await backups.bus.publish(done)
    got = await _until(client, members.viewer, f"/v1/backups/{cmd.backup_id}", "succeeded")
    assert got["encrypted"] is True and got["compression"] == "zstd"
    r = await client.post(
        f"/v1/databases/{db['id']}/restore", headers=members.developer, json={"backup_id": cmd.backup_id, "name": "c"}
    )
    assert r.status_code == 202, r.text
    new_id = r.json()["target_database_id"]
    run = next(
        e for _, _, e in await databases.wait_for("cmd.database.run", 2) if e.data["spec"]["database_id"] == new_id
    )
    await _changed(databases, run, "running")
    ((_, raw, env),) = await backups.wait_for("cmd.backup.restore")
    restore = RestoreBackup.model_validate(env.data)
    assert restore.key == key and restore.compression == "zstd"
    assert restore.encryption is not None and restore.encryption.reveal() == exported["key"]
    assert exported["key"].encode() not in raw


async def test_key_rotation_reseals_the_team_key(client, members, api_urls, api_settings):
    """``berth secrets rotate-key`` re-seals every sealed row (``reseal_all``): the team key too, and it opens
    with the new key to the same value (done in a transaction rolled back: nothing changes)."""
    exported = await _export(client, members.admin)
    old = api_settings.secrets_key_path.read_bytes().strip()
    new = os.urandom(32)
    engine = make_engine(api_urls["api"], "api")
    try:
        async with make_sessionmaker(engine)() as s:
            async with s.begin():
                done = await reseal_all(s, SecretBox([new, old]))
                assert done.counts.get("backup_keys") == 1
                (row,) = (await s.execute(sa.text("SELECT id, sealed FROM backup_keys"))).all()
                assert SecretBox([new]).open(row.sealed, f"backup-key:{row.id}") == exported["key"]
                await s.rollback()
    finally:
        await engine.dispose()
