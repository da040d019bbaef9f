"""Per-service storage: one role and schema each, no reach into another's tables, own migrations."""

from __future__ import annotations

import asyncio
import importlib

import asyncpg
import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from berth_common.db import make_engine, run_migrations
from berth_common.db.migrate import ENV_DIR
from berth_common.db.provision import SERVICES, provision, schema_for

PACKAGES = {"api": "berth_api", "builder": "berth_builder", "scheduler": "berth_scheduler"}
PACKAGES |= {"proxy-sync": "berth_proxy_sync", "metrics": "berth_metrics", "notifier": "berth_notifier"}


def versions_dir(service: str):
    return importlib.import_module(f"{PACKAGES[service]}.bootstrap").VERSIONS


def head_of(service: str) -> str:
    script = ScriptDirectory(str(ENV_DIR), version_locations=[str(versions_dir(service))])
    head = script.get_current_head()
    assert head is not None
    return head


def plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def migrate(url: str, service: str) -> None:
    engine = make_engine(url, schema_for(service))
    try:
        await run_migrations(engine, schema_for(service), versions_dir(service))
    finally:
        await engine.dispose()


async def test_a_service_role_cannot_touch_another_services_tables(database):
    urls = await provision(database, "test-secret")
    await migrate(urls["builder"], "builder")
    await migrate(urls["api"], "api")
    api = await asyncpg.connect(plain(urls["api"]))
    try:
        assert await api.fetchval("SELECT current_user") == "berth_api"
        assert await api.fetchval("SELECT count(*) FROM outbox") == 0  # its own, through search_path
        attempts = [
            "SELECT * FROM builder.outbox",
            "INSERT INTO builder.processed_messages (consumer, message_id) VALUES ('x', 'y')",
            "DELETE FROM builder.outbox",
            "CREATE TABLE builder.intruder (id int)",
            "CREATE TABLE public.shared (id int)",
        ]
        for sql in attempts:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for schema"):
                await api.execute(sql)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await api.execute("GRANT USAGE ON SCHEMA builder TO berth_api")
    finally:
        await api.close()
    # the builder still sees its own tables, untouched
    builder = await asyncpg.connect(plain(urls["builder"]))
    assert await builder.fetchval("SELECT count(*) FROM builder.processed_messages") == 0
    await builder.close()


async def test_every_service_migrates_into_its_own_schema_with_its_own_version_table(database):
    urls = await provision(database, "test-secret")
    await asyncio.gather(*(migrate(urls[s], s) for s in SERVICES))  # all six at once, as at `make up`
    admin = await asyncpg.connect(plain(database))
    try:
        rows = await admin.fetch(
            "SELECT table_schema, tableowner FROM information_schema.tables t "
            "JOIN pg_tables p ON p.schemaname = t.table_schema AND p.tablename = t.table_name "
            "WHERE table_name = 'alembic_version'"
        )
        assert {r["table_schema"]: r["tableowner"] for r in rows} == {
            schema_for(s): f"berth_{schema_for(s)}" for s in SERVICES
        }
        for s in SERVICES:
            schema = schema_for(s)
            versions = await admin.fetch(f'SELECT version_num FROM "{schema}".alembic_version')
            assert [v["version_num"] for v in versions] == [head_of(s)]
            # every table a service's migrations made is in its schema and owned by its role
            owners = await admin.fetch("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = $1", schema)
            assert [o["tableowner"] for o in owners] == [f"berth_{schema}"]
        assert await admin.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
    finally:
        await admin.close()


async def test_migrations_are_idempotent_across_restarts_and_concurrent_starts(database):
    urls = await provision(database, "test-secret")
    # four replicas of the scheduler start at the same moment on a fresh schema
    await asyncio.gather(*(migrate(urls["scheduler"], "scheduler") for _ in range(4)))
    await migrate(urls["scheduler"], "scheduler")  # and a restart
    admin = await asyncpg.connect(plain(database))
    assert [r[0] for r in await admin.fetch("SELECT version_num FROM scheduler.alembic_version")] == [
        head_of("scheduler")
    ]
    await admin.close()


async def test_without_provisioning_migrations_create_the_schema_once(database):
    """A plain database URL (one role for all): concurrent first starts create the schema exactly once."""
    await asyncio.gather(*(migrate(database, "notifier") for _ in range(3)))
    engine = make_engine(database, "notifier")
    async with engine.connect() as conn:
        tables = (await conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'notifier'"))).all()
    await engine.dispose()
    assert {"alembic_version", "outbox", "processed_messages"} <= {t[0] for t in tables}


async def test_provisioning_twice_is_harmless(database):
    first = await provision(database, "test-secret")
    await migrate(first["metrics"], "metrics")
    second = await provision(database, "test-secret")
    assert first == second
    conn = await asyncpg.connect(plain(second["metrics"]))
    assert await conn.fetchval("SELECT count(*) FROM processed_messages") == 0
    await conn.close()
    # a new secret key rotates every role's password: the old URL stops working
    rotated = await provision(database, "another-secret")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(plain(first["metrics"]))
    conn = await asyncpg.connect(plain(rotated["metrics"]))
    await conn.close()
