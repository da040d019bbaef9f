"""Run a service's Alembic migrations at start, with its own version table in its own schema."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from berth_common.db.engine import check_schema

ENV_DIR = Path(__file__).parent / "alembic_env"


def _config(schema: str, versions_dir: Path, connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(ENV_DIR))
    cfg.set_main_option("version_locations", str(versions_dir))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["schema"] = schema
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


async def run_migrations(engine: AsyncEngine, schema: str, versions_dir: Path, revision: str = "head") -> None:
    """Upgrade ``schema`` to ``revision``. Serialised across processes by an advisory lock."""

    check_schema(schema)

    def _upgrade(sync_conn: Connection) -> None:
        sync_conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": f"berth-migrate-{schema}"})
        exists = sync_conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}).first()
        if exists is None:  # provisioned deployments own theirs already; a plain URL creates it here
            sync_conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sync_conn.execute(text(f'SET LOCAL search_path TO "{schema}"'))
        command.upgrade(_config(schema, versions_dir, sync_conn), revision)

    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


def current_revision(sync_conn: Connection, schema: str) -> str | None:
    table = f'"{check_schema(schema)}".alembic_version'
    row = sync_conn.execute(text(f"SELECT version_num FROM {table}")).first()  # noqa: S608 - validated name
    return None if row is None else str(row[0])
