"""Database access for teams' backup keys (the sealed key stays bytes here)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.data_tables import backup_keys
from berth_api.adapters.rows import first_row


async def get_key(session: AsyncSession, team_id: str) -> dict[str, Any] | None:
    """The team's key row (``id``, ``key_id``, ``sealed``, ``created_at``), or None when it has none yet."""
    return await first_row(session, sa.select(backup_keys).where(backup_keys.c.id == team_id))


async def add_key(session: AsyncSession, team_id: str, key_id: str, sealed: bytes) -> None:
    """Keep the team's key unless one was made meanwhile (the first one made stays the team's key)."""
    q = insert(backup_keys).values(id=team_id, key_id=key_id, sealed=sealed).on_conflict_do_nothing()
    await session.execute(q)
