"""Each engine's dump and restore as exact argv (pure): five engines, one database or all, new database or
over the existing one; no password in any argv."""

from __future__ import annotations

import pytest

from berth_scheduler.domain.dumps import (
    MONGO_CONFIG,
    Exec,
    UnsupportedEngine,
    dump_plan,
    object_name,
    redis_bgsave_state,
    redis_cli,
    redis_rdb_path,
    restore_plan,
)

PW = "s3cr3t-pw"


def test_postgresql_dumps() -> None:
    one = dump_plan("postgresql", "shop", "app", PW)
    assert (one.stream, one.extension) == (
        Exec(["pg_dump", "-Fc", "--no-password", "-U", "app", "-d", "shop"], {"PGPASSWORD": PW}),
        "dump",
    )
    every = dump_plan("postgresql", None, "postgres", PW)
    assert (every.stream, every.extension) == (
        Exec(["pg_dumpall", "--no-password", "-U", "postgres"], {"PGPASSWORD": PW}),
        "sql",
    )


def test_postgresql_restores() -> None:
    env = {"PGPASSWORD": PW}
    restore = ["pg_restore", "--no-password", "--exit-on-error", "--no-owner", "-U", "app", "-d", "shop2"]
    new = restore_plan("postgresql", "shop2", "app", PW, overwrite=False)
    assert new.prepare == [Exec(["createdb", "--no-password", "-U", "app", "shop2"], env)]
    assert new.stream == Exec(restore, env)
    assert (new.finish, new.restart) == ([], False)
    over = restore_plan("postgresql", "shop2", "app", PW, overwrite=True)
    assert (over.prepare, over.stream) == ([], Exec([*restore, "--clean", "--if-exists"], env))
    every = restore_plan("postgresql", None, "postgres", PW, overwrite=True)
    assert every.stream == Exec(
        ["psql", "--no-password", "-X", "-q", "-U", "postgres", "-d", "postgres", "-f", "-"], env
    )


@pytest.mark.parametrize(
    ("engine", "dump", "client", "admin"),
    [("mysql", "mysqldump", "mysql", "mysqladmin"), ("mariadb", "mariadb-dump", "mariadb", "mariadb-admin")],
)
def test_mysql_and_mariadb(engine: str, dump: str, client: str, admin: str) -> None:
    env = {"MYSQL_PWD": PW}
    common = [dump, "--single-transaction", "--routines", "--triggers", "--events", "-u", "root"]
    assert dump_plan(engine, "shop", "root", PW).stream == Exec([*common, "shop"], env)
    assert dump_plan(engine, None, "root", PW).stream == Exec([*common, "--all-databases"], env)
    assert dump_plan(engine, "shop", "root", PW).extension == "sql"
    new = restore_plan(engine, "shop2", "root", PW, overwrite=False)
    assert new.prepare == [Exec([admin, "-u", "root", "create", "shop2"], env)]
    assert new.stream == Exec([client, "-u", "root", "shop2"], env)
    over = restore_plan(engine, "shop", "root", PW, overwrite=True)
    assert (over.prepare, over.stream) == ([], Exec([client, "-u", "root", "shop"], env))
    assert restore_plan(engine, None, "root", PW, overwrite=True).stream == Exec([client, "-u", "root"], env)


