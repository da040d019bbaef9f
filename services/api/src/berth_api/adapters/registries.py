"""Database access for a team's image registries (their sealed passwords stay bytes here)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.rows import all_rows, first_row, one_row
from berth_api.adapters.tables import registries

SHOWN = [c for c in registries.c if c.name != "sealed"]  # every column but the sealed password


async def insert_registry(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    return await one_row(session, sa.insert(registries).values(**values).returning(*SHOWN))


async def list_registries(session: AsyncSession, team_id: str) -> list[dict[str, Any]]:
    q = sa.select(*SHOWN).where(registries.c.team_id == team_id).order_by(registries.c.name)
    return await all_rows(session, q)


async def get_registry(session: AsyncSession, team_id: str, registry_id: str) -> dict[str, Any] | None:
    q = sa.select(*SHOWN).where(registries.c.team_id == team_id, registries.c.id == registry_id)
    return await first_row(session, q)


async def update_registry(
    session: AsyncSession, team_id: str, registry_id: str, values: dict[str, Any]
) -> dict[str, Any] | None:
    q = (
        sa.update(registries)
        .where(registries.c.team_id == team_id, registries.c.id == registry_id)
        .values(**values)
        .returning(*SHOWN)
    )
    return await first_row(session, q)


async def delete_registry(session: AsyncSession, team_id: str, registry_id: str) -> bool:
    q = (
        sa.delete(registries)
        .where(registries.c.team_id == team_id, registries.c.id == registry_id)
        .returning(registries.c.id)
    )
    return (await session.execute(q)).first() is not None


async def push_registry(session: AsyncSession, team_id: str) -> dict[str, Any] | None:
    """The team's push target for builds with its sealed password, if it marked one."""
    q = sa.select(registries).where(registries.c.team_id == team_id, registries.c.push.is_(True))
    return await first_row(session, q)


async def credentials_among(session: AsyncSession, team_id: str, hosts: list[str]) -> list[dict[str, Any]]:
    """The team's registries for any of ``hosts`` with their sealed passwords (a build's base images)."""
    if not hosts:
        return []
    q = sa.select(registries).where(registries.c.team_id == team_id, registries.c.host.in_(hosts))
    return await all_rows(session, q.order_by(registries.c.host))


async def credentials_for(session: AsyncSession, team_id: str, host: str) -> dict[str, Any] | None:
    """The team's registry for ``host`` with its sealed password (for a deployment's snapshot only)."""
    q = sa.select(registries).where(registries.c.team_id == team_id, registries.c.host == host)
    return await first_row(session, q)
