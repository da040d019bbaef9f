"""The Postgres side of ``berth backup`` / ``berth restore``: the data directory's cluster (the running
platform's, or started here on a free port for the time of the command), the tools run with argv only, and
the few statements they need (schema heads, the restore's database and roles).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from berth_cli import components
from berth_cli.backup_archive import BackupError, PgConn
from berth_cli.datadir import read_json, tail
from berth_cli.layout import DATABASE, SERVICES, Paths, resolve_ports

READY_TIMEOUT_S = 90.0


@dataclass
class Cluster:
    """A Postgres reachable for the command: its superuser connection (to ``database``) and, when this
    command started it, the process and the cluster directory."""

    conn: PgConn
    proc: subprocess.Popen[bytes] | None = None
    data: Path | None = None


def run_tool(argv: list[str], conn: PgConn, what: str) -> None:
    """Run a Postgres client tool; its error (never the password, which is only in its environment) is
    reported on failure."""
    proc = subprocess.run(argv, env={**os.environ, **conn.env()}, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()[-2000:]
        raise BackupError(f"{what} failed (exit {proc.returncode}): {detail}")


def cluster_places(paths: Paths) -> tuple[Path, Path]:
    """Where this data directory's cluster lives: in place, or in the system home a root-run Postgres uses
    when the data directory is private (:mod:`berth_cli.pgplace`)."""
    from berth_cli import pgplace

    return paths.pgdata, pgplace.system_home(paths.root) / "data"


def existing_cluster(paths: Paths) -> Path | None:
    """The cluster directory of this data directory if one was made."""
    for candidate in cluster_places(paths):
        if (candidate / "PG_VERSION").exists():
            return candidate
    return None


async def _connect(conn: PgConn, database: str | None = None):  # type: ignore[no-untyped-def]
    import asyncpg

    return await asyncpg.connect(
        host=conn.host,
        port=conn.port,
        user=conn.user,
        password=conn.password,
        database=database or conn.database,
        timeout=10,
    )


async def _ping(conn: PgConn) -> None:
    c = await _connect(conn, "postgres")
    await c.close()


def _wait_ready(cluster: Cluster, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            asyncio.run(_ping(cluster.conn))
            return
        except Exception as exc:  # not accepting connections yet
            if cluster.proc is not None and cluster.proc.poll() is not None:
                raise BackupError(f"postgres did not start: {tail(log, 10)}") from None
            if time.monotonic() > deadline:
                raise BackupError(f"postgres did not accept connections in time: {type(exc).__name__}") from None
            time.sleep(0.3)


def start_cluster(paths: Paths, password: str, log: Path) -> Cluster:
    """The data directory's cluster (made by initdb if there is none) on a free port, until :func:`stop`."""
    port = components.free_port()
    launch = components.pg_launch(paths.pgdata, port, password, shared_buffers="16MB", max_connections=20)
    data = Path(launch.argv[launch.argv.index("-D") + 1])
    with log.open("ab") as out:
        proc = subprocess.Popen(  # type: ignore[call-overload]  # argv from components.pg_launch
            launch.argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **launch.popen_kwargs(),
        )
    cluster = Cluster(PgConn("127.0.0.1", port, "postgres", password, "postgres"), proc, data)
    try:
        _wait_ready(cluster, log)
    except BaseException:
        stop(cluster)
        raise
    return cluster


def stop(cluster: Cluster) -> None:
    """Stop a Postgres this command started (fast shutdown), whatever state it is in."""
    proc = cluster.proc
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@contextlib.contextmanager
def platform_database(paths: Paths, env: Mapping[str, str], log: Path) -> Iterator[PgConn]:
    """The superuser connection to the platform's database: BERTH_DATABASE_URL (an admin URL) when set; the
    running platform's Postgres; else the data directory's cluster, started for the time of the block."""
    if env.get("BERTH_DATABASE_URL"):
        yield PgConn.from_url(env["BERTH_DATABASE_URL"])
        return
    if not paths.pg_password.is_file() or existing_cluster(paths) is None:
        raise BackupError(f"no Berth database in {paths.root} (give --data-dir, or BERTH_DATABASE_URL)")
    password = paths.pg_password.read_text().strip()
    from berth_cli import platform

    if platform.supervisor_pid(paths) is not None:
        state = read_json(paths.state) or {}
        port = (state.get("ports") or {}).get("postgres") or resolve_ports(env)["postgres"]
        yield PgConn("127.0.0.1", int(port), "postgres", password, DATABASE)
        return
    cluster = start_cluster(paths, password, log)
    try:
        yield replace(cluster.conn, database=DATABASE)
    finally:
        stop(cluster)


