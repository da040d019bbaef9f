"""Restore drills of MariaDB and Redis backups: the scratch containers and the checks as exact data (argv,
environment, what the output means), then end to end with the real scheduler (a process), a real S3 API
(moto) and MariaDB and Redis containers from the local images: a backup made by ``cmd.backup.start`` is
drilled, the check passes with the values found or fails naming them, a write is refused, and the scratch
container is gone afterwards every time. No password in any event or log.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import ValidationError

from berth_common.catalogue import (
    BackupSource,
    DirectoryDestination,
    DrillBackup,
    DrillValue,
    KeyCheck,
    QueryCheck,
    RowCount,
    RowCountCheck,
    check_fits,
)
from berth_common.dbengines import mysql_native_hash
from berth_scheduler.domain import drills as dom
from tests.scheduler.backup_support import Harness
from tests.scheduler.test_backup_engines import _harness, _until
from tests.support.images import TEST_LABEL, docker, mariadb_image, redis_image, remove_container
from tests.support.s3 import MotoS3

PASSWORD = "scratch-pw-never-in-argv"
ROOT_PW = "mariadb-root-pw-never-shown-7c1"
REDIS_PW = "redis-pw-never-shown-e42"


def _drill(**change: Any) -> DrillBackup:
    values = {
        "drill_id": "d1",
        "team_id": "team1",
        "database_id": "db1",
        "origin": DirectoryDestination(path="/var/backups"),
        "engine": "mariadb",
        "database": "shop",
        "check": RowCountCheck(tables=[RowCount(table="items", at_least=5)]),
        **change,
    }
    return DrillBackup(**values)


# --- as data ---------------------------------------------------------------------------------------------


def test_the_engines_drills_run_for_and_the_checks_each_takes() -> None:
    assert check_fits("postgresql", "row_counts") is None and check_fits("mariadb", "query") is None
    assert check_fits("redis", "keys") is None
    assert check_fits("mysql", "row_counts") == "drills run for postgresql, mariadb, redis, not mysql"
    assert check_fits("redis", "query") == "a redis backup is checked with keys, not query"
    assert check_fits("mariadb", "keys") == "a mariadb backup is checked with row_counts or query, not keys"
    with pytest.raises(ValidationError, match="'postgresql', 'mariadb' or 'redis'"):
        DrillBackup.model_validate({**_drill().model_dump(), "engine": "mongodb"})
    with pytest.raises(ValidationError, match="checked with keys"):
        _drill(engine="redis")
    with pytest.raises(ValidationError, match="give at_least"):
        KeyCheck()
    with pytest.raises(ValidationError, match="pattern"):
        KeyCheck(exist=["bad\nkey"])
    assert KeyCheck(exist=["user:1", "-x with spaces"]).exist == ["user:1", "-x with spaces"]


def test_the_scratch_containers_of_mariadb_and_redis() -> None:
    maria = dom.scratch(_drill(), "berth/mariadb:10.11-bookworm", PASSWORD, 1000.2)
    assert maria.body["Env"] == [f"MARIADB_ROOT_PASSWORD={PASSWORD}"] and "Cmd" not in maria.body
    assert maria.body["HostConfig"]["NetworkMode"] == "none" and maria.body["Labels"]["berth.kind"] == "drill"
    redis = dom.scratch(
        _drill(engine="redis", database="0", check=KeyCheck(at_least=1)), "berth/redis:7-bookworm", PASSWORD, 5.0
    )
    assert redis.body["Cmd"] == ["redis-server", "--requirepass", PASSWORD, "--appendonly", "no"]
    assert "Env" not in redis.body and redis.body["Labels"]["berth.drill-deadline"] == "5"
    assert PASSWORD not in repr(maria) + repr(redis)
    ready = dom.readiness("mariadb", PASSWORD)
    assert ready.argv == ("mariadb-admin", "ping", "--silent", "-h", "127.0.0.1", "-P", "3306", "-u", "root")
    assert ready.env == (("MYSQL_PWD", PASSWORD),)
    ready = dom.readiness("redis", PASSWORD)
    assert ready.argv == ("redis-cli", "-h", "127.0.0.1", "-p", "6379", "ping") and ready.expect == "PONG"
    assert ready.env == (("REDISCLI_AUTH", PASSWORD),)


def test_the_mariadb_check_reads_only_as_a_user_that_may_only_read() -> None:
    check = RowCountCheck(tables=[RowCount(table="items", at_least=5), RowCount(table="shop.orders")])
    plan = dom.check_plan(check, "mariadb", "shop", PASSWORD)
    (reader,) = plan.prepare
    hashed = mysql_native_hash(PASSWORD)
    assert reader.argv == [
        "mariadb",
        "--binary-mode",
        "-u",
        "root",
        "-e",
        f"CREATE OR REPLACE USER 'berth_check'@'%' IDENTIFIED BY PASSWORD '{hashed}'; "
        "GRANT SELECT, SHOW VIEW ON *.* TO 'berth_check'@'%'",
    ]
    assert reader.env == {"MYSQL_PWD": PASSWORD}
    (ex,) = plan.checks
    assert ex.argv == [
        "mariadb",
        "--binary-mode",
        "--batch",
        "--skip-column-names",
        "-h",
        "127.0.0.1",
        "-u",
        "berth_check",
        "-D",
        "shop",
        "-e",
        "SET SESSION max_statement_time = 300; SET SESSION TRANSACTION READ ONLY; START TRANSACTION READ ONLY; "
        "SELECT (SELECT count(*) FROM `items`), (SELECT count(*) FROM `shop`.`orders`); ROLLBACK",
    ]
    assert ex.env == {"MYSQL_PWD": PASSWORD}
    assert all(PASSWORD not in " ".join(e.argv) for e in [*plan.prepare, *plan.checks])
    assert dom.evaluate_all(check, "mariadb", ["20\t3\n"]) == [
        DrillValue(name="items", expected=">= 5", found="20"),
        DrillValue(name="shop.orders", expected=">= 1", found="3"),
    ]
    with pytest.raises(dom.CheckFailed, match="items: expected at least 5 rows, found 2"):
        dom.evaluate_all(check, "mariadb", ["2\t3\n"])
    query = QueryCheck(sql="SELECT name FROM items\n  DELIMITER $$", equals="x")
    with pytest.raises(dom.CheckFailed, match="DELIMITER"):
        dom.check_plan(query, "mariadb", "shop", PASSWORD)
    one = QueryCheck(sql="SELECT COUNT(*) FROM items", equals="20")
    assert dom.evaluate_all(one, "mariadb", ["20\n"]) == [DrillValue(name="query", expected="= 20", found="20")]
    with pytest.raises(dom.CheckFailed, match="more than one column"):
        dom.evaluate_all(one, "mariadb", ["20\t1\n"])


def test_the_redis_check_counts_keys_and_asks_for_each_key() -> None:
    check = KeyCheck(at_least=100, exist=["user:1", "-x y"])
    plan = dom.check_plan(check, "redis", "0", PASSWORD)
    assert plan.prepare == []
    assert [e.argv for e in plan.checks] == [
        ["redis-cli", "--no-auth-warning", "-n", "0", "DBSIZE"],
        ["redis-cli", "--no-auth-warning", "-n", "0", "EXISTS", "user:1"],
        ["redis-cli", "--no-auth-warning", "-n", "0", "EXISTS", "-x y"],
    ]
    assert all(e.env == {"REDISCLI_AUTH": PASSWORD} for e in plan.checks)
    assert dom.evaluate_all(check, "redis", ["101\n", "1\n", "1\n"]) == [
        DrillValue(name="keys", expected=">= 100", found="101"),
        DrillValue(name="key user:1", expected="exists", found="exists"),
        DrillValue(name="key -x y", expected="exists", found="exists"),
    ]
    with pytest.raises(dom.CheckFailed, match=r"expected at least 100 keys, found 7; key '-x y' is missing") as err:
        dom.evaluate_all(check, "redis", ["7\n", "1\n", "0\n"])
    assert err.value.values[2] == DrillValue(name="key -x y", expected="exists", found="missing")
    assert [e.argv[-1] for e in dom.check_plan(KeyCheck(exist=["a"]), "redis", "2", "").checks] == ["a"]
    assert dom.describe(check) == "keys >= 100, key 'user:1' exists, key '-x y' exists"


# --- end to end -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto(tmp_root):
    server = MotoS3(tmp_root / f"moto-drill-engines-{uuid.uuid4().hex[:8]}.log").start()
    yield server
    server.stop()


async def _drill_of(h: Harness, drill_id: str, obj: dict[str, Any], engine: str, database: str, check: Any) -> dict:
    cmd = DrillBackup(
        drill_id=drill_id,
        team_id="team1",
        database_id="db1",
        backup_id=f"b-{engine}",
        origin=h.s3_destination(),
        key=obj["key"],
        sha256=obj["sha256"],
        compression="gzip",
        engine=engine,
        database=database,
        check=check,
    )
    assert h.api is not None
    await h.api.publish(cmd)
    return await h.outcome("evt.backup.drill_", "drill_id", drill_id, timeout=180)


def _no_scratch(drill_id: str) -> bool:
    return docker("ps", "-a", "-q", "--filter", f"label=berth.drill={drill_id}") == ""


def _no_secret(h: Harness, *secrets: str) -> None:
    text = "".join(raw.decode(errors="replace") for raw in h.raw) + h.scheduler.log_path.read_text()
    assert all(s not in text for s in secrets)


@pytest.mark.slow
@pytest.mark.docker
async def test_a_mariadb_backup_is_drilled_with_row_counts_and_a_query(
    nats_server, database, tmp_root, unique, moto
) -> None:
    name = f"berth-test-mariadb-drill-{unique}"
    docker(
        "run", "-d", "--name", name, "--label", TEST_LABEL, "-e", f"MARIADB_ROOT_PASSWORD={ROOT_PW}", mariadb_image()
    )

    def sql(query: str, db: str = "") -> str:
        argv = ["exec", "-e", f"MYSQL_PWD={ROOT_PW}", name, "mariadb", "-h", "127.0.0.1", "-uroot", "-N", "-B"]
        return docker(*argv, *([db] if db else []), "-e", query)

    try:
        _until(lambda: sql("SELECT 1") == "1", "mariadb did not start")
        sql("CREATE DATABASE shop")
        sql("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL)", "shop")
        sql("INSERT INTO items SELECT seq, MD5(seq) FROM seq_1_to_250", "shop")
        h = await _harness(nats_server, database, tmp_root, unique, moto, name)
        try:
            source = BackupSource(container=name, engine="mariadb", database="shop", user="root", password=ROOT_PW)
            done = await h.backup("b-mariadb", source=source)
            assert done["type"] == "evt.backup.succeeded", done["data"].get("reason")
            (obj,) = done["data"]["objects"]
            sql("INSERT INTO items VALUES (251, 'after the backup')", "shop")

            counts = RowCountCheck(tables=[RowCount(table="items", at_least=250), RowCount(table="shop.items")])
            ok = await _drill_of(h, "d-maria-counts", obj, "mariadb", "shop", counts)
            assert ok["type"] == "evt.backup.drill_succeeded", ok["data"].get("reason")
            assert ok["data"]["values"] == [
                {"name": "items", "expected": ">= 250", "found": "250"},
                {"name": "shop.items", "expected": ">= 1", "found": "250"},
            ]
            assert 0 < ok["data"]["restore_s"] <= ok["data"]["duration_s"]
            assert _no_scratch("d-maria-counts")

            query = QueryCheck(sql="SELECT name FROM items WHERE id = 1", equals="c4ca4238a0b923820dcc509a6f75849b")
            same = await _drill_of(h, "d-maria-query", obj, "mariadb", "shop", query)
            assert same["type"] == "evt.backup.drill_succeeded", same["data"].get("reason")
            assert same["data"]["values"][0]["found"] == "c4ca4238a0b923820dcc509a6f75849b"

            write = QueryCheck(sql="DELETE FROM items", at_least=0)
            refused = await _drill_of(h, "d-maria-write", obj, "mariadb", "shop", write)
            assert refused["type"] == "evt.backup.drill_failed"
            reason = refused["data"]["reason"]
            assert reason.startswith("the check could not run: mariadb exited with code 1"), reason
            assert "denied" in reason or "READ ONLY" in reason, reason
            assert _no_scratch("d-maria-query") and _no_scratch("d-maria-write")
            _no_secret(h, ROOT_PW)
        finally:
            await h.close()
    finally:
        remove_container(name)


@pytest.mark.slow
@pytest.mark.docker
async def test_a_redis_backup_is_drilled_with_its_key_count_and_named_keys(
    nats_server, database, tmp_root, unique, moto
) -> None:
    name = f"berth-test-redis-drill-{unique}"
    docker("run", "-d", "--name", name, "--label", TEST_LABEL, redis_image(), "redis-server", "--requirepass", REDIS_PW)

    def cli(*argv: str) -> str:
        return docker("exec", "-e", f"REDISCLI_AUTH={REDIS_PW}", name, "redis-cli", "--no-auth-warning", *argv)

    try:
        _until(lambda: cli("PING") == "PONG", "redis did not start")
        assert cli("EVAL", "for i = 1, 300 do redis.call('SET', 'k' .. i, i) end return 1", "0") == "1"
        assert cli("SET", "-odd key", "x") == "OK"
        h = await _harness(nats_server, database, tmp_root, unique, moto, name)
        try:
            source = BackupSource(container=name, engine="redis", user="default", password=REDIS_PW)
            done = await h.backup("b-redis", source=source)
            assert done["type"] == "evt.backup.succeeded", done["data"].get("reason")
            (obj,) = done["data"]["objects"]
            cli("FLUSHALL")  # the drill reads the backup, not the server

            keys = KeyCheck(at_least=301, exist=["k1", "-odd key"])
            ok = await _drill_of(h, "d-redis-keys", obj, "redis", "0", keys)
            assert ok["type"] == "evt.backup.drill_succeeded", ok["data"].get("reason")
            assert ok["data"]["values"] == [
                {"name": "keys", "expected": ">= 301", "found": "301"},
                {"name": "key k1", "expected": "exists", "found": "exists"},
                {"name": "key -odd key", "expected": "exists", "found": "exists"},
            ]
            assert ok["data"]["restore_s"] > 0 and _no_scratch("d-redis-keys")

            missing = await _drill_of(h, "d-redis-missing", obj, "redis", "0", KeyCheck(at_least=500, exist=["nope"]))
            assert missing["type"] == "evt.backup.drill_failed"
            assert missing["data"]["reason"] == (
                "the check failed: expected at least 500 keys, found 301; key 'nope' is missing"
            )
            assert missing["data"]["values"][1] == {"name": "key nope", "expected": "exists", "found": "missing"}
            assert _no_scratch("d-redis-missing")
            _no_secret(h, REDIS_PW)
        finally:
            await h.close()
    finally:
        remove_container(name)
