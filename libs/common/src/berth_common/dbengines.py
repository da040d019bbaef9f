"""The database engines Berth runs as one-click databases, as exact data (pure; the api and the scheduler
share it).

For each engine (``postgresql``, ``mysql``, ``mariadb``, ``redis``, ``mongodb``): the versions offered and
the official image of each (the image map sends the ones made locally to ``berth/...`` images), the port,
the data directory the database's volume is mounted on, how generated credentials become the container's
environment and arguments (the official images' contracts), the connection URL an application is given,
the readiness check and the password change, each an argv run through the engine's exec API with the
secrets it needs in the exec's environment where the tool reads them from there.

Minor-version upgrades (:func:`check_upgrade`) stay on one major line: an engine's line is the first
``major_parts`` components of a version (PostgreSQL ``15`` of ``15.9``, MariaDB ``10.11`` of ``10.11.9``,
Redis ``7`` of ``7.4``), whose data files the newer minor version reads as they are; a major change needs
a dump and a restore. Besides the versions offered at creation an engine knows the pinned minor tags of
its lines (``minors``), which a database may be upgraded to.

A database's container and the host name applications reach it by are both ``berth-db-<database id>``
(:func:`container_name`); on ``local`` it joins the team's network (:func:`team_network`), which linked
applications join too; on another server it joins that server's Berth network, where the applications
placed there run.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from berth_common.redaction import MASK

EngineName = Literal["postgresql", "mysql", "mariadb", "redis", "mongodb"]
ENGINE_NAMES: Final[tuple[EngineName, ...]] = ("postgresql", "mysql", "mariadb", "redis", "mongodb")

CONTAINER_PREFIX: Final = "berth-db-"
TEAM_NETWORK_PREFIX: Final = "berth-team-"
_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_VALUE_RE = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._+/,:-]{0,127}|-?[0-9]+)$")
_SCRAM_ITERATIONS: Final = 4096


class ConfigError(ValueError):
    """A custom configuration parameter is not allowed or its value is not valid; ``name`` is the parameter."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass(frozen=True)
class Engine:
    """One engine: what the api offers and what the scheduler runs."""

    name: EngineName
    title: str
    repository: str  # the official image's repository; a version is its tag
    versions: tuple[str, ...]  # offered, newest first
    default_version: str
    port: int
    data_dir: str  # where the database's volume is mounted
    scheme: str  # of the connection URL
    variable: str  # the application variable a link sets by default
    config_names: re.Pattern[str] = field(compare=False)  # allow-listed custom configuration parameters
    major_parts: int = 1  # how many leading components of a version name its major line
    minors: tuple[str, ...] = ()  # pinned minor tags a database may be upgraded to (newest first)

    def image(self, version: str) -> str:
        """The official image of ``version`` (``postgres:15``); ValueError if the version is not offered."""
        if version not in self.versions and version not in self.minors:
            raise ValueError(f"{self.title} {version!r} is not offered; choose one of {', '.join(self.versions)}")
        return f"{self.repository}:{version}"

    def line(self, version: str) -> str:
        """The major line of ``version``: ``15`` of ``15.9`` (PostgreSQL), ``10.11`` of ``10.11.9`` (MariaDB)."""
        return ".".join(version.split(".")[: self.major_parts])

    def upgrades(self, version: str) -> tuple[str, ...]:
        """The versions of ``version``'s line a database running it may move to (itself excluded)."""
        line = self.line(version)
        return tuple(v for v in (*self.versions, *self.minors) if v != version and self.line(v) == line)


_PG_CONFIG = re.compile(
    r"^(max_connections|shared_buffers|work_mem|maintenance_work_mem|effective_cache_size|temp_buffers"
    r"|random_page_cost|seq_page_cost|effective_io_concurrency|default_statistics_target|max_wal_size"
    r"|min_wal_size|checkpoint_timeout|checkpoint_completion_target|wal_buffers|synchronous_commit"
    r"|statement_timeout|lock_timeout|idle_in_transaction_session_timeout|log_min_duration_statement"
    r"|log_statement|timezone|jit|huge_pages|track_io_timing|max_worker_processes|max_parallel_workers"
    r"|max_parallel_workers_per_gather|max_parallel_maintenance_workers|autovacuum|autovacuum_[a-z_]{1,40})$"
)
_MY_CONFIG = re.compile(
    r"^(max_connections|innodb_buffer_pool_size|innodb_log_file_size|innodb_flush_log_at_trx_commit"
    r"|max_allowed_packet|character_set_server|collation_server|wait_timeout|interactive_timeout"
    r"|long_query_time|slow_query_log|sql_mode|tmp_table_size|max_heap_table_size|table_open_cache"
    r"|thread_cache_size|default_time_zone|lower_case_table_names)$"
)
_REDIS_CONFIG = re.compile(
    r"^(maxmemory|maxmemory-policy|maxmemory-samples|appendonly|appendfsync|timeout|tcp-keepalive"
    r"|databases|hz|notify-keyspace-events|lazyfree-lazy-eviction|maxclients)$"
)
_MONGO_CONFIG = re.compile(r"^(wiredTigerCacheSizeGB|oplogSize|slowms)$")

