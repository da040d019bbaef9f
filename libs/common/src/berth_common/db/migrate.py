"""Run a service's Alembic migrations at start, with its own version table in its own schema.

Alembic is imported only when migrations run: services run them in a short-lived child process
(:mod:`berth_common.db.migrate_process`), so alembic and mako never stay resident in a service.
"""

from __future__ import annotations

import asyncio
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from berth_common.db.engine import check_schema

if TYPE_CHECKING:
    from alembic.config import Config

ENV_DIR = Path(__file__).parent / "alembic_env"

# Alembic's ``context`` and ``op`` are process-wide proxies. Migrations run through SQLAlchemy's async
# bridge yield to the event loop at every statement, so two services migrating at once in one process
# (the all-in-one mode) would run each other's operations on the wrong connection. One at a time.
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _process_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _locks.get(loop)
    if lock is None:
        lock = _locks[loop] = asyncio.Lock()
    return lock


def _config(schema: str, versions_dir: Path, connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(ENV_DIR))
    cfg.set_main_option("version_locations", str(versions_dir))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["schema"] = schema
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


async def run_migrations(engine: AsyncEngine, schema: str, versions_dir: Path, revision: str = "head") -> None:
    """Upgrade ``schema`` to ``revision``.

    Serialised per schema across processes by an advisory lock, and within a process altogether.
    """

    check_schema(schema)

    def _upgrade(sync_conn: Connection) -> None:
        from alembic import command

        sync_conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": f"berth-migrate-{schema}"})
        exists = sync_conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}).first()
        if exists is None:  # provisioned deployments own theirs already; a plain URL creates it here
            sync_conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sync_conn.execute(text(f'SET LOCAL search_path TO "{schema}"'))
        command.upgrade(_config(schema, versions_dir, sync_conn), revision)

    async with _process_lock(), engine.begin() as conn:
        await conn.run_sync(_upgrade)
