"""Each engine's native consistent dump and its restore, as argv (pure): what runs inside the database's
container through the engine's exec, never through a shell.

- PostgreSQL: ``pg_dump -Fc`` of one database (custom format, restored by ``pg_restore`` from stdin), or
  ``pg_dumpall`` of every database with the roles (plain SQL, restored by ``psql``).
- MySQL / MariaDB: ``mysqldump`` / ``mariadb-dump --single-transaction`` (plain SQL, restored by the client).
- Redis: ``BGSAVE``, then a copy of the RDB file once ``LASTSAVE`` moved; restored by writing the file back
  and restarting the server without saving.
- MongoDB: ``mongodump --archive`` (restored by ``mongorestore --archive``).

Passwords never reach an argv (a process list shows it): they go in the exec's environment
(``PGPASSWORD``, ``MYSQL_PWD``, ``REDISCLI_AUTH``) or, for MongoDB, in a config document on stdin or in a
file removed afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from berth_common import codecs

ENGINES = ("postgresql", "mysql", "mariadb", "redis", "mongodb")
MONGO_CONFIG = "/tmp/berth-restore-mongo.yaml"  # noqa: S108 (inside the database container, removed after)


class UnsupportedEngine(ValueError):
    """The engine has no dump or restore Berth knows."""


@dataclass(frozen=True)
class Exec:
    """One command in the container: ``argv``, its environment (may hold a secret: never logged), and the
    bytes written to its stdin before the stream (a config document), if any."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict, repr=False)
    stdin: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class DumpPlan:
    """``stream``'s stdout is the dump; ``extension`` names its format truthfully (before the compression)."""

    stream: Exec
    extension: str


@dataclass(frozen=True)
class RestorePlan:
    """``prepare`` runs first (make the new database, write a config file), then ``stream`` reads the dump on
    its stdin, then ``finish`` (remove the config file, restart Redis); ``restart``: the container is
    restarted after ``finish``."""

    stream: Exec
    prepare: list[Exec] = field(default_factory=list)
    finish: list[Exec] = field(default_factory=list)
    restart: bool = False


def _pg_env(password: str) -> dict[str, str]:
    return {"PGPASSWORD": password} if password else {}


def _my_env(password: str) -> dict[str, str]:
    return {"MYSQL_PWD": password} if password else {}


def _tools(engine: str) -> tuple[str, str, str]:
    """(dump tool, client, admin tool) of MySQL or MariaDB."""
    if engine == "mariadb":
        return "mariadb-dump", "mariadb", "mariadb-admin"
    return "mysqldump", "mysql", "mysqladmin"


def dump_plan(
    engine: str, database: str | None, user: str, password: str, *, rdb_path: str = "/data/dump.rdb"
) -> DumpPlan:
    """The dump of ``database`` (None: every database) as ``user`` (Redis: the copy of ``rdb_path``, once
    :func:`redis_cli` ``BGSAVE`` finished)."""
    if engine == "postgresql":
        if database is None:
            return DumpPlan(Exec(["pg_dumpall", "--no-password", "-U", user], _pg_env(password)), "sql")
        return DumpPlan(
            Exec(["pg_dump", "-Fc", "--no-password", "-U", user, "-d", database], _pg_env(password)), "dump"
        )
    if engine in ("mysql", "mariadb"):
        tool = _tools(engine)[0]
        # one database by name alone: its dump has no CREATE DATABASE / USE, so it restores under any name
        which = ["--all-databases"] if database is None else [database]
        argv = [tool, "--single-transaction", "--routines", "--triggers", "--events", "-u", user, *which]
        return DumpPlan(Exec(argv, _my_env(password)), "sql")
    if engine == "redis":
        return DumpPlan(redis_copy(rdb_path), "rdb")
    if engine == "mongodb":
        which = [] if database is None else ["--db", database]
        argv = ["mongodump", "--archive", "--config", "/dev/stdin", "--username", user]
        argv += ["--authenticationDatabase", "admin", *which]
        return DumpPlan(Exec(argv, stdin=_mongo_config(password)), "archive")
    raise UnsupportedEngine(f"no dump for engine {engine!r} (known: {', '.join(ENGINES)})")


def _mongo_config(password: str) -> bytes:
    escaped = password.replace("\\", "\\\\").replace('"', '\\"')
    return f'password: "{escaped}"\n'.encode()


# --- Redis: BGSAVE, wait for LASTSAVE to move, then copy the RDB ---------------------------------


