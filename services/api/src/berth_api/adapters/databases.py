"""Database access for a team's one-click databases and the applications' links to them (the sealed
passwords stay bytes here, and only the functions that say so return them)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.data_tables import database_links, databases
from berth_api.adapters.rows import all_rows, first_row, one_row

SHOWN = [
    *(c for c in databases.c if c.name not in ("sealed", "pending")),
    databases.c.pending.isnot(None).label("rotation_pending"),
]


async def insert_database(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    return await one_row(session, sa.insert(databases).values(**values).returning(*SHOWN))


async def list_databases(session: AsyncSession, team_id: str) -> list[dict[str, Any]]:
    q = sa.select(*SHOWN).where(databases.c.team_id == team_id).order_by(databases.c.name)
    return await all_rows(session, q)


async def get_database(
    session: AsyncSession, team_id: str, database_id: str, *, sealed: bool = False, lock: bool = False
) -> dict[str, Any] | None:
    """One of the team's databases; ``sealed``: with its sealed password (and pending one)."""
    q = sa.select(*([*databases.c, SHOWN[-1]] if sealed else SHOWN)).where(
        databases.c.team_id == team_id, databases.c.id == database_id
    )
    return await first_row(session, q.with_for_update() if lock else q)


async def update_database(session: AsyncSession, database_id: str, values: dict[str, Any]) -> dict[str, Any]:
    q = sa.update(databases).where(databases.c.id == database_id).values(**values).returning(*SHOWN)
    return await one_row(session, q)


async def delete_database(session: AsyncSession, database_id: str) -> None:
    await session.execute(sa.delete(databases).where(databases.c.id == database_id))


async def public_ports_on(session: AsyncSession, server_id: str) -> list[tuple[str, int]]:
    """(database id, port) of every public database on the server, whatever its team (a port is the
    server's)."""
    q = sa.select(databases.c.id, databases.c.public).where(
        databases.c.server_id == server_id, databases.c.public.isnot(None)
    )
    return [(r.id, int(r.public["port"])) for r in (await session.execute(q)).all() if r.public]


# --- links ---------------------------------------------------------------------------------------------


async def insert_link(session: AsyncSession, application_id: str, database_id: str, variable: str) -> dict[str, Any]:
    q = (
        sa.insert(database_links)
        .values(application_id=application_id, database_id=database_id, variable=variable)
        .returning(*database_links.c)
    )
    return await one_row(session, q)


async def delete_link(session: AsyncSession, application_id: str, database_id: str) -> bool:
    q = (
        sa.delete(database_links)
        .where(database_links.c.application_id == application_id, database_links.c.database_id == database_id)
        .returning(database_links.c.variable)
    )
    return (await session.execute(q)).first() is not None


async def links_of_application(session: AsyncSession, application_id: str) -> list[dict[str, Any]]:
    q = (
        sa.select(*database_links.c)
        .where(database_links.c.application_id == application_id)
        .order_by(database_links.c.variable)
    )
    return await all_rows(session, q)


async def linked_databases(session: AsyncSession, application_id: str) -> list[dict[str, Any]]:
    """The application's links joined with their databases, sealed passwords included (for a snapshot)."""
    q = (
        sa.select(database_links.c.variable, *databases.c)
        .select_from(database_links.join(databases, databases.c.id == database_links.c.database_id))
        .where(database_links.c.application_id == application_id)
        .order_by(database_links.c.variable)
    )
    return await all_rows(session, q)


async def applications_linked_to(session: AsyncSession, database_id: str) -> list[str]:
    q = (
        sa.select(database_links.c.application_id)
        .where(database_links.c.database_id == database_id)
        .order_by(database_links.c.application_id)
    )
    return [r.application_id for r in (await session.execute(q)).all()]
