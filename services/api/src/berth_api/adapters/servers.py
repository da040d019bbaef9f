"""Database access for a team's servers (the sealed private key stays bytes here). Scoped by team."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.rows import all_rows, first_row, one_row
from berth_api.adapters.tables import servers

SHOWN = [c for c in servers.c if c.name != "sealed"]  # every column but the sealed private key


async def insert_server(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    return await one_row(session, sa.insert(servers).values(**values).returning(*SHOWN))


async def list_servers(session: AsyncSession, team_id: str) -> list[dict[str, Any]]:
    q = sa.select(*SHOWN).where(servers.c.team_id == team_id).order_by(servers.c.name)
    return await all_rows(session, q)


async def get_server(
    session: AsyncSession, team_id: str, server_id: str, *, with_key: bool = False, lock: bool = False
) -> dict[str, Any] | None:
    q = sa.select(*(servers.c if with_key else SHOWN)).where(servers.c.team_id == team_id, servers.c.id == server_id)
    if lock:
        q = q.with_for_update()
    return await first_row(session, q)


async def find_server(session: AsyncSession, team_id: str, id_or_name: str) -> dict[str, Any] | None:
    """The team's server with this id, or else with this name."""
    q = sa.select(*SHOWN).where(
        servers.c.team_id == team_id, sa.or_(servers.c.id == id_or_name, servers.c.name == id_or_name)
    )
    rows = await all_rows(session, q.order_by((servers.c.id == id_or_name).desc()))
    return rows[0] if rows else None


async def update_server(session: AsyncSession, server_id: str, values: dict[str, Any]) -> dict[str, Any]:
    q = sa.update(servers).where(servers.c.id == server_id).values(**values).returning(*SHOWN)
    return await one_row(session, q)


async def delete_server(session: AsyncSession, team_id: str, server_id: str) -> bool:
    q = sa.delete(servers).where(servers.c.team_id == team_id, servers.c.id == server_id).returning(servers.c.id)
    return (await session.execute(q)).first() is not None


async def lock_for_answer(session: AsyncSession, server_id: str, team_id: str) -> dict[str, Any] | None:
    """The server an answer of the scheduler concerns (any team's; the answer names it), locked."""
    q = sa.select(*SHOWN).where(servers.c.id == server_id, servers.c.team_id == team_id).with_for_update()
    return await first_row(session, q)


async def next_revision(session: AsyncSession, server_id: str) -> dict[str, Any] | None:
    """Take the server's next announcement revision; the row with its sealed key (None: removed meanwhile)."""
    q = (
        sa.update(servers)
        .where(servers.c.id == server_id)
        .values(revision=servers.c.revision + 1)
        .returning(*servers.c)
    )
    return await first_row(session, q)


async def servers_named(session: AsyncSession, team_id: str, refs: list[str]) -> list[dict[str, Any]]:
    """The team's servers whose id or name is one of ``refs`` (each row's id, name and state)."""
    q = sa.select(servers.c.id, servers.c.name, servers.c.state).where(
        servers.c.team_id == team_id, sa.or_(servers.c.id.in_(refs), servers.c.name.in_(refs))
    )
    return await all_rows(session, q)
