"""Persistence of schedules (``usecases/schedules.py``): one row per schedule, locked while it changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_scheduler.adapters.tables import schedules


async def locked(session: AsyncSession, schedule_id: str, *, skip_locked: bool = False) -> Any:
    """The schedule's row, locked until the transaction ends (None: none; with ``skip_locked`` also when
    another transaction holds it)."""
    stmt = sa.select(schedules).where(schedules.c.id == schedule_id).with_for_update(skip_locked=skip_locked)
    return (await session.execute(stmt)).first()


async def put(session: AsyncSession, values: dict[str, Any], *, exists: bool = False) -> None:
    """Insert the schedule, or replace what ``values`` names of it (``exists``: only that). A row another
    transaction inserted meanwhile is replaced only by a newer revision."""
    if exists:
        await session.execute(sa.update(schedules).where(schedules.c.id == values["id"]).values(**values))
        return
    stmt = insert(schedules).values(**values)
    changes = {k: stmt.excluded[k] for k in values if k != "id"}
    newer = schedules.c.revision < stmt.excluded.revision
    await session.execute(stmt.on_conflict_do_update(index_elements=[schedules.c.id], set_=changes, where=newer))


async def due(session: AsyncSession, now: datetime, limit: int = 100) -> list[str]:
    """The ids of the schedules due at ``now``, the most overdue first."""
    stmt = (
        sa.select(schedules.c.id)
        .where(sa.not_(schedules.c.removed), schedules.c.next_due <= now)
        .order_by(schedules.c.next_due)
        .limit(limit)
    )
    return [str(i) for i in (await session.execute(stmt)).scalars()]


async def ran(
    session: AsyncSession, schedule_id: str, *, due: datetime, command_id: str, at: datetime, next_due: datetime
) -> None:
    await session.execute(
        sa.update(schedules)
        .where(schedules.c.id == schedule_id)
        .values(next_due=next_due, last_due=due, last_command_id=command_id, last_fired_at=at)
    )
