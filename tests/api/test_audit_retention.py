"""Retention of the audit log: rows older than BERTH_AUDIT_RETENTION_DAYS are deleted in bounded batches, by
one purge at a time, on a schedule that starts with the api and stops with it; 0 keeps every row."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from structlog.testing import capture_logs

from berth_api.adapters import audit as repo
from berth_api.adapters.tables import audit_log
from berth_api.bootstrap import AUDIT_RETENTION_TASK, VERSIONS, spec
from berth_api.domain import retention
from berth_api.settings import ApiSettings
from berth_api.usecases.audit import purge_expired
from berth_cli.components import free_port
from berth_common.db import make_engine, make_sessionmaker
from berth_common.db.migrate import run_migrations
from tests.api.conftest import start_api

MARKER = "row-content-never-logged"


@pytest.fixture
async def engine(api_urls) -> AsyncIterator[AsyncEngine]:
    """The api's schema, migrated, on the api's own role (no service running: nothing purges but the test)."""
    eng = make_engine(api_urls["api"], "api")
    await run_migrations(eng, "api", VERSIONS)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessions(engine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


async def _rows(sessions, n: int, days_old: float, team: str = "default") -> None:
    """``n`` rows recorded ``days_old`` days ago (a second apart), straight into the api's table."""
    g = sa.func.generate_series(1, n).table_valued("g").alias("g")
    at = (
        sa.func.now()
        - sa.func.make_interval(0, 0, 0, 0, 0, 0, float(days_old * 86400))
        - sa.func.make_interval(0, 0, 0, 0, 0, 0, g.c.g)
    )
    select = sa.select(
        at,
        sa.literal(team),
        sa.literal("POST"),
        sa.literal("/v1/projects"),
        sa.literal(MARKER),
        sa.literal(201),
    ).select_from(g)
    async with sessions() as s, s.begin():
        await s.execute(
            sa.insert(audit_log).from_select(["at", "team_id", "method", "route", "target_id", "status"], select)
        )


async def _count(sessions, older_than_days: int | None = None) -> int:
    q = sa.select(sa.func.count()).select_from(audit_log)
    if older_than_days is not None:
        q = q.where(audit_log.c.at < sa.func.now() - sa.func.make_interval(0, 0, 0, older_than_days))
    async with sessions() as s:
        return int((await s.execute(q)).scalar_one())


def test_cutoff_and_batching_decisions():
    now = datetime(2026, 12, 3, tzinfo=UTC)
    assert retention.cutoff(now, 90) == now - timedelta(days=90)
    assert retention.cutoff(now, 0) is None
    assert retention.go_on(5000, 5000, 1) and not retention.go_on(4999, 5000, 1)
    assert not retention.go_on(5000, 5000, retention.MAX_BATCHES)
    assert retention.parse_days("7") == 7 and retention.parse_days(0) == 0


async def test_rows_past_the_retention_are_deleted_and_newer_ones_kept(sessions):
    for days_old in (90.01, 91, 400, 3000):
        await _rows(sessions, 1, days_old)
    for days_old in (0, 1, 89.9):
        await _rows(sessions, 1, days_old)
    async with sessions() as s, s.begin():  # one written the way the middleware writes them (at = now)
        await repo.insert(s, {"team_id": "t", "method": "PUT", "route": "/x", "status": 200})

    with capture_logs() as logs:
        result = await purge_expired(sessions, 90)
    assert (result.deleted, result.batches, result.busy) == (4, 1, False)
    assert await _count(sessions) == 4 and await _count(sessions, 89) == 1  # the 89.9-day-old one stays
    purged = [e for e in logs if e["event"] == "audit log purged"]
    assert len(purged) == 1 and purged[0]["deleted"] == 4 and purged[0]["retention_days"] == 90
    assert MARKER not in repr(logs)  # a count, never a row

    assert (await purge_expired(sessions, 90)).deleted == 0  # nothing left to delete
    assert (await purge_expired(sessions, 1)).deleted == 2  # a shorter retention reaches further
    assert await _count(sessions) == 2