def redis_cli(password: str, *args: str) -> Exec:
    return Exec(["redis-cli", "--no-auth-warning", *args], {"REDISCLI_AUTH": password} if password else {})


def redis_rdb_path(config_dir: str, config_file: str) -> str:
    """The RDB file from ``CONFIG GET dir`` and ``CONFIG GET dbfilename`` answers (``name\\nvalue``)."""
    directory = config_dir.strip().splitlines()[-1].strip()
    name = config_file.strip().splitlines()[-1].strip()
    if not directory.startswith("/") or "/" in name or not name or ".." in name:
        raise ValueError(f"Redis reported an unusable RDB place: {directory!r} / {name!r}")
    return f"{directory.rstrip('/')}/{name}"


def redis_bgsave_state(info: str) -> str:
    """From ``INFO persistence``: ``running`` while a BGSAVE runs, then ``ok`` or ``err`` (its outcome)."""
    fields = dict(line.strip().split(":", 1) for line in info.splitlines() if ":" in line)
    if fields.get("rdb_bgsave_in_progress", "0") == "1":
        return "running"
    return "ok" if fields.get("rdb_last_bgsave_status", "ok") == "ok" else "err"


def redis_copy(path: str) -> Exec:
    return Exec(["cat", "--", path])


# --- restores ------------------------------------------------------------------------------------


def restore_plan(
    engine: str,
    database: str | None,
    user: str,
    password: str,
    *,
    overwrite: bool,
    rdb_path: str = "/data/dump.rdb",
    from_database: str | None = None,
) -> RestorePlan:
    """Restore a dump made by :func:`dump_plan` into ``database``: a new database (made first) unless
    ``overwrite`` (then its objects are replaced). ``from_database``: the database the dump was made of
    (MongoDB's archive names it: its collections are renamed into ``database``)."""
    if engine == "postgresql":
        env = _pg_env(password)
        if database is None:  # pg_dumpall's SQL: the roles and databases it names are made again
            return RestorePlan(
                Exec(["psql", "--no-password", "-X", "-q", "-U", user, "-d", "postgres", "-f", "-"], env)
            )
        argv = ["pg_restore", "--no-password", "--exit-on-error", "--no-owner", "-U", user, "-d", database]
        if overwrite:
            return RestorePlan(Exec([*argv, "--clean", "--if-exists"], env))
        return RestorePlan(Exec(argv, env), prepare=[Exec(["createdb", "--no-password", "-U", user, database], env)])
    if engine in ("mysql", "mariadb"):
        _, client, admin = _tools(engine)
        env = _my_env(password)
        if database is None:
            return RestorePlan(Exec([client, "-u", user], env))
        stream = Exec([client, "-u", user, database], env)
        if overwrite:
            return RestorePlan(stream)
        return RestorePlan(stream, prepare=[Exec([admin, "-u", user, "create", database], env)])
    if engine == "redis":
        write = Exec(["dd", f"of={rdb_path}", "bs=1M", "status=none"])
        return RestorePlan(write, finish=[redis_cli(password, "SHUTDOWN", "NOSAVE")], restart=True)
    if engine == "mongodb":
        argv = ["mongorestore", "--archive", "--config", MONGO_CONFIG, "--username", user]
        argv += ["--authenticationDatabase", "admin"]
        if overwrite:
            argv.append("--drop")
        if database is not None and from_database not in (None, database):
            argv += ["--nsFrom", f"{from_database}.*", "--nsTo", f"{database}.*"]
        elif database is not None:
            argv += ["--nsInclude", f"{database}.*"]
        config = Exec(["dd", f"of={MONGO_CONFIG}", "status=none"], stdin=_mongo_config(password))
        return RestorePlan(Exec(argv), prepare=[config], finish=[Exec(["rm", "-f", "--", MONGO_CONFIG])])
    raise UnsupportedEngine(f"no restore for engine {engine!r} (known: {', '.join(ENGINES)})")


def object_name(
    database_id: str, stamp: str, backup_id: str, extension: str, compression: str, encrypted: bool = False
) -> str:
    """``<database id>/<UTC stamp>-<backup id>.<format>.<gz|zst>[.enc]``: sorting by name sorts by time, and
    the name says the format, the compression and the encryption truthfully."""
    return f"{database_id}/{stamp}-{backup_id}.{extension}{codecs.suffix(compression, encrypted)}"
