"""The pool's check of a connection before each use (``berth_common.db.engine._ping``): one round trip, and a
connection whose server end went away is replaced before a unit of work sees it."""

from __future__ import annotations

import asyncpg
import sqlalchemy as sa

from berth_common.db import make_engine
from berth_common.db.engine import make_sessionmaker


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def test_a_unit_of_work_on_a_pooled_connection_costs_one_ping_statement_and_no_extra_transaction(database):
    engine = make_engine(database, "public", pool_size=1)
    sessions = make_sessionmaker(engine)
    seen: list[str] = []
    try:
        async with sessions() as s:
            raw = (await (await s.connection()).get_raw_connection()).driver_connection
            assert raw is not None
            raw.add_query_logger(lambda record: seen.append(record.query))
        seen.clear()
        async with sessions() as s, s.begin():  # the same pooled connection, checked out again
            assert (await s.execute(sa.text("SELECT 7"))).scalar() == 7
        # the dialect's own ping was BEGIN; ; ROLLBACK; before the unit's own transaction
        assert seen == [";", "BEGIN;", "COMMIT;"]
    finally:
        await engine.dispose()


async def test_a_pooled_connection_whose_backend_was_ended_is_replaced_before_use(database):
    engine = make_engine(database, "public", pool_size=1)
    sessions = make_sessionmaker(engine)
    try:
        async with sessions() as s:
            first = (await s.execute(sa.text("SELECT pg_backend_pid()"))).scalar()
        admin = await asyncpg.connect(_dsn(database))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first) is True
        finally:
            await admin.close()
        async with sessions() as s, s.begin():
            second = (await s.execute(sa.text("SELECT pg_backend_pid()"))).scalar()
        assert second != first
    finally:
        await engine.dispose()
