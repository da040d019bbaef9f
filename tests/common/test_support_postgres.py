"""The tests' Postgres (tests/support/procs.py): its data is thrown away, so it never flushes to the disk, while
commits stay synchronous (a test sees what it committed, as against the platform's Postgres)."""

from __future__ import annotations

import asyncpg

from tests.support.procs import Postgres


async def test_the_test_postgres_runs_without_fsync_and_commits_synchronously(postgres: Postgres) -> None:
    conn = await asyncpg.connect(postgres.admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        assert await conn.fetchval("SHOW fsync") == "off"
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
    finally:
        await conn.close()