ENGINES: Final[dict[str, Engine]] = {
    "postgresql": Engine(
        "postgresql", "PostgreSQL", "postgres", ("17", "16", "15", "14", "13"), "15", 5432,
        "/var/lib/postgresql/data", "postgresql", "DATABASE_URL", _PG_CONFIG, major_parts=1,
        minors=("17.2", "17.1", "16.6", "16.5", "15.10", "15.9", "15.8", "14.15", "13.18"),
    ),
    "mysql": Engine(
        "mysql", "MySQL", "mysql", ("8.4", "8.0"), "8.4", 3306, "/var/lib/mysql", "mysql", "DATABASE_URL", _MY_CONFIG,
        major_parts=2, minors=("8.4.3", "8.0.40"),
    ),
    "mariadb": Engine(
        "mariadb", "MariaDB", "mariadb", ("11.4", "10.11", "10.6"), "10.11", 3306, "/var/lib/mysql", "mysql",
        "DATABASE_URL", _MY_CONFIG, major_parts=2, minors=("11.4.4", "10.11.10", "10.11.9", "10.6.20"),
    ),
    "redis": Engine(
        "redis", "Redis", "redis", ("7.4", "7.2", "7", "6.2"), "7", 6379, "/data", "redis", "REDIS_URL", _REDIS_CONFIG,
        major_parts=1, minors=("7.4.1", "7.2.6", "7.0.15", "6.2.16"),
    ),
    "mongodb": Engine(
        "mongodb", "MongoDB", "mongo", ("8.0", "7.0", "6.0"), "7.0", 27017, "/data/db", "mongodb", "MONGODB_URL",
        _MONGO_CONFIG, major_parts=2, minors=("8.0.4", "7.0.16", "6.0.19"),
    ),
}  # fmt: skip


def engine(name: str) -> Engine:
    """The engine called ``name``; ValueError naming the known ones otherwise."""
    found = ENGINES.get(name)
    if found is None:
        raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")
    return found


@dataclass(frozen=True)
class Credentials:
    """What an application logs in with: a user (``""`` for Redis), its password, a database name."""

    user: str
    password: str
    database: str

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password={MASK}, database={self.database!r})"


