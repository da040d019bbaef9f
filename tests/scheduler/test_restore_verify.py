"""Restores check the stored object before they write over data: a restore over an existing database whose
object is not the one the backup recorded (another, valid dump put in its place) is refused with the
SHA-256 reason and the database keeps its rows; a restore into a new database whose object turns out wrong
at the end leaves no new database behind. The real scheduler process, moto S3 and PostgreSQL; the backup
streams in the worker process (the scheduler's log says so).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from berth_common.catalogue import DirectoryDestination, RestoreBackup
from berth_scheduler.domain import restore_checks as checks
from berth_scheduler.domain.dumps import Exec
from tests.scheduler.backup_support import Harness, SchedulerProcess, fill, scheduler_env, start_postgres
from tests.support.images import postgres_image, remove_container
from tests.support.s3 import MotoS3


def test_which_restores_check_first_and_how_a_new_database_is_removed() -> None:
    assert checks.overwrites("postgresql", "shop", overwrite=True)
    assert checks.overwrites("postgresql", None, overwrite=False)  # every database of the server
    assert checks.overwrites("redis", None, overwrite=False) and checks.overwrites("redis", "0", overwrite=False)
    assert not checks.overwrites("postgresql", "shop_new", overwrite=False)
    assert not checks.overwrites("mongodb", "shop_new", overwrite=False)
    assert checks.drop_new_database("postgresql", "n", "postgres", "pw") == Exec(
        ["dropdb", "--no-password", "--if-exists", "--force", "-U", "postgres", "n"], {"PGPASSWORD": "pw"}
    )
    assert checks.drop_new_database("mariadb", "n", "root", "pw") == Exec(
        ["mariadb-admin", "-u", "root", "--force", "drop", "n"], {"MYSQL_PWD": "pw"}
    )
    assert checks.drop_new_database("postgresql", None, "postgres", "pw") is None
    assert checks.drop_new_database("redis", "0", "", "pw") is None
    assert checks.mismatch("a" * 64, 10, "a" * 64, None, "database shop") is None
    assert checks.mismatch("a" * 64, 10, "a" * 64, 10, "database shop") is None
    assert checks.mismatch("b" * 64, 10, "a" * 64, None, "database shop") == (
        f"the backup object's SHA-256 is {'b' * 64}, the backup recorded {'a' * 64}: "
        "nothing was written into database shop"
    )
    assert checks.mismatch("a" * 64, 9, "a" * 64, 10, "volume v") == (
        "the backup object has 9 bytes, the backup recorded 10: nothing was written into volume v"
    )


@pytest.fixture(scope="module")
def moto(tmp_root):
    server = MotoS3(tmp_root / f"moto-verify-{uuid.uuid4().hex[:8]}.log").start()
    yield server
    server.stop()


@pytest.fixture
async def harness(nats_server, database, tmp_root, unique, moto):
    from berth_common.db.provision import provision

    try:
        image = postgres_image()
    except Exception as exc:  # no Debian mirror or no Docker here
        pytest.skip(f"no PostgreSQL image: {exc}")
    assert image
    urls = await provision(database, "test-secret", ("scheduler",))
    container = start_postgres(unique)
    scheduler = SchedulerProcess(scheduler_env(nats_server.url, urls["scheduler"]), tmp_root / f"sched-{unique}.log")
    bucket = moto.make_bucket(f"verify-{unique}")
    h = Harness(nats_server.url, urls["scheduler"], moto, tmp_root, container, bucket, scheduler)
    await h.start()
    fill(h)
    yield h
    await h.close()
    remove_container(container)


def _lines(h: Harness, restore_id: str) -> list[str]:
    return [e["data"]["line"] for e in h.seen if e["_subject"] == f"log.{restore_id}"]


@pytest.mark.slow
@pytest.mark.docker
async def test_a_wrong_object_is_refused_before_anything_is_written(harness: Harness) -> None:
    h = harness
    assert h.api is not None
    directory = DirectoryDestination(path=str(h.tmp / f"dir-{h.bucket}"))
    first = await h.backup("b-first", destinations=[h.s3_destination(), directory])
    assert first["type"] == "evt.backup.succeeded", first["data"].get("reason")
    assert "backup worker ended" in h.scheduler.log_path.read_text()  # streamed in the worker process
    s3_first, dir_first = first["data"]["objects"]
    # another good dump, of other rows: what a swapped or overwritten object would be
    h.psql("UPDATE items SET name = 'later' WHERE id <= 5000", "shop")
    second = await h.backup("b-second", destinations=[h.s3_destination(), directory])
    assert second["type"] == "evt.backup.succeeded", second["data"].get("reason")
    s3_second, dir_second = second["data"]["objects"]
    h.psql("UPDATE items SET name = 'now' WHERE id > 15000", "shop")
    now = h.checksum()

    # over the existing database: the object under the first backup's SHA-256 is the second dump
    restore = RestoreBackup(
        restore_id="r-swapped",
        backup_id="b-first",
        team_id="team1",
        database_id="db1",
        origin=h.s3_destination(),
        key=s3_second["key"],
        sha256=s3_first["sha256"],
        compression="gzip",
        target=h.source("shop"),
        overwrite=True,
        confirm_overwrite=True,
    )
    await h.api.publish(restore)
    done = await h.outcome("evt.restore.", "restore_id", "r-swapped")
    assert done["type"] == "evt.restore.failed"
    assert done["data"]["reason"] == (
        f"the backup object's SHA-256 is {s3_second['sha256']}, the backup recorded {s3_first['sha256']}: "
        "nothing was written into database shop of " + h.container
    )
    assert h.checksum() == now  # untouched
    assert _lines(h, "r-swapped")[1].startswith("checking the SHA-256 of ")

    # the same from the directory copy (read by the worker from the control plane's disk)
    from_dir = restore.model_copy(update={"restore_id": "r-swapped-dir", "origin": directory, "key": dir_second["key"]})
    await h.api.publish(from_dir)
    done = await h.outcome("evt.restore.", "restore_id", "r-swapped-dir")
    assert done["type"] == "evt.restore.failed" and "nothing was written" in done["data"]["reason"]
    assert h.checksum() == now
    # a truncated object in the directory: refused too, nothing written
    Path(dir_first["key"]).write_bytes(Path(dir_first["key"]).read_bytes()[:-100])
    cut = from_dir.model_copy(update={"restore_id": "r-cut", "key": dir_first["key"]})
    await h.api.publish(cut)
    done = await h.outcome("evt.restore.", "restore_id", "r-cut")
    assert done["type"] == "evt.restore.failed" and "nothing was written" in done["data"]["reason"]
    assert h.checksum() == now

    # the right object over the existing database: checked, then restored
    good = restore.model_copy(update={"restore_id": "r-good", "key": s3_first["key"]})
    await h.api.publish(good)
    done = await h.outcome("evt.restore.", "restore_id", "r-good")
    assert done["type"] == "evt.restore.succeeded", done["data"].get("reason")
    assert "the backup object is the one recorded (SHA-256 matches)" in _lines(h, "r-good")
    assert h.checksum() != now

    # into a new database: the wrong object is found at the end; the new database is removed again
    new = restore.model_copy(
        update={"restore_id": "r-new", "target": h.source("shop_new"), "overwrite": False, "confirm_overwrite": False}
    )
    await h.api.publish(new)
    done = await h.outcome("evt.restore.", "restore_id", "r-new")
    assert done["type"] == "evt.restore.failed"
    assert f"the object's SHA-256 is {s3_second['sha256']}" in done["data"]["reason"], done["data"]["reason"]
    assert h.psql("SELECT count(*) FROM pg_database WHERE datname = 'shop_new'").strip() == "0"
    assert "the new database shop_new is removed again" in _lines(h, "r-new")
