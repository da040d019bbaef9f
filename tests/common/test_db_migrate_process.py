"""Migrations in a child process: applied, idempotent, a failing one is raised, an absent database retried."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from berth_common.db.migrate_process import MigrationError, run_migrations_isolated
from berth_common.db.provision import provision
from berth_scheduler.bootstrap import VERSIONS


async def test_migrations_run_in_a_child_process_and_are_idempotent(database):
    urls = await provision(database, "test-secret")
    await run_migrations_isolated(urls["scheduler"], "scheduler", VERSIONS)
    await run_migrations_isolated(urls["scheduler"], "scheduler", VERSIONS)
    conn = await asyncpg.connect(urls["scheduler"].replace("+asyncpg", ""))
    try:
        assert await conn.fetchval("SELECT count(*) FROM scheduler.alembic_version") == 1
        assert await conn.fetchval("SELECT to_regclass('scheduler.pings')::text") in ("pings", "scheduler.pings")
    finally:
        await conn.close()


async def test_a_failing_migration_is_raised_with_its_error(database, tmp_path: Path):
    urls = await provision(database, "test-secret")
    (tmp_path / "0001_bad.py").write_text(
        'from alembic import op\nrevision = "bad_0001"\ndown_revision = None\nbranch_labels = None\n'
        "depends_on = None\n\n\ndef upgrade():\n    op.execute('SELECT * FROM no_such_table')\n"
    )
    with pytest.raises(MigrationError, match="no_such_table"):
        await run_migrations_isolated(urls["scheduler"], "scheduler", tmp_path)


async def test_an_unreachable_database_is_a_connection_error(tmp_path: Path):
    from berth_cli.components import free_port

    url = f"postgresql+asyncpg://nobody:pw@127.0.0.1:{free_port()}/nowhere"
    with pytest.raises(ConnectionError):
        await run_migrations_isolated(url, "scheduler", VERSIONS, timeout_s=60)
