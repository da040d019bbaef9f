"""Database access for the audit log: one row per mutating request (and per secret export), never a value."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from berth_api.adapters.rows import all_rows
from berth_api.adapters.tables import audit_log


@dataclass(frozen=True)
class AuditFilter:
    user_id: str | None = None
    method: str | None = None
    route: str | None = None
    target_id: str | None = None
    status_min: int | None = None
    status_max: int | None = None
    since: datetime | None = None
    until: datetime | None = None


async def insert_now(engine: AsyncEngine, values: dict[str, Any]) -> None:
    """One row in its own single-statement transaction (autocommit: one round trip, not three)."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.insert(audit_log).values(**values))


async def insert(session: AsyncSession, values: dict[str, Any]) -> int:
    row = (await session.execute(sa.insert(audit_log).values(**values).returning(audit_log.c.id))).one()
    return int(row.id)


RETENTION_LOCK = "berth-api:audit-retention"


async def db_now(session: AsyncSession) -> datetime:
    """The database's clock (the one that stamped the rows)."""
    return (await session.execute(sa.select(sa.func.now()))).scalar_one()


async def delete_batch(session: AsyncSession, before: datetime, limit: int) -> int | None:
    """In the caller's transaction: delete at most ``limit`` of the oldest rows recorded before ``before``;
    how many. None when another purge holds the retention lock (taken for the transaction, never waited
    for)."""
    got = (
        await session.execute(sa.text("SELECT pg_try_advisory_xact_lock(hashtext(:k))"), {"k": RETENTION_LOCK})
    ).scalar_one()
    if not got:
        return None
    c = audit_log.c
    oldest = sa.select(c.id).where(c.at < before).order_by(c.at).limit(limit).scalar_subquery()
    result = await session.execute(sa.delete(audit_log).where(c.id.in_(oldest)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def list_rows(
    session: AsyncSession, team_id: str, f: AuditFilter, limit: int, before: int | None
) -> list[dict[str, Any]]:
    """The team's rows, newest first; ``before`` is the id cursor of the previous page's last row."""
    c = audit_log.c
    q = sa.select(audit_log).where(c.team_id == team_id)
    if before is not None:
        q = q.where(c.id < before)
    if f.user_id is not None:
        q = q.where(c.user_id == f.user_id)
    if f.method is not None:
        q = q.where(c.method == f.method)
    if f.route is not None:
        q = q.where(c.route == f.route)
    if f.target_id is not None:
        q = q.where(c.target_id == f.target_id)
    if f.status_min is not None:
        q = q.where(c.status >= f.status_min)
    if f.status_max is not None:
        q = q.where(c.status <= f.status_max)
    if f.since is not None:
        q = q.where(c.at >= f.since)
    if f.until is not None:
        q = q.where(c.at < f.until)
    q = q.order_by(sa.desc(c.id)).limit(limit)
    return await all_rows(session, q)
