"""Database access for restore drills (the api's projection of ``evt.backup.drill_*``) and databases' drill
schedules."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.data_tables import drill_schedules, drills
from berth_api.adapters.rows import all_rows, first_row, one_row


async def insert_drill(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    return await one_row(session, sa.insert(drills).values(**values).returning(*drills.c))


async def get_drill(session: AsyncSession, team_id: str, drill_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    q = sa.select(drills).where(drills.c.team_id == team_id, drills.c.id == drill_id)
    return await first_row(session, q.with_for_update() if lock else q)


async def drills_of(session: AsyncSession, team_id: str, database_id: str) -> list[dict[str, Any]]:
    q = sa.select(drills).where(drills.c.team_id == team_id, drills.c.database_id == database_id)
    return await all_rows(session, q.order_by(drills.c.created_at.desc(), drills.c.id.desc()))


async def newest_finished(session: AsyncSession, team_id: str, database_id: str) -> dict[str, Any] | None:
    c = drills.c
    q = sa.select(drills).where(c.team_id == team_id, c.database_id == database_id, c.finished_at.is_not(None))
    return await first_row(session, q.order_by(c.finished_at.desc()).limit(1))


async def update_drill(session: AsyncSession, drill_id: str, values: dict[str, Any]) -> dict[str, Any]:
    q = sa.update(drills).where(drills.c.id == drill_id).values(**values).returning(*drills.c)
    return await one_row(session, q)


async def get_schedule(session: AsyncSession, team_id: str, database_id: str) -> dict[str, Any] | None:
    c = drill_schedules.c
    return await first_row(
        session, sa.select(drill_schedules).where(c.team_id == team_id, c.database_id == database_id)
    )


async def schedules_using(session: AsyncSession, team_id: str, destination_id: str) -> list[dict[str, Any]]:
    c = drill_schedules.c
    return await all_rows(
        session, sa.select(drill_schedules).where(c.team_id == team_id, c.destination_id == destination_id)
    )


async def put_schedule(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    from sqlalchemy.dialects.postgresql import insert

    q = insert(drill_schedules).values(**values)
    q = q.on_conflict_do_update(index_elements=["database_id"], set_={k: q.excluded[k] for k in values})
    return await one_row(session, q.returning(*drill_schedules.c))


async def delete_schedule(session: AsyncSession, database_id: str) -> None:
    await session.execute(sa.delete(drill_schedules).where(drill_schedules.c.database_id == database_id))
