"""Persistence of the servers known to be unreachable (``tables.servers_down``, ``domain/server_state.py``)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_scheduler.adapters.tables import servers_down
from berth_scheduler.domain.server_state import Down


async def get(session: AsyncSession, server_id: str) -> Down | None:
    row = (await session.execute(sa.select(servers_down).where(servers_down.c.server_id == server_id))).first()
    return None if row is None else Down(row.server_id, row.outage_id, row.down_since, row.error)


async def put(session: AsyncSession, server_id: str, down: Down | None) -> None:
    """Record the server's new state (None: not known to be down)."""
    if down is None:
        await session.execute(sa.delete(servers_down).where(servers_down.c.server_id == server_id))
        return
    values = {"outage_id": down.outage_id, "down_since": down.since, "error": down.error}
    stmt = insert(servers_down).values(server_id=server_id, **values)
    await session.execute(stmt.on_conflict_do_update(index_elements=[servers_down.c.server_id], set_=values))
