"""Encrypted zstd backups end to end: the real scheduler (a process), a real S3 API (moto with signature
checks), a PostgreSQL container; the commands carry the team's backup key sealed, as the api sends them.

An encrypted zstd backup restores the same data; the stored object is Berth's encrypted stream (named
``.zst.enc``) and holds no plaintext row; a restore with another team's key, without a key, or of a
changed object ends failed with its reason; the key is never in an event or the scheduler's log.
"""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import SecretStr

from berth_cli.backup_decrypt import decrypt_file
from berth_common import codecs, streamcrypt
from berth_common.catalogue import BackupKey, RestoreBackup
from berth_common.db.provision import provision
from tests.scheduler.backup_support import Harness, SchedulerProcess, fill, scheduler_env, start_postgres
from tests.support.images import postgres_image, remove_container
from tests.support.s3 import MotoS3

pytestmark = [pytest.mark.slow, pytest.mark.docker]
KEY = bytes(range(100, 132))
OTHER = bytes(range(7, 39))
MARKER = "plaintext-marker-5f1c-never-stored-in-clear"


def team_key(key: bytes) -> BackupKey:
    return BackupKey(
        team_id="team1", key_id=streamcrypt.key_id(key).hex(), key=SecretStr(base64.b64encode(key).decode())
    )


@pytest.fixture
async def harness(nats_server, database, tmp_root, unique):
    try:
        postgres_image()
    except Exception as exc:  # no Debian mirror or no Docker here
        pytest.skip(f"no PostgreSQL image: {exc}")
    s3 = MotoS3(tmp_root / f"moto-encrypted-{unique}.log").start()
    urls = await provision(database, "test-secret", ("scheduler",))
    container = start_postgres(unique)
    scheduler = SchedulerProcess(scheduler_env(nats_server.url, urls["scheduler"]), tmp_root / f"sched-{unique}.log")
    bucket = s3.make_bucket(f"enc-{unique}")
    h = Harness(nats_server.url, urls["scheduler"], s3, tmp_root, container, bucket, scheduler)
    await h.start()
    fill(h)
    h.psql(f"INSERT INTO items VALUES (0, '{MARKER}')", "shop")
    yield h
    await h.close()
    remove_container(container)
    s3.stop()


async def _restore(h: Harness, restore_id: str, obj: dict, **change: object) -> dict:
    values = {
        "restore_id": restore_id,
        "backup_id": "b-enc",
        "team_id": "team1",
        "database_id": "db1",
        "origin": h.s3_destination(),
        "key": obj["key"],
        "sha256": obj["sha256"],
        "compression": "zstd",
        "target": h.source(f"copy_{restore_id.replace('-', '_')}"),
        "encryption": team_key(KEY),
        **change,
    }
    assert h.api is not None
    await h.api.publish(RestoreBackup(**values))
    return await h.outcome("evt.restore.", "restore_id", restore_id)


async def test_an_encrypted_zstd_backup_restores_the_same_data(harness: Harness) -> None:
    h = harness
    before = h.checksum()
    done = await h.backup("b-enc", compression="zstd", encryption=team_key(KEY))
    assert done["type"] == "evt.backup.succeeded", done["data"].get("reason")
    data = done["data"]
    assert (data["compression"], data["encrypted"], data["key_id"]) == ("zstd", True, streamcrypt.key_id(KEY).hex())
    (obj,) = data["objects"]
    assert obj["key"].endswith("-b-enc.dump.zst.enc")
    stored = h.s3.read(h.bucket, obj["key"])
    assert stored[:8] == b"BERTHENC" and stored[14:22] == streamcrypt.key_id(KEY)
    # inside: pg_dump's custom format, compressed with zstd (its frame magic)
    inner = codecs.Decrypt(KEY)
    compressed = inner.feed(stored) + inner.end()
    assert compressed[:4] == b"\x28\xb5\x2f\xfd"
    plain = codecs.unpacker("zstd", KEY)
    assert (plain.feed(stored) + plain.end())[:5] == b"PGDMP"

    done = await _restore(h, "r-enc", obj)
    assert done["type"] == "evt.restore.succeeded", done["data"].get("reason")
    assert h.checksum("copy_r_enc") == before

    # another team's key: refused at the header, with both key ids named
    done = await _restore(h, "r-other", obj, encryption=team_key(OTHER))
    assert done["type"] == "evt.restore.failed"
    reason = done["data"]["reason"]
    assert f"encrypted with the backup key {streamcrypt.key_id(KEY).hex()}" in reason, reason
    assert streamcrypt.key_id(OTHER).hex() in reason
    # over the existing database with another key: refused before the restore tool reads a byte, data as it was
    h.psql("INSERT INTO items VALUES (-1, 'written after the backup')", "shop")
    changed_since = h.checksum()
    target = {"target": h.source("shop"), "overwrite": True, "confirm_overwrite": True}
    done = await _restore(h, "r-over-other", obj, encryption=team_key(OTHER), **target)
    assert done["type"] == "evt.restore.failed" and "encrypted with the backup key" in done["data"]["reason"]
    assert h.checksum() == changed_since
    # no key at all
    done = await _restore(h, "r-nokey", obj, encryption=None)
    assert done["type"] == "evt.restore.failed"
    assert "encrypted and the command carries no backup key" in done["data"]["reason"]

    # every database as plain SQL: the known row is in the decrypted stream, never in the stored bytes
    done = await h.backup("b-all-enc", compression="zstd", encryption=team_key(KEY), source=h.source(None))
    assert done["type"] == "evt.backup.succeeded", done["data"].get("reason")
    (obj_all,) = done["data"]["objects"]
    assert obj_all["key"].endswith("-b-all-enc.sql.zst.enc")
    stored_all = h.s3.read(h.bucket, obj_all["key"])
    unpack = codecs.unpacker("zstd", KEY)
    assert MARKER.encode() in unpack.feed(stored_all) + unpack.end()
    assert MARKER.encode() not in stored_all and MARKER.encode() not in compressed
    # and the cli decrypts the downloaded object with the key as the api exports it, without Berth running
    downloaded = h.tmp / f"{h.bucket}-all.sql.zst.enc"
    downloaded.write_bytes(stored_all)
    key_file = h.tmp / f"{h.bucket}.key"
    key_file.write_text(json.dumps({"key": base64.b64encode(KEY).decode()}))
    out = h.tmp / f"{h.bucket}-all.sql"
    assert decrypt_file(key_file, downloaded, str(out)) == out.stat().st_size
    assert MARKER.encode() in out.read_bytes() and b"CREATE DATABASE shop" in out.read_bytes()

    # a changed byte in the stored object: the restore fails on the record, before it is passed on
    changed = bytearray(stored)
    changed[len(changed) // 2] ^= 0x01
    h.s3.client().put_object(Bucket=h.bucket, Key="team1/changed.dump.zst.enc", Body=bytes(changed))
    done = await _restore(h, "r-changed", obj, key="team1/changed.dump.zst.enc")
    assert done["type"] == "evt.restore.failed"
    assert "does not authenticate" in done["data"]["reason"], done["data"]["reason"]

    secret = base64.b64encode(KEY)
    assert not any(secret in raw for raw in h.raw), "the team key in an event or a log line"
    assert secret not in h.scheduler.log_path.read_bytes()
