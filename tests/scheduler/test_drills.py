"""Restore drills end to end: the real scheduler (a process, as deployed), a real S3 API (moto with signature
checks), a PostgreSQL container with known rows started here; the commands are published as the api would.

A backup made by ``cmd.backup.start`` is drilled: a row-count check passes with the counts found; a query
whose value does not match fails naming expected and found; an object whose SHA-256 is not the recorded
one fails; the scratch container is gone afterwards every time, and one a stopped scheduler left behind
is swept once its deadline passed. No secret in any event, log line or log.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from berth_common.catalogue import DrillBackup, QueryCheck, RowCount, RowCountCheck
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
from tests.support.images import TEST_LABEL, busybox_image, docker, postgres_image, remove_container
from tests.support.s3 import MotoS3

pytestmark = [pytest.mark.slow, pytest.mark.docker]


@pytest.fixture(scope="module")
def moto(tmp_root):
    """One S3 server for the file (each test has its own bucket)."""
    server = MotoS3(tmp_root / f"moto-drills-{uuid.uuid4().hex[:8]}.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def harness(module_nats_server, module_database, tmp_root, moto):
    """One scheduler process, PostgreSQL container and bucket for the file: a drill names its own ids, and the
    sweep test needs only the scheduler running."""
    try:
        postgres_image()
    except Exception as exc:  # no Debian mirror or no Docker here
        pytest.skip(f"no PostgreSQL image: {exc}")
    unique = uuid.uuid4().hex[:8]
    s3 = moto
    container = run_postgres(unique)  # starts while the scheduler's schema is made
    urls = await provision(module_database, "test-secret", ("scheduler",))
    wait_postgres(container)
    scheduler = SchedulerProcess(
        scheduler_env(module_nats_server.url, urls["scheduler"]), tmp_root / f"drills-{unique}.log"
    )
    h = Harness(
        module_nats_server.url,
        urls["scheduler"],
        s3,
        tmp_root,
        container,
        s3.make_bucket(f"drills-{unique}"),
        scheduler,
    )
    await h.start()
    fill(h)
    yield h
    await h.close()
    remove_container(container)


def drill_containers(drill_id: str) -> str:
    return docker("ps", "-a", "-q", "--filter", f"label=berth.drill={drill_id}")


async def drill(h: Harness, drill_id: str, obj: dict[str, Any], check: Any, **change: Any) -> dict[str, Any]:
    values = {
        "drill_id": drill_id,
        "team_id": "team1",
        "database_id": "db1",
        "backup_id": "b-drill",
        "origin": h.s3_destination(),
        "key": obj["key"],
        "sha256": obj["sha256"],
        "compression": "gzip",
        "database": "shop",
        "check": check,
    }
    cmd = DrillBackup(**{**values, **change})
    assert h.api is not None
    await h.api.publish(cmd)
    return await h.outcome("evt.backup.drill_", "drill_id", drill_id, timeout=120)


async def test_a_backup_is_drilled_checked_and_its_scratch_container_removed(harness: Harness) -> None:
    h = harness
    done = await h.backup("b-drill")
    assert done["type"] == "evt.backup.succeeded", done["data"].get("reason")
    (obj,) = done["data"]["objects"]
    h.psql("INSERT INTO items VALUES (20001, 'after the backup')", "shop")  # the drill sees the backup, not this

    counts = RowCountCheck(tables=[RowCount(table="items", at_least=20000), RowCount(table="public.items", at_least=1)])
    ok = await drill(h, "d-counts", obj, counts)
    assert ok["type"] == "evt.backup.drill_succeeded", ok["data"].get("reason")
    data = ok["data"]
    assert data["values"] == [
        {"name": "items", "expected": ">= 20000", "found": "20000"},
        {"name": "public.items", "expected": ">= 1", "found": "20000"},
    ]
    assert data["check"] == "row counts: items >= 20000, public.items >= 1"
    assert 0 < data["restore_s"] <= data["duration_s"]
    assert drill_containers("d-counts") == ""
    lines = [e["data"]["line"] for e in h.seen if e["_subject"] == "log.d-counts"]
    assert lines and lines[0].startswith("restoring team1/db1/"), lines

    # no object named (a schedule's drill): the newest verified backup of the database in the origin
    newest = {"backup_id": None, "key": None, "sha256": None, "compression": None}
    latest = await drill(h, "d-newest", obj, counts, **newest)
    assert latest["type"] == "evt.backup.drill_succeeded", latest["data"].get("reason")
    assert latest["data"]["backup_id"] == "b-drill"
    assert latest["data"]["values"][0] == {"name": "items", "expected": ">= 20000", "found": "20000"}
    none = await drill(h, "d-none", obj, counts, database_id="db-without-backups", **newest)
    assert none["type"] == "evt.backup.drill_failed"
    assert none["data"]["reason"] == (
        f"no verified backup of database db-without-backups in s3:{h.s3.endpoint}/{h.bucket} to drill"
    )
    assert none["data"]["backup_id"] == ""

    # a query whose value does not match: failed, naming what was expected and what was found
    query = QueryCheck(sql="SELECT name FROM items WHERE id = 1;", equals="not-the-name")
    bad = await drill(h, "d-query", obj, query)
    assert bad["type"] == "evt.backup.drill_failed"
    name_of_1 = h.psql("SELECT name FROM items WHERE id = 1", "shop")
    assert bad["data"]["reason"] == f"the check failed: the query's value: expected 'not-the-name', found '{name_of_1}'"
    assert bad["data"]["values"] == [{"name": "query", "expected": "= not-the-name", "found": name_of_1}]
    assert bad["data"]["restore_s"] > 0
    assert drill_containers("d-query") == ""
    # the user's statement runs read-only: a write is refused by the server
    write = QueryCheck(sql="DELETE FROM items RETURNING 1", at_least=0)
    refused = await drill(h, "d-write", obj, write)
    assert refused["type"] == "evt.backup.drill_failed"
    assert "read-only transaction" in refused["data"]["reason"], refused["data"]["reason"]

    # an object that is not the one recorded: the restore's SHA-256 check fails the drill
    corrupt = await drill(h, "d-sha", obj, counts, sha256="0" * 64)
    assert corrupt["type"] == "evt.backup.drill_failed"
    assert "SHA-256" in corrupt["data"]["reason"] and "0" * 64 in corrupt["data"]["reason"], corrupt["data"]
    assert corrupt["data"]["restore_s"] is None
    assert drill_containers("d-sha") == ""

    # nothing of the scratch databases' passwords or the S3 secret in events, log lines or the log
    log = h.scheduler.log_path.read_bytes()
    for needle in (h.s3.secret_key.encode(), PG_PASSWORD.encode(), b"POSTGRES_PASSWORD", b"PGPASSWORD="):
        assert not any(needle in raw for raw in h.raw), needle
        assert needle not in log, needle


async def test_a_drill_container_left_behind_is_swept_after_its_deadline(harness: Harness) -> None:
    assert harness.scheduler.proc is not None  # the scheduler's sweep runs every second here
    labels = ["berth.managed=true", "berth.kind=drill", "berth.drill=d-left", TEST_LABEL]
    args = [a for lab in labels for a in ("--label", lab)]
    # created, not run: the sweep (every second) may remove it at any moment, even before a start
    past = docker("create", *args, "--label", "berth.drill-deadline=1", busybox_image(), "sleep", "600")
    future = str(int(time.time()) + 3600)
    kept = docker("run", "-d", *args, "--label", f"berth.drill-deadline={future}", busybox_image(), "sleep", "600")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and past[:12] in docker("ps", "-a", "-q", "--no-trunc"):
            await asyncio.sleep(0.5)
        running = docker("ps", "-a", "-q", "--no-trunc")
        assert past not in running, "the expired drill container was not swept"
        assert kept in running, "a drill container before its deadline was removed"
    finally:
        remove_container(past)
        remove_container(kept)