@dataclass(frozen=True)
class Exec:
    """A command run in the database's container: ``argv``, the exec's environment (secrets the tool reads
    from there), and the text the output must contain for success (besides exit status 0)."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    expect: str | None = None
    user: str | None = None  # the container user to run as (None: the image's)

    def __repr__(self) -> str:
        return f"Exec(argv={self.argv!r}, env=<{len(self.env)} variables>, expect={self.expect!r})"


class UpgradeError(ValueError):
    """An upgrade that is not a minor-version upgrade Berth makes (the message says why and what instead)."""


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


def check_upgrade(engine_name: str, current: str, target: str) -> str:
    """The image of ``target`` when moving a database of ``engine_name`` from ``current`` to it is a
    minor-version upgrade: a version the engine knows, on the same major line, not the same version and
    not an older pinned one (a line's bare tag, ``15``, is its newest and may be pinned either way).
    UpgradeError otherwise, naming the reason."""
    eng = engine(engine_name)
    try:
        image = eng.image(target)
    except ValueError as exc:
        raise UpgradeError(f"{exc}, or one of its minor versions ({', '.join(eng.minors)})") from None
    if target == current:
        raise UpgradeError(f"the database runs {eng.title} {current} already")
    if eng.line(target) != eng.line(current):
        raise UpgradeError(
            f"{eng.title} {current} -> {target} is a major upgrade: major upgrades need a dump and a restore "
            f"(back up, create a {eng.title} {target} database, restore the backup into it); "
            f"this database can move to {', '.join(eng.upgrades(current)) or 'no other version'}"
        )
    pinned = len(current.split(".")) > eng.major_parts and len(target.split(".")) > eng.major_parts
    if pinned and _numbers(target) < _numbers(current):
        raise UpgradeError(f"{eng.title} {target} is older than {current}: a downgrade is not an upgrade")
    return image


# --- names ---------------------------------------------------------------------------------------------


def container_name(database_id: str) -> str:
    """``berth-db-<id>``: the container and the private host name of a database (``id``: 32 hex digits)."""
    if not _ID_RE.fullmatch(database_id):
        raise ValueError(f"invalid database id {database_id!r}")
    return CONTAINER_PREFIX + database_id


def volume_name(database_id: str) -> str:
    """``berth-db-<id>-data``: the named volume of a database's data directory."""
    return container_name(database_id) + "-data"


def team_network(team_id: str) -> str:
    """``berth-team-<team id>``: the network a team's databases and linked applications share on ``local``."""
    if not _ID_RE.fullmatch(team_id):
        raise ValueError(f"invalid team id {team_id!r}")
    return TEAM_NETWORK_PREFIX + team_id


def default_names(name: str) -> tuple[str, str]:
    """(user, database) for a database resource called ``name`` (a DNS label): ``-`` becomes ``_``, at most
    32 characters, starting with a letter."""
    base = re.sub(r"[^a-z0-9_]", "_", name.lower())[:32] or "app"
    if not base[0].isalpha():
        base = ("db_" + base)[:32]
    return base, base


def generate_credentials(engine_name: str, name: str) -> Credentials:
    """Fresh credentials: a 32-character password from ``secrets`` (URL-safe alphabet), the default names."""
    user, database = default_names(name)
    if engine(engine_name).name == "redis":
        user, database = "", "0"
    return Credentials(user, new_password(), database)


def new_password() -> str:
    return secrets.token_urlsafe(24)


# --- the container -----------------------------------------------------------------------------------


def container_env(engine_name: str, creds: Credentials) -> dict[str, str]:
    """The container's environment for ``creds``: the official image's variables for the first start."""
    name = engine(engine_name).name
    if name == "postgresql":
        return {"POSTGRES_USER": creds.user, "POSTGRES_PASSWORD": creds.password, "POSTGRES_DB": creds.database}
    if name in ("mysql", "mariadb"):
        prefix = "MYSQL" if name == "mysql" else "MARIADB"
        return {
            f"{prefix}_ROOT_PASSWORD": creds.password,
            f"{prefix}_DATABASE": creds.database,
            f"{prefix}_USER": creds.user,
            f"{prefix}_PASSWORD": creds.password,
        }
    if name == "mongodb":
        return {
            "MONGO_INITDB_ROOT_USERNAME": creds.user,
            "MONGO_INITDB_ROOT_PASSWORD": creds.password,
            "MONGO_INITDB_DATABASE": creds.database,
        }
    return {}  # redis: the password is a server option


def container_command(engine_name: str, creds: Credentials, config: Mapping[str, str] | None = None) -> list[str]:
    """The container's arguments (the official image's entry point takes server options): the custom
    configuration, validated again here, and Redis's password."""
    eng = engine(engine_name)
    params = validate_config(eng.name, config or {})
    if eng.name == "postgresql":
        return [a for k, v in params.items() for a in ("-c", f"{k}={v}")]
    if eng.name in ("mysql", "mariadb"):
        return [f"--{k.replace('_', '-')}={v}" for k, v in params.items()]
    if eng.name == "redis":
        return ["redis-server", "--requirepass", creds.password, *(a for k, v in params.items() for a in (f"--{k}", v))]
    return [a for k, v in params.items() for a in (f"--{k}", v)] if params else []


def validate_config(engine_name: str, config: Mapping[str, str]) -> dict[str, str]:
    """The custom configuration, checked: each name allow-listed for the engine, each value a short token
    of letters, digits and ``._+/,:-`` (or an integer), so that nothing can read it as another option."""
    eng = engine(engine_name)
    if len(config) > 64:
        raise ConfigError("", "at most 64 configuration parameters")
    out: dict[str, str] = {}
    for name, value in config.items():
        if not eng.config_names.fullmatch(name):
            raise ConfigError(name, f"{name!r} is not a {eng.title} parameter Berth lets you set")
        if not isinstance(value, str) or not _VALUE_RE.fullmatch(value):
            raise ConfigError(name, f"the value of {name!r} must be a word of letters, digits and ._+/,:- ")
        out[name] = value
    return out


# --- the connection URL ------------------------------------------------------------------------------


def _q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def connection_url(engine_name: str, creds: Credentials, host: str, port: int | None = None) -> str:
    """What an application connects with (user, password and database percent-escaped)."""
    eng = engine(engine_name)
    where = f"{host}:{port or eng.port}"
    if eng.name == "redis":  # ``default``: the user of ``requirepass`` (redis-cli 7.0 fails on an empty user)
        return f"redis://default:{_q(creds.password)}@{where}/{_q(creds.database or '0')}"
    url = f"{eng.scheme}://{_q(creds.user)}:{_q(creds.password)}@{where}/{_q(creds.database)}"
    return url + "?authSource=admin" if eng.name == "mongodb" else url


# --- readiness and the password change ----------------------------------------------------------------


def readiness(engine_name: str, creds: Credentials) -> Exec:
    """The check that the server accepts connections over TCP (not yet during the image's first-start
    initialisation, which listens on the unix socket only)."""
    eng = engine(engine_name)
    port = str(eng.port)
    if eng.name == "postgresql":
        return Exec(("pg_isready", "-q", "-h", "127.0.0.1", "-p", port, "-U", creds.user, "-d", creds.database))
    if eng.name in ("mysql", "mariadb"):
        tool = "mysqladmin" if eng.name == "mysql" else "mariadb-admin"
        return Exec(
            (tool, "ping", "--silent", "-h", "127.0.0.1", "-P", port, "-u", creds.user),
            env=(("MYSQL_PWD", creds.password),),
        )
    if eng.name == "redis":
        return Exec(("redis-cli", "-h", "127.0.0.1", "-p", port, "ping"), (("REDISCLI_AUTH", creds.password),), "PONG")
    return Exec(("mongosh", "--quiet", "--port", port, "--eval", "db.adminCommand('ping').ok"), expect="1")


def _sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _pg_ident(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def scram_sha_256(password: str, salt: bytes, iterations: int = _SCRAM_ITERATIONS) -> str:
    """PostgreSQL's stored form of a SCRAM-SHA-256 password (RFC 5802/7677): what ``ALTER ROLE ... PASSWORD``
    takes instead of the plaintext, so that the plaintext never reaches an argv or a server log."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = base64.b64encode
    return f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}${b64(stored_key).decode()}:{b64(server_key).decode()}"


def mysql_native_hash(password: str) -> str:
    """MySQL's ``mysql_native_password`` hash (``*`` + SHA1(SHA1(password)) in upper-case hex)."""
    inner = hashlib.sha1(password.encode(), usedforsecurity=False).digest()
    return "*" + hashlib.sha1(inner, usedforsecurity=False).hexdigest().upper()


def change_password(engine_name: str, creds: Credentials, new_password: str, salt: bytes | None = None) -> Exec:
    """The password change of a running database, logged in with ``creds`` (the current password). Where
    the engine takes a hash (PostgreSQL: SCRAM; MariaDB: the native hash) the plaintext is not in the argv."""
    eng = engine(engine_name)
    if eng.name == "postgresql":
        verifier = scram_sha_256(new_password, salt if salt is not None else secrets.token_bytes(16))
        sql = f"ALTER ROLE {_pg_ident(creds.user)} PASSWORD {_sql_string(verifier)}"
        socket = ("-h", "/var/run/postgresql", "-U", creds.user, "-d", creds.database)
        return Exec(("psql", "-X", "-q", *socket, "-v", "ON_ERROR_STOP=1", "-c", sql))
    if eng.name == "mariadb":
        hashed = _sql_string(mysql_native_hash(new_password))
        sql = "; ".join(
            [
                *(f"SET PASSWORD FOR {who} = {hashed}" for who in (f"{_sql_string(creds.user)}@'%'", "'root'@'%'")),
                f"ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING {hashed}",
            ]
        )
        return Exec(("mariadb", "-uroot", "-h", "localhost", "-e", sql), env=(("MYSQL_PWD", creds.password),))
    if eng.name == "mysql":
        said = _sql_string(new_password)
        sql = "; ".join(
            f"ALTER USER {who} IDENTIFIED BY {said}"
            for who in (f"{_sql_string(creds.user)}@'%'", "'root'@'%'", "'root'@'localhost'")
        )
        return Exec(("mysql", "-uroot", "-h", "localhost", "-e", sql), env=(("MYSQL_PWD", creds.password),))
    if eng.name == "redis":
        argv = ("redis-cli", "-h", "127.0.0.1", "-p", str(eng.port), "CONFIG", "SET", "requirepass", new_password)
        return Exec(argv, (("REDISCLI_AUTH", creds.password),), "OK")
    js = f"db.getSiblingDB('admin').changeUserPassword({_js(creds.user)}, {_js(new_password)})"
    login = ("-u", creds.user, "-p", creds.password, "--authenticationDatabase", "admin")
    return Exec(("mongosh", "--quiet", *login, "--eval", js))


def _js(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
