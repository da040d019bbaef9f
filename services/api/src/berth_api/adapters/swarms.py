"""Database access for a team's Swarms. Scoped by team."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.rows import all_rows, first_row, one_row
from berth_api.adapters.tables import swarms


async def insert_swarm(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    return await one_row(session, sa.insert(swarms).values(**values).returning(*swarms.c))


async def list_swarms(session: AsyncSession, team_id: str) -> list[dict[str, Any]]:
    return await all_rows(session, sa.select(swarms).where(swarms.c.team_id == team_id).order_by(swarms.c.name))


async def get_swarm(session: AsyncSession, team_id: str, swarm_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    q = sa.select(swarms).where(swarms.c.team_id == team_id, swarms.c.id == swarm_id)
    return await first_row(session, q.with_for_update() if lock else q)


async def update_swarm(session: AsyncSession, swarm_id: str, values: dict[str, Any]) -> dict[str, Any]:
    return await one_row(
        session, sa.update(swarms).where(swarms.c.id == swarm_id).values(**values).returning(*swarms.c)
    )


async def delete_swarm(session: AsyncSession, swarm_id: str) -> None:
    await session.execute(sa.delete(swarms).where(swarms.c.id == swarm_id))


async def swarms_with_servers(session: AsyncSession, team_id: str) -> list[dict[str, Any]]:
    """The team's Swarms with the servers they name (to refuse a server in two Swarms)."""
    q = sa.select(swarms.c.id, swarms.c.name, swarms.c.manager_server_id, swarms.c.worker_server_ids)
    return await all_rows(session, q.where(swarms.c.team_id == team_id))
