"""Reading the audit log (rows are written by the HTTP layer's audit middleware), and its retention: rows
older than ``BERTH_AUDIT_RETENTION_DAYS`` are deleted in bounded batches by one api process at a time."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from berth_api.adapters import audit as repo
from berth_api.adapters.audit import AuditFilter
from berth_api.domain import retention
from berth_api.domain.identity import Principal
from berth_api.settings import ApiSettings
from berth_api.usecases import Deps
from berth_common.logging import get_logger

log = get_logger(__name__)


async def list_entries(
    deps: Deps, principal: Principal, f: AuditFilter, limit: int, before: int | None
) -> list[dict[str, Any]]:
    async with deps.sessionmaker() as s:
        return await repo.list_rows(s, principal.team_id, f, limit, before)


@dataclass(frozen=True)
class PurgeResult:
    deleted: int
    batches: int
    busy: bool  # another purge held the retention lock: this one stopped and left the rest to it


async def purge_expired(
    sessionmaker: async_sessionmaker[AsyncSession],
    days: int,
    *,
    batch_size: int = retention.BATCH_SIZE,
    max_batches: int = retention.MAX_BATCHES,
) -> PurgeResult:
    """Delete the rows older than ``days`` (0: none), one short transaction per batch, each under the
    retention lock; stops at the first batch the lock is held elsewhere. Logs the count, never a row."""
    if days <= 0:
        return PurgeResult(0, 0, False)
    async with sessionmaker() as s:
        now = await repo.db_now(s)
    before = retention.cutoff(now, days)
    assert before is not None
    deleted = batches = 0
    busy = False
    while True:
        async with sessionmaker() as s, s.begin():
            n = await repo.delete_batch(s, before, batch_size)
        if n is None:
            busy = True
            break
        deleted += n
        batches += 1
        if not retention.go_on(n, batch_size, batches, max_batches):
            break
        await asyncio.sleep(0)  # let requests run between batches
    fields = {"deleted": deleted, "batches": batches, "retention_days": days, "older_than": before.isoformat()}
    if deleted:
        log.info("audit log purged", **fields, another_process_purging=busy)
    else:
        log.debug("audit log purge: nothing to delete", **fields, another_process_purging=busy)
    return PurgeResult(deleted, batches, busy)


async def retention_loop(settings: ApiSettings, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Purge ``audit_purge_delay_s`` after start, then every ``audit_purge_interval_s``, until cancelled; a
    failed run (the database away) is logged and the next one tries again."""
    await asyncio.sleep(settings.audit_purge_delay_s)
    while True:
        try:
            await purge_expired(sessionmaker, settings.audit_retention_days)
        except Exception as exc:
            log.warning("audit log purge failed", error=str(exc)[:300])
        await asyncio.sleep(settings.audit_purge_interval_s)
