"""Database backups end to end: the real scheduler (a process, as deployed), a real S3 API (moto with
signature checks), a PostgreSQL container started here; the commands are published as the api would.

Round trip (known rows, back up to S3 and a directory, drop the database, restore, same checksum); every
failure (wrong secret, unknown key, missing bucket, unreachable endpoint, a dump that fails) ends failed
with the store's or the tool's reason, a delivered ``evt.backup.failed`` and nothing listed or left open;
retention of 20 backups with count 5 keeps the 5 newest, and a failed backup deletes nothing; a kill -9 of
the scheduler during a backup leaves it failed, never running. No secret in any event, log line or log.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from berth_cli.components import free_port
from berth_common import sealing
from berth_common.catalogue import (
    DirectoryDestination,
    RestoreBackup,
    Retention,
    StartBackup,
)
from berth_common.db import make_engine
from berth_common.db.provision import provision
from tests.scheduler.backup_support import (
    PG_PASSWORD,
    Harness,
    SchedulerProcess,
    fill,
    run_postgres,
    scheduler_env,
    wait_postgres,
)
from tests.support.bus_helpers import wait_until
from tests.support.images import DOCKER, docker, postgres_image, remove_container
from tests.support.s3 import MotoS3

pytestmark = [pytest.mark.slow, pytest.mark.docker]
WRONG_SECRET = "wrong-secret-never-shown-93f"


@pytest.fixture(scope="module")
def moto(tmp_root):
    """One S3 server for the file (each test has its own bucket)."""
    server = MotoS3(tmp_root / f"moto-backups-{uuid.uuid4().hex[:8]}.log").start()
    yield server
    server.stop()


async def start_harness(nats_url: str, database: str, tmp_root: Path, unique: str, moto: MotoS3) -> Harness:
    try:
        image = postgres_image()
    except Exception as exc:  # no Debian mirror or no Docker here
        pytest.skip(f"no PostgreSQL image: {exc}")
    assert image
    container = run_postgres(unique)  # starts while the scheduler's schema is made
    urls = await provision(database, "test-secret", ("scheduler",))
    wait_postgres(container)
    scheduler = SchedulerProcess(scheduler_env(nats_url, urls["scheduler"]), tmp_root / f"scheduler-{unique}.log")
    bucket = moto.make_bucket(f"backups-{unique}")
    h = Harness(nats_url, urls["scheduler"], moto, tmp_root, container, bucket, scheduler)
    await h.start()
    fill(h)
    return h


@pytest.fixture(scope="module")
async def shared(module_nats_server, module_database, tmp_root, moto):
    """One scheduler process and PostgreSQL container for the tests that neither kill them nor need them new."""
    h = await start_harness(module_nats_server.url, module_database, tmp_root, uuid.uuid4().hex[:8], moto)
    yield h
    await h.close()
    remove_container(h.container)


@pytest.fixture
def harness(shared: Harness, unique: str) -> Harness:
    """The shared scheduler and database, with a new bucket and no event seen yet; the database ``shop``
    holds its 20000 known rows."""
    shared.seen.clear()
    shared.raw.clear()
    shared.bucket = shared.s3.make_bucket(f"backups-{unique}")
    if shared.psql("SELECT 1 FROM pg_database WHERE datname = 'shop'") != "1":  # an earlier test failed midway
        fill(shared)
    return shared


@pytest.fixture
async def fresh_harness(nats_server, database, tmp_root, unique, moto):
    """A scheduler process and PostgreSQL container of the test's own (it kills one of them)."""
    h = await start_harness(nats_server.url, database, tmp_root, unique, moto)
    yield h
    await h.close()
    remove_container(h.container)


def table_locked(h: Harness) -> bool:
    """The test's transaction holds its exclusive lock on ``items`` (pg_dump will wait on it)."""
    query = (
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "WHERE c.relname = 'items' AND l.mode = 'AccessExclusiveLock' AND l.granted"
    )
    return h.psql(query, "shop") == "1"