async def test_a_backlog_larger_than_a_batch_goes_in_bounded_batches(sessions):
    await _rows(sessions, 2 * retention.BATCH_SIZE + 345, 120)
    await _rows(sessions, 10, 30)
    result = await purge_expired(sessions, 90)
    assert (result.deleted, result.batches) == (2 * retention.BATCH_SIZE + 345, 3)
    assert await _count(sessions) == 10

    # A run stops after its batch budget; the next run goes on.
    await _rows(sessions, 2500, 100)
    first = await purge_expired(sessions, 90, batch_size=1000, max_batches=2)
    assert (first.deleted, first.batches) == (2000, 2) and await _count(sessions, 90) == 500
    assert (await purge_expired(sessions, 90, batch_size=1000, max_batches=2)).deleted == 500
    assert await _count(sessions) == 10


async def test_zero_keeps_everything(sessions):
    await _rows(sessions, 5, 36000)
    assert ApiSettings(audit_retention_days=0).audit_retention_days == 0
    result = await purge_expired(sessions, 0)
    assert (result.deleted, result.batches) == (0, 0)
    assert await _count(sessions) == 5


async def test_two_purges_at_once_share_the_work_without_error(api_urls, engine, sessions):
    old = 3 * retention.BATCH_SIZE
    await _rows(sessions, old, 200)
    await _rows(sessions, 7, 10)
    other = make_engine(api_urls["api"], "api")  # a second api process's pool
    try:
        a, b = await asyncio.gather(
            purge_expired(sessions, 90, batch_size=1000), purge_expired(make_sessionmaker(other), 90, batch_size=1000)
        )
    finally:
        await other.dispose()
    assert a.deleted + b.deleted == old
    assert await _count(sessions) == 7

    # While another purge holds the retention lock, a purge deletes nothing and says so.
    await _rows(sessions, 3, 200)
    async with sessions() as holder, holder.begin():
        assert await repo.delete_batch(holder, datetime(2000, 1, 1, tzinfo=UTC), 1) == 0  # takes the lock
        blocked = await purge_expired(sessions, 90)
        assert (blocked.deleted, blocked.busy) == (0, True)
    assert await _count(sessions) == 10
    assert (await purge_expired(sessions, 90)).deleted == 3


def _purge_tasks() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_name() == AUDIT_RETENTION_TASK and not t.done()]


async def test_the_api_purges_at_start_and_stops_purging_on_shutdown(api_settings):
    settings = api_settings.model_copy(update={"audit_purge_delay_s": 0.0, "audit_purge_interval_s": 3600.0})
    first = await start_api(settings)
    assert len(_purge_tasks()) == 1
    await first.shutdown()
    assert _purge_tasks() == []  # stopped with the api

    engine = make_engine(settings.database_url.get_secret_value(), "api")
    sessions = make_sessionmaker(engine)
    try:
        await _rows(sessions, 50, 95)
        await _rows(sessions, 2, 5)
        with capture_logs() as logs:
            second = await start_api(settings.model_copy(update={"http_port": free_port()}))
            try:
                for _ in range(200):  # the run at start (the next one would be an hour later)
                    if await _count(sessions) == 2:
                        break
                    await asyncio.sleep(0.05)
                assert await _count(sessions) == 2
            finally:
                await second.shutdown()
        assert _purge_tasks() == []
        assert [e["deleted"] for e in logs if e["event"] == "audit log purged"] == [50]

        # Kept forever: no purge runs at all.
        await _rows(sessions, 3, 95)
        third = await start_api(settings.model_copy(update={"http_port": free_port(), "audit_retention_days": 0}))
        try:
            assert _purge_tasks() == []
        finally:
            await third.shutdown()
        assert await _count(sessions) == 5
    finally:
        await engine.dispose()


@pytest.mark.parametrize("raw", ["-1", "ninety", "1.5", "36501", ""])
def test_a_bad_retention_refuses_to_start_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv("BERTH_AUDIT_RETENTION_DAYS", raw)
    with pytest.raises(ValidationError, match="BERTH_AUDIT_RETENTION_DAYS"):
        spec()  # what the api's main does first


def test_a_good_retention_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("BERTH_AUDIT_RETENTION_DAYS", "30")
    assert ApiSettings().audit_retention_days == 30
    monkeypatch.setenv("BERTH_AUDIT_RETENTION_DAYS", "0")
    assert ApiSettings().audit_retention_days == 0