def test_redis_bgsave_then_copy_and_restore() -> None:
    assert redis_cli(PW, "BGSAVE") == Exec(["redis-cli", "--no-auth-warning", "BGSAVE"], {"REDISCLI_AUTH": PW})
    assert redis_cli("", "LASTSAVE") == Exec(["redis-cli", "--no-auth-warning", "LASTSAVE"], {})
    path = redis_rdb_path("dir\n/var/lib/redis\n", "dbfilename\ndump.rdb\n")
    assert path == "/var/lib/redis/dump.rdb"
    plan = dump_plan("redis", None, "default", PW, rdb_path=path)
    assert (plan.stream, plan.extension) == (Exec(["cat", "--", "/var/lib/redis/dump.rdb"]), "rdb")
    restore = restore_plan("redis", None, "default", PW, overwrite=True, rdb_path=path)
    assert restore.stream == Exec(["dd", "of=/var/lib/redis/dump.rdb", "bs=1M", "status=none"])
    assert restore.finish == [Exec(["redis-cli", "--no-auth-warning", "SHUTDOWN", "NOSAVE"], {"REDISCLI_AUTH": PW})]
    assert restore.restart is True
    with pytest.raises(ValueError):
        redis_rdb_path("dir\nrelative\n", "dbfilename\ndump.rdb\n")
    with pytest.raises(ValueError):
        redis_rdb_path("dir\n/data\n", "dbfilename\n../etc/passwd\n")


def test_mongodb_archive_with_the_password_on_stdin_or_in_a_removed_file() -> None:
    config = b'password: "s3cr3t-pw"\n'
    plan = dump_plan("mongodb", "shop", "root", PW)
    assert plan.stream == Exec(
        [
            *("mongodump", "--archive", "--config", "/dev/stdin", "--username", "root"),
            *("--authenticationDatabase", "admin", "--db", "shop"),
        ],
        stdin=config,
    )
    assert plan.stream.stdin == config and plan.extension == "archive"
    assert dump_plan("mongodb", None, "root", PW).stream.argv[-2:] == ["--authenticationDatabase", "admin"]
    new = restore_plan("mongodb", "shop", "root", PW, overwrite=False)
    assert new.prepare == [Exec(["dd", f"of={MONGO_CONFIG}", "status=none"], stdin=config)]
    assert new.prepare[0].stdin == config
    assert new.stream == Exec(
        [
            *("mongorestore", "--archive", "--config", MONGO_CONFIG, "--username", "root"),
            *("--authenticationDatabase", "admin", "--nsInclude", "shop.*"),
        ]
    )
    assert new.finish == [Exec(["rm", "-f", "--", MONGO_CONFIG])]
    over = restore_plan("mongodb", None, "root", PW, overwrite=True)
    assert over.stream.argv[-1] == "--drop"
    renamed = restore_plan("mongodb", "shop2", "root", PW, overwrite=False, from_database="shop")
    assert renamed.stream.argv[-4:] == ["--nsFrom", "shop.*", "--nsTo", "shop2.*"]


def test_no_password_in_an_argv_or_a_repr() -> None:
    for engine in ("postgresql", "mysql", "mariadb", "redis", "mongodb"):
        for database in ("shop", None):
            dump = dump_plan(engine, database, "root", PW)
            plans = [dump.stream]
            for overwrite in (False, True):
                r = restore_plan(engine, database, "root", PW, overwrite=overwrite)
                plans += [*r.prepare, r.stream, *r.finish]
            for e in plans:
                assert PW not in " ".join(e.argv) and PW not in repr(e), (engine, e.argv)


def test_unknown_engine_and_object_names() -> None:
    with pytest.raises(UnsupportedEngine):
        dump_plan("oracle", "x", "u", "")
    with pytest.raises(UnsupportedEngine):
        restore_plan("oracle", "x", "u", "", overwrite=False)
    assert object_name("db1", "20261205T030000Z", "b1", "dump", "gzip") == "db1/20261205T030000Z-b1.dump.gz"
    assert object_name("db1", "20261205T030000Z", "b1", "sql", "zstd") == "db1/20261205T030000Z-b1.sql.zst"


def test_redis_bgsave_state_from_info_persistence() -> None:
    info = "# Persistence\r\nloading:0\r\nrdb_bgsave_in_progress:{}\r\nrdb_last_bgsave_status:{}\r\n"
    assert redis_bgsave_state(info.format(1, "ok")) == "running"
    assert redis_bgsave_state(info.format(0, "ok")) == "ok"
    assert redis_bgsave_state(info.format(0, "err")) == "err"