def dump_waiting(h: Harness) -> bool:
    """pg_dump runs and waits for its lock on ``items`` (behind the test's exclusive one): the dump started,
    whichever process streams it (the multipart upload is opened before the dump tool starts)."""
    query = (
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "WHERE c.relname = 'items' AND NOT l.granted"
    )
    return h.psql(query, "shop") == "1"


def assert_no_secret(h: Harness, *secrets: str) -> None:
    log = h.scheduler.log_path.read_bytes()
    for secret in (h.s3.secret_key, PG_PASSWORD, *secrets):
        needle = secret.encode()
        assert not any(needle in raw for raw in h.raw), "a secret in an event or a log line"
        assert needle not in log, "a secret in the scheduler's log"


async def test_a_backup_is_verified_and_restores_the_same_data(harness: Harness) -> None:
    h = harness
    before = h.checksum()
    directory = DirectoryDestination(path=str(h.tmp / f"dir-{h.bucket}"))
    done = await h.backup("b-round", destinations=[h.s3_destination(), directory], compression="gzip")
    assert done["type"] == "evt.backup.succeeded", done["data"].get("reason")
    data = done["data"]
    # gzip asked for: gzip used, and the object's name says so (zstd: tests/scheduler/test_backup_encryption.py)
    assert data["compression"] == "gzip"
    s3_obj, dir_obj = data["objects"]
    assert s3_obj["destination"] == f"s3:{h.s3.endpoint}/{h.bucket}"
    assert s3_obj["key"].startswith("team1/db1/") and s3_obj["key"].endswith("-b-round.dump.gz")
    stored = h.s3.read(h.bucket, s3_obj["key"])  # read independently of Berth's client
    assert (len(stored), hashlib.sha256(stored).hexdigest()) == (s3_obj["size"], s3_obj["sha256"])
    assert stored[:2] == b"\x1f\x8b"  # gzip, truthfully named
    assert Path(dir_obj["key"]).read_bytes() == stored
    assert h.s3.uploads(h.bucket) == []
    assert [e["data"]["backup_id"] for e in h.events("evt.backup.started")] == ["b-round"]

    h.psql("DROP DATABASE shop")
    restore = RestoreBackup(
        restore_id="r-1",
        backup_id="b-round",
        team_id="team1",
        database_id="db1",
        origin=h.s3_destination(),
        key=s3_obj["key"],
        sha256=s3_obj["sha256"],
        compression="gzip",
        target=h.source("shop"),
    )
    assert h.api is not None
    await h.api.publish(restore)
    done = await h.outcome("evt.restore.", "restore_id", "r-1")
    assert done["type"] == "evt.restore.succeeded", done["data"].get("reason")
    assert h.checksum() == before
    lines = [e["data"]["line"] for e in h.seen if e["_subject"] == "log.r-1"]
    assert lines[0].startswith("restoring team1/db1/") and lines[-1] == "restore finished", lines

    # from the directory copy, into a second new database
    again = restore.model_copy(
        update={"restore_id": "r-2", "origin": directory, "key": dir_obj["key"], "target": h.source("shop_copy")}
    )
    await h.api.publish(again)
    done = await h.outcome("evt.restore.", "restore_id", "r-2")
    assert done["type"] == "evt.restore.succeeded", done["data"].get("reason")
    assert h.checksum("shop_copy") == before
    # over the existing database, confirmed: the rows changed since the backup are as they were
    h.psql("UPDATE items SET name = 'changed' WHERE id <= 100; DELETE FROM items WHERE id > 19000", "shop_copy")
    assert h.checksum("shop_copy") != before
    over = again.model_copy(update={"restore_id": "r-over", "overwrite": True, "confirm_overwrite": True})
    await h.api.publish(over)
    done = await h.outcome("evt.restore.", "restore_id", "r-over")
    assert done["type"] == "evt.restore.succeeded", done["data"].get("reason")
    assert h.checksum("shop_copy") == before
    # a restore into a new database that already exists fails with the tool's reason
    await h.api.publish(again.model_copy(update={"restore_id": "r-exists"}))
    done = await h.outcome("evt.restore.", "restore_id", "r-exists")
    assert done["type"] == "evt.restore.failed"
    assert 'database "shop_copy" already exists' in done["data"]["reason"], done["data"]["reason"]
    assert h.checksum("shop_copy") == before
    # every database of the server, roles included: pg_dumpall's SQL, named so
    done = await h.backup("b-all", source=h.source(None))
    assert done["type"] == "evt.backup.succeeded", done["data"].get("reason")
    (obj,) = done["data"]["objects"]
    assert obj["key"].endswith("-b-all.sql.gz")
    sql = gzip.decompress(h.s3.read(h.bucket, obj["key"]))
    assert b"CREATE ROLE postgres" in sql and b"CREATE DATABASE shop_copy" in sql
    # over an existing database only with the confirmation: refused by the command itself
    with pytest.raises(ValueError, match="confirm_overwrite"):
        RestoreBackup(**{**restore.model_dump(), "restore_id": "r-3", "overwrite": True})
    assert_no_secret(h)


