"""Backups of the other engines Berth runs here, end to end: MariaDB (``mariadb-dump --single-transaction``,
restored by the client into a new database) and Redis (``BGSAVE``, then the RDB copied; restored by writing
the RDB back and restarting the server). The real scheduler (a process), a real S3 API (moto with signature
checks), containers of the local images started here: known data written, backed up, destroyed, restored,
and the same checksum read back. The commands are published as the api would."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from berth_common.catalogue import BackupSource, RestoreBackup
from berth_common.db.provision import provision
from tests.scheduler.backup_support import Harness, SchedulerProcess, scheduler_env
from tests.support.images import TEST_LABEL, docker, mariadb_image, redis_image, remove_container
from tests.support.s3 import MotoS3

pytestmark = [pytest.mark.slow, pytest.mark.docker]
ROOT_PW = "mariadb-root-pw-never-shown-5d2"
REDIS_PW = "redis-pw-never-shown-a19"
ROWS = 5000


@pytest.fixture(scope="module")
def moto(tmp_root):
    server = MotoS3(tmp_root / f"moto-engines-{uuid.uuid4().hex[:8]}.log").start()
    yield server
    server.stop()


def _until(check: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except RuntimeError:
            pass
        time.sleep(0.3)
    raise TimeoutError(what)


async def _harness(nats_server, database, tmp_root, unique, moto, container: str) -> Harness:
    urls = await provision(database, "test-secret", ("scheduler",))
    scheduler = SchedulerProcess(scheduler_env(nats_server.url, urls["scheduler"]), tmp_root / f"sched-{unique}.log")
    bucket = moto.make_bucket(f"engines-{unique}")
    return await Harness(nats_server.url, urls["scheduler"], moto, tmp_root, container, bucket, scheduler).start()


async def _round_trip(
    h: Harness, source: BackupSource, checksum: Callable[[], str], destroy: Callable[[], None]
) -> None:
    before = checksum()
    done = await h.backup(f"b-{source.engine}", source=source)
    assert done["type"] == "evt.backup.succeeded", done["data"].get("reason")
    (obj,) = done["data"]["objects"]
    assert obj["size"] > 0 and h.s3.uploads(h.bucket) == []
    destroy()
    try:
        assert checksum() != before
    except RuntimeError:  # the database is gone altogether
        pass
    restore = RestoreBackup(
        restore_id=f"r-{source.engine}",
        backup_id=f"b-{source.engine}",
        team_id="team1",
        database_id="db1",
        origin=h.s3_destination(),
        key=obj["key"],
        sha256=obj["sha256"],
        compression=done["data"]["compression"],
        target=source,
        overwrite=source.engine == "redis",  # a Redis server has one dataset: restored over it, confirmed
        confirm_overwrite=source.engine == "redis",
    )
    assert h.api is not None
    await h.api.publish(restore)
    answer = await h.outcome("evt.restore.", "restore_id", restore.restore_id, timeout=120)
    assert answer["type"] == "evt.restore.succeeded", answer["data"].get("reason")
    _until(lambda: checksum() == before, f"{source.engine}: the restored data differs: {checksum()} != {before}")
    text = "".join(raw.decode(errors="replace") for raw in h.raw) + h.scheduler.log_path.read_text()
    assert ROOT_PW not in text and REDIS_PW not in text


async def test_a_mariadb_database_is_backed_up_and_restored_with_the_same_rows(
    nats_server, database, tmp_root, unique, moto
) -> None:
    name = f"berth-test-mariadb-{unique}"
    docker(
        "run", "-d", "--name", name, "--label", TEST_LABEL, "-e", f"MARIADB_ROOT_PASSWORD={ROOT_PW}", mariadb_image()
    )

    def sql(query: str, db: str = "") -> str:
        # over TCP: the entry point's first server (making the root account) listens on its socket only
        argv = ["exec", "-e", f"MYSQL_PWD={ROOT_PW}", name, "mariadb", "-h", "127.0.0.1", "-uroot", "-N", "-B"]
        argv += [db] if db else []
        return docker(*argv, "-e", query)

    try:
        _until(lambda: sql("SELECT 1") == "1", "mariadb did not start")
        sql("CREATE DATABASE shop")
        sql("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL)", "shop")
        sql(f"INSERT INTO items SELECT seq, MD5(seq) FROM seq_1_to_{ROWS}", "shop")

        def checksum() -> str:
            return sql(
                "SET SESSION group_concat_max_len = 100000000; "
                "SELECT CONCAT(COUNT(*), ':', MD5(GROUP_CONCAT(id, '=', name ORDER BY id))) FROM items",
                "shop",
            )

        assert checksum().startswith(f"{ROWS}:")
        h = await _harness(nats_server, database, tmp_root, unique, moto, name)
        try:
            source = BackupSource(container=name, engine="mariadb", database="shop", user="root", password=ROOT_PW)
            await _round_trip(h, source, checksum, lambda: sql("DROP DATABASE shop"))
        finally:
            await h.close()
    finally:
        remove_container(name)


async def test_a_redis_dataset_is_backed_up_and_restored_with_the_same_keys(
    nats_server, database, tmp_root, unique, moto
) -> None:
    name = f"berth-test-redis-{unique}"
    docker("run", "-d", "--name", name, "--label", TEST_LABEL, redis_image(), "redis-server", "--requirepass", REDIS_PW)

    def cli(*argv: str) -> str:
        return docker("exec", "-e", f"REDISCLI_AUTH={REDIS_PW}", name, "redis-cli", "--no-auth-warning", *argv)

    try:
        _until(lambda: cli("PING") == "PONG", "redis did not start")
        fill = f"for i = 1, {ROWS} do redis.call('SET', 'k' .. i, 'v' .. i * 7) end return 1"
        assert cli("EVAL", fill, "0") == "1"
        digest = (
            f"local t = {{}} for i = 1, {ROWS} do t[#t + 1] = redis.call('GET', 'k' .. i) or '-' end "
            "return redis.sha1hex(table.concat(t, ','))"
        )

        def checksum() -> str:
            return cli("DBSIZE") + ":" + cli("EVAL", digest, "0")

        assert checksum().startswith(f"{ROWS}:")
        h = await _harness(nats_server, database, tmp_root, unique, moto, name)
        try:
            source = BackupSource(container=name, engine="redis", user="default", password=REDIS_PW)
            await _round_trip(h, source, checksum, lambda: cli("FLUSHALL"))
        finally:
            await h.close()
    finally:
        remove_container(name)
