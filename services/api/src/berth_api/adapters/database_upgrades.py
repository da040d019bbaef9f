"""Database access for databases' minor-version upgrades (``data_tables.database_upgrades``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.data_tables import database_upgrades as t
from berth_api.adapters.rows import all_rows, first_row, one_row

ACTIVE = ("backing_up", "upgrading")


async def insert_upgrade(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    return await one_row(session, sa.insert(t).values(**values).returning(*t.c))


async def update_upgrade(session: AsyncSession, upgrade_id: str, values: dict[str, Any]) -> dict[str, Any]:
    return await one_row(session, sa.update(t).where(t.c.id == upgrade_id).values(**values).returning(*t.c))


async def get_upgrade(session: AsyncSession, upgrade_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    q = sa.select(t).where(t.c.id == upgrade_id)
    return await first_row(session, q.with_for_update() if lock else q)


async def active_upgrade(session: AsyncSession, database_id: str) -> dict[str, Any] | None:
    """The database's upgrade still under way (at most one), or None."""
    return await first_row(session, sa.select(t).where(t.c.database_id == database_id, t.c.state.in_(ACTIVE)))


async def waiting_for_backup(session: AsyncSession, backup_id: str) -> list[dict[str, Any]]:
    q = sa.select(t).where(t.c.backup_id == backup_id, t.c.state == "backing_up").with_for_update()
    return await all_rows(session, q)


async def upgrades_of(session: AsyncSession, team_id: str, database_id: str) -> list[dict[str, Any]]:
    q = sa.select(t).where(t.c.team_id == team_id, t.c.database_id == database_id).order_by(t.c.created_at.desc())
    return await all_rows(session, q.limit(100))