async def test_every_failure_ends_failed_with_its_reason_and_leaves_nothing(harness: Harness) -> None:
    h = harness
    closed = free_port()
    cases = [
        ("b-secret", {"destinations": [h.s3_destination(secret_key=WRONG_SECRET)]}, "SignatureDoesNotMatch"),
        ("b-key", {"destinations": [h.s3_destination(access_key="AKIAUNKNOWNKEY000000")]}, "InvalidAccessKeyId"),
        ("b-bucket", {"destinations": [h.s3_destination(bucket="no-such-bucket")]}, "NoSuchBucket"),
        (
            "b-endpoint",
            {"destinations": [h.s3_destination(endpoint=f"http://127.0.0.1:{closed}")]},
            "ConnectionError",
        ),
        ("b-nodb", {"source": h.source("no_such_db")}, 'database "no_such_db" does not exist'),
        (
            "b-nocontainer",
            {"source": h.source().model_copy(update={"container": f"{h.container}-gone"})},
            f"container {h.container}-gone does not exist",
        ),
    ]
    for backup_id, fields, reason in cases:
        done = await h.backup(backup_id, **fields)
        assert done["type"] == "evt.backup.failed", (backup_id, done["data"])
        assert reason in done["data"]["reason"], (backup_id, done["data"]["reason"])
    assert "pg_dump exited with code 1" in h.events("evt.backup.failed")[-2]["data"]["reason"]
    assert h.s3.objects(h.bucket) == {}  # nothing listed as a backup
    assert h.s3.uploads(h.bucket) == []  # no multipart upload left open
    assert h.events("evt.backup.succeeded") == []
    # a command sealed with a key the scheduler does not have: failed with the reason, never dead-lettered
    before = sealing.install(None)
    sealing.configure("a-key-the-scheduler-does-not-have")
    try:
        sealed_elsewhere = StartBackup(
            backup_id="b-sealed",
            team_id="team1",
            database_id="db1",
            source=h.source(),
            destinations=[h.s3_destination()],
        )
        assert h.api is not None
        await h.api.publish(sealed_elsewhere)
    finally:
        sealing.install(before)
    done = await h.outcome("evt.backup.", "backup_id", "b-sealed")
    assert done["type"] == "evt.backup.failed"
    assert "cannot be opened (BERTH_SECRET_KEY)" in done["data"]["reason"]
    assert h.s3.objects(h.bucket) == {} and h.s3.uploads(h.bucket) == []
    assert_no_secret(h, WRONG_SECRET)


async def test_retention_keeps_the_newest_and_a_failed_backup_deletes_nothing(harness: Harness) -> None:
    h = harness
    keep = Retention(keep_count=5)
    ids = [f"b-{i:02d}" for i in range(8)]  # past the count: each backup after the fifth prunes the oldest
    for backup_id in ids:
        done = await h.backup(backup_id, retention=keep)
        assert done["type"] == "evt.backup.succeeded", done["data"].get("reason")
    names = sorted(h.s3.objects(h.bucket, "team1/db1/"))
    assert [n.rsplit("-", 2)[-2] + "-" + n.rsplit("-", 1)[-1].split(".")[0] for n in names] == ids[-5:]
    assert [e["data"]["pruned"] for e in h.events("evt.backup.succeeded")] == [0] * 5 + [1] * 3
    failed = await h.backup("b-fails", source=h.source("no_such_db"), retention=Retention(keep_count=1))
    assert failed["type"] == "evt.backup.failed"
    assert sorted(h.s3.objects(h.bucket, "team1/db1/")) == names