# --- statements ----------------------------------------------------------------------------------------


async def _heads(conn: PgConn) -> tuple[dict[str, dict[str, str | None]], str]:
    c = await _connect(conn)
    try:
        version = str(await c.fetchval("SHOW server_version"))
        heads: dict[str, dict[str, str | None]] = {}
        for service, schema, _ in SERVICES:
            exists = await c.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.alembic_version")
            # ``schema`` is one of the fixed names of berth_cli.layout.SERVICES
            query = f'SELECT version_num FROM "{schema}".alembic_version LIMIT 1'  # noqa: S608
            head = await c.fetchval(query) if exists else None
            heads[service] = {"schema": schema, "head": head}
        return heads, version
    finally:
        await c.close()


def _database_error(what: str, exc: Exception) -> BackupError:
    """The server's own message (a driver's wrapper may quote the statement, which can hold a password)."""
    cause = getattr(exc, "orig", None) or exc
    return BackupError(f"{what} failed: {type(cause).__name__}: {cause}")


def schema_heads(conn: PgConn) -> tuple[dict[str, dict[str, str | None]], str]:
    """Each service's schema and migration head, and the server's version."""
    try:
        return asyncio.run(_heads(conn))
    except Exception as exc:
        raise _database_error("reading the schema heads", exc) from None


async def _prepare(conn: PgConn, database: str, secret_key: str) -> None:
    from berth_cli.provisioning import provision_platform

    url = f"postgresql+asyncpg://{conn.user}@{conn.host}:{conn.port}/postgres"
    c = await _connect(conn, "postgres")
    try:
        if await c.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            raise BackupError(f"the new cluster already holds a database {database!r}")
    finally:
        await c.close()
    from sqlalchemy.engine import make_url

    await provision_platform(
        make_url(url).set(password=conn.password).render_as_string(hide_password=False), secret_key, database
    )


def prepare_database(conn: PgConn, database: str, secret_key: str) -> None:
    """A new database with every service's role (passwords derived from the restored key) and empty schema."""
    try:
        asyncio.run(_prepare(conn, database, secret_key))
    except BackupError:
        raise
    except Exception as exc:
        raise _database_error("creating the database and its roles", exc) from None


async def _now(conn: PgConn) -> str:
    c = await _connect(conn)
    try:
        value = await c.fetchval(
            "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        )
        return str(value)
    finally:
        await c.close()


def server_now(conn: PgConn) -> str:
    """The database's clock (UTC, microseconds): the time the outboxes' ``published_at`` is written in."""
    try:
        return asyncio.run(_now(conn))
    except Exception as exc:
        raise _database_error("reading the database's clock", exc) from None


async def _republish(conn: PgConn, since: str) -> int:
    from datetime import datetime

    at = datetime.fromisoformat(since)
    c = await _connect(conn)
    try:
        count = 0
        for _, schema, _ in SERVICES:
            if not await c.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.outbox"):
                continue
            # ``schema`` is one of the fixed names of berth_cli.layout.SERVICES
            query = f'UPDATE "{schema}".outbox SET published_at = NULL WHERE published_at >= $1'  # noqa: S608
            status = await c.execute(query, at)
            count += int(status.split()[-1])
        return count
    finally:
        await c.close()


def republish_since(conn: PgConn, since: str) -> int:
    """Every service's outbox rows published at or after ``since`` marked unpublished, so that the services
    publish them again (the NATS snapshot taken at ``since`` may not hold them); how many."""
    try:
        return asyncio.run(_republish(conn, since))
    except Exception as exc:
        raise _database_error("marking the outbox for publishing again", exc) from None
