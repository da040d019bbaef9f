"""api_0024 and scheduler_0017 on a real Postgres: upgraded from the revision before, the runs' status check
takes ``skipped`` after api_0024 and not before (a downgrade puts the earlier check back), the runs have
``kind`` and ``job_id``, and both revisions go down and up again."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from berth_common.db import make_engine
from berth_common.db.migrate import _config, run_migrations

API = Path(__file__).resolve().parents[2] / "services/api/src/berth_api/migrations/versions"
SCHEDULER = Path(__file__).resolve().parents[2] / "services/scheduler/src/berth_scheduler/migrations/versions"


async def _downgrade(engine, schema: str, versions: Path, revision: str) -> None:
    def down(conn) -> None:  # type: ignore[no-untyped-def]
        from alembic import command

        conn.execute(sa.text(f'SET LOCAL search_path TO "{schema}"'))
        command.downgrade(_config(schema, versions, conn), revision)

    async with engine.begin() as conn:
        await conn.run_sync(down)


async def _check(engine, schema: str) -> str:
    q = "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'runs_status'"
    q += f" AND connamespace = '{schema}'::regnamespace"
    async with engine.connect() as conn:
        return str((await conn.execute(sa.text(q))).scalar())


async def test_the_migrations_go_up_and_down(empty_database: str) -> None:
    database = empty_database
    engine, scheduler = make_engine(database, "api"), make_engine(database, "scheduler")
    try:
        await run_migrations(engine, "api", API, "api_0022")
        before = await _check(engine, "api")
        assert "skipped" not in before and "timed_out" in before
        await run_migrations(engine, "api", API)
        assert "skipped" in await _check(engine, "api")
        async with engine.connect() as conn:
            columns = {
                r[0]
                for r in await conn.execute(
                    sa.text(
                        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'api' AND table_name = 'runs'"
                    )
                )
            }
        assert {"kind", "job_id"} <= columns
        await _downgrade(engine, "api", API, "api_0022")
        assert await _check(engine, "api") == before
        await run_migrations(engine, "api", API)

        await run_migrations(scheduler, "scheduler", SCHEDULER)
        await _downgrade(scheduler, "scheduler", SCHEDULER, "scheduler_0016")
        await run_migrations(scheduler, "scheduler", SCHEDULER)
    finally:
        await engine.dispose()
        await scheduler.dispose()