async def test_a_killed_scheduler_leaves_the_backup_failed_never_running(fresh_harness: Harness) -> None:
    h = fresh_harness
    # a transaction holding an exclusive lock on the table: pg_dump waits on it, the backup stays running
    locker = subprocess.Popen(
        [DOCKER, "exec", "-i", h.container, "psql", "-U", "postgres", "-d", "shop"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert locker.stdin is not None
        locker.stdin.write(b"BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE;\n")
        locker.stdin.flush()
        await wait_until(lambda: table_locked(h), timeout=30, interval=0.1)
        cmd = StartBackup(
            backup_id="b-killed",
            team_id="team1",
            database_id="db1",
            source=h.source(),
            destinations=[h.s3_destination()],
        )
        assert h.api is not None
        await h.api.publish(cmd)
        deadline = time.monotonic() + 60
        while not h.events("evt.backup.started") and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert h.events("evt.backup.started"), h.scheduler.log_path.read_text()[-3000:]
        # the multipart upload is open, pg_dump waits on the lock
        await wait_until(lambda: dump_waiting(h), timeout=30, interval=0.1)
        assert len(h.s3.uploads(h.bucket)) == 1
        h.scheduler.kill()
        h.scheduler.start()  # a new scheduler process
        done = await h.outcome("evt.backup.", "backup_id", "b-killed", timeout=60)
        assert done["type"] == "evt.backup.failed"
        assert "stopped (killed or crashed)" in done["data"]["reason"]
    finally:
        with contextlib.suppress(Exception):
            locker.stdin.close()  # type: ignore[union-attr]
        locker.wait(20)
    engine = make_engine(h.db_url, schema="scheduler")
    try:
        async with engine.connect() as conn:
            state = (await conn.execute(sa.text("SELECT state FROM scheduler.backups WHERE id = 'b-killed'"))).scalar()
    finally:
        await engine.dispose()
    assert state == "failed"
    await asyncio.sleep(1.0)
    assert h.s3.uploads(h.bucket) == [] and h.s3.objects(h.bucket) == {}
    assert len(h.events("evt.backup.failed")) == 1  # announced once


async def test_a_container_killed_mid_dump_ends_the_backup_failed(fresh_harness: Harness) -> None:
    h = fresh_harness
    locker = subprocess.Popen(
        [DOCKER, "exec", "-i", h.container, "psql", "-U", "postgres", "-d", "shop"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert locker.stdin is not None
    locker.stdin.write(b"BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE;\n")
    locker.stdin.flush()
    await wait_until(lambda: table_locked(h), timeout=30, interval=0.1)
    cmd = StartBackup(
        backup_id="b-cut", team_id="team1", database_id="db1", source=h.source(), destinations=[h.s3_destination()]
    )
    assert h.api is not None
    await h.api.publish(cmd)
    deadline = time.monotonic() + 60
    while not h.events("evt.backup.started") and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    # pg_dump waits on the lock, its upload is open
    await wait_until(lambda: dump_waiting(h), timeout=30, interval=0.1)
    assert len(h.s3.uploads(h.bucket)) == 1
    docker("kill", h.container)
    locker.wait(20)
    done = await h.outcome("evt.backup.", "backup_id", "b-cut")
    assert done["type"] == "evt.backup.failed"
    # the kill takes pg_dump with the container, or the server first (pg_dump then sees its connection cut)
    reason = done["data"]["reason"]
    assert reason.startswith(("pg_dump was killed by signal 9", "pg_dump exited with code 1: pg_dump: error")), reason
    assert h.s3.objects(h.bucket) == {} and h.s3.uploads(h.bucket) == []
