"""Database provisioning for the platform: one role and schema per service (``berth_common.db.provision``).

The supervisor runs ``python -m berth_cli.provisioning`` as a one-shot child (so that SQLAlchemy never
loads into the long-lived supervisor); it reads the admin URL and the secret from its environment and
writes each service's URL as JSON on stdout, which is a pipe to the supervisor. With ``PROVISION_MIGRATES``
set (the supervisor sets it) it then migrates every service's schema, each with that service's own role: the
services, started next, find their schemas at head and start no migration child of their own (six Python
starts with SQLAlchemy and alembic, about four seconds of CPU). A migration that fails here is left to its
service, which runs it again and reports it as it always does.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import sys
from pathlib import Path

from berth_cli.layout import PROVISION_MIGRATES
from berth_common.db.provision import SERVICES, provision, role_for, schema_for, service_url

_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def with_database(url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def ensure_database(admin_url: str, database: str) -> str:
    """Create ``database`` on the server of ``admin_url`` if it is missing; return its admin URL."""
    if not _DB_NAME.match(database):
        raise ValueError(f"invalid database name {database!r}")
    import asyncpg

    from berth_common.db.engine import async_url

    dsn = async_url(admin_url).replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(dsn)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()
    return with_database(admin_url, database)


async def provision_platform(admin_url: str, secret_key: str, database: str | None = None) -> dict[str, str]:
    if database:
        admin_url = await ensure_database(admin_url, database)
    return await provision(admin_url, secret_key)


def role_url(base_url: str, secret_key: str, service: str) -> str:
    """The URL a service connects with, from a URL naming only the server and database (compose)."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    return service_url(base_url, secret_key, service)


def roles() -> list[str]:
    return [role_for(s) for s in SERVICES]


def versions_dir(service: str) -> Path | None:
    """Where a service's migration scripts are (``berth_<service>/migrations/versions``), found without
    importing the service; None when it is not installed."""
    spec = importlib.util.find_spec(f"berth_{service.replace('-', '_')}")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "migrations" / "versions"
    return path if path.is_dir() else None


async def migrate_services(urls: dict[str, str]) -> list[str]:
    """Migrate each service's schema with its own role; the schemas migrated (a failure is written to stderr
    and left to the service)."""
    from sqlalchemy.pool import NullPool

    from berth_common.db.engine import make_engine
    from berth_common.db.migrate import run_migrations

    done = []
    for service, url in urls.items():
        versions, schema = versions_dir(service), schema_for(service)
        if versions is None:
            continue
        engine = make_engine(url, schema, poolclass=NullPool)
        try:
            await run_migrations(engine, schema, versions)
            done.append(schema)
        except Exception as exc:  # the service migrates again at its start and says what failed
            print(f"migrations of {schema} left to the service: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            await engine.dispose()
    return done


def migrate_concurrently(urls: dict[str, str]) -> list[str]:
    """:func:`migrate_services` for every service at once, one forked child each; the schemas migrated.

    Alembic's ``context`` and ``op`` are process-wide, so two migrations never share a process; forked after
    SQLAlchemy and alembic are loaded, the children start at once and Postgres runs their DDL side by side.
    Called with no event loop running (a child runs its own)."""
    import alembic.command  # noqa: F401  (loaded once, before the fork)

    import berth_common.db.migrate  # noqa: F401

    children: dict[int, str] = {}
    for service, url in urls.items():
        if versions_dir(service) is None:
            continue
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover  (the child: its exit code says whether the schema is at head)
            code = 1
            try:
                code = 0 if asyncio.run(migrate_services({service: url})) else 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        children[pid] = schema_for(service)
    done = []
    for pid, schema in children.items():
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) == 0:
            done.append(schema)
    return done


def _required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SystemExit(f"{name} is not set")
    return value


def main() -> None:
    urls = asyncio.run(
        provision_platform(
            _required("BERTH_DATABASE_URL"),
            _required("BERTH_SECRET_KEY"),
            os.environ.get("BERTH_CREATE_DATABASE") or None,
        )
    )
    if os.environ.get(PROVISION_MIGRATES) == "1":
        migrate_concurrently(urls)
    sys.stdout.write(json.dumps(urls))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
