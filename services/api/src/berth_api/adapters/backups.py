"""Database access for backup destinations (their sealed secret keys stay bytes here, and only the functions
that say so return them), the projection of backups and restores, and databases' backup schedules."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.data_tables import backup_destinations, backup_schedules, backups, restores
from berth_api.adapters.rows import all_rows, first_row, one_row
from berth_api.adapters.tables import teams

DEST_SHOWN = [c for c in backup_destinations.c if c.name != "sealed"]


async def insert_destination(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    return await one_row(session, sa.insert(backup_destinations).values(**values).returning(*DEST_SHOWN))


async def list_destinations(session: AsyncSession, team_id: str) -> list[dict[str, Any]]:
    q = sa.select(*DEST_SHOWN).where(backup_destinations.c.team_id == team_id)
    return await all_rows(session, q.order_by(backup_destinations.c.name))


async def get_destination(
    session: AsyncSession, team_id: str, destination_id: str, *, sealed: bool = False, lock: bool = False
) -> dict[str, Any] | None:
    """One of the team's destinations; ``sealed``: with its sealed secret key."""
    c = backup_destinations.c
    q = sa.select(*(backup_destinations.c if sealed else DEST_SHOWN)).where(
        c.team_id == team_id, c.id == destination_id
    )
    return await first_row(session, q.with_for_update() if lock else q)


async def destinations_with_secrets(session: AsyncSession, team_id: str, ids: list[str]) -> list[dict[str, Any]]:
    q = sa.select(backup_destinations).where(
        backup_destinations.c.team_id == team_id, backup_destinations.c.id.in_(ids)
    )
    return await all_rows(session, q)


async def update_destination(session: AsyncSession, destination_id: str, values: dict[str, Any]) -> dict[str, Any]:
    q = (
        sa.update(backup_destinations)
        .where(backup_destinations.c.id == destination_id)
        .values(**values)
        .returning(*DEST_SHOWN)
    )
    return await one_row(session, q)


async def delete_destination(session: AsyncSession, destination_id: str) -> None:
    await session.execute(sa.delete(backup_destinations).where(backup_destinations.c.id == destination_id))


# --- backups ------------------------------------------------------------------------------------------


async def get_backup(
    session: AsyncSession, team_id: str, backup_id: str, *, lock: bool = False
) -> dict[str, Any] | None:
    q = sa.select(backups).where(backups.c.team_id == team_id, backups.c.id == backup_id)
    return await first_row(session, q.with_for_update() if lock else q)


async def backups_of(session: AsyncSession, team_id: str, database_id: str) -> list[dict[str, Any]]:
    q = sa.select(backups).where(backups.c.team_id == team_id, backups.c.database_id == database_id)
    return await all_rows(session, q.order_by(backups.c.created_at.desc(), backups.c.id.desc()))


async def backups_of_volume(
    session: AsyncSession, team_id: str, application_id: str, volume: str
) -> list[dict[str, Any]]:
    c = backups.c
    q = sa.select(backups).where(c.team_id == team_id, c.application_id == application_id, c.volume == volume)
    return await all_rows(session, q.order_by(c.created_at.desc(), c.id.desc()))


async def newest_succeeded(session: AsyncSession, team_id: str, database_id: str) -> dict[str, Any] | None:
    """The database's newest verified backup (None: it has none)."""
    c = backups.c
    q = sa.select(backups).where(c.team_id == team_id, c.database_id == database_id, c.state == "succeeded")
    return await first_row(session, q.order_by(c.finished_at.desc().nulls_last(), c.created_at.desc()).limit(1))


async def newest_succeeded_by_database(session: AsyncSession, team_id: str) -> dict[str, dict[str, Any]]:
    """Each of the team's databases' newest verified backup (id, state, finished_at), by database id, in one
    query (a list of databases shows them without a query per database)."""
    c = backups.c
    q = (
        sa.select(c.id, c.database_id, c.state, c.finished_at)
        .where(c.team_id == team_id, c.state == "succeeded")
        .ext(distinct_on(c.database_id))
        .order_by(c.database_id, c.finished_at.desc().nulls_last(), c.created_at.desc())
    )
    return {row["database_id"]: row for row in await all_rows(session, q)}


async def insert_backup(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    return await one_row(session, sa.insert(backups).values(**values).returning(*backups.c))


async def update_backup(session: AsyncSession, backup_id: str, values: dict[str, Any]) -> dict[str, Any]:
    q = sa.update(backups).where(backups.c.id == backup_id).values(**values).returning(*backups.c)
    return await one_row(session, q)


# --- restores -----------------------------------------------------------------------------------------


async def insert_restore(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    return await one_row(session, sa.insert(restores).values(**values).returning(*restores.c))


async def get_restore(
    session: AsyncSession, team_id: str | None, restore_id: str, *, lock: bool = False
) -> dict[str, Any] | None:
    q = sa.select(restores).where(restores.c.id == restore_id)
    if team_id is not None:
        q = q.where(restores.c.team_id == team_id)
    return await first_row(session, q.with_for_update() if lock else q)


async def restores_of(
    session: AsyncSession, team_id: str, database_id: str, limit: int, before: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The database's restores (not a volume's), newest first: ``limit`` of them, those older than ``before``
    (a restore of the list, the last of the previous page) when it is given."""
    c = restores.c
    q = sa.select(restores).where(c.team_id == team_id, c.database_id == database_id, c.application_id.is_(None))
    if before is not None:
        q = q.where(
            sa.tuple_(c.created_at, c.id) < sa.tuple_(sa.literal(before["created_at"]), sa.literal(before["id"]))
        )
    return await all_rows(session, q.order_by(c.created_at.desc(), c.id.desc()).limit(limit))


async def restores_waiting(session: AsyncSession, column: str, value: str, state: str) -> list[dict[str, Any]]:
    """Restores in ``state`` whose ``column`` (``pre_backup_id``, ``target_database_id``) is ``value``."""
    q = sa.select(restores).where(restores.c[column] == value, restores.c.state == state)
    return await all_rows(session, q.with_for_update())


async def update_restore(session: AsyncSession, restore_id: str, values: dict[str, Any]) -> dict[str, Any]:
    q = sa.update(restores).where(restores.c.id == restore_id).values(**values).returning(*restores.c)
    return await one_row(session, q)


# --- schedules ----------------------------------------------------------------------------------------


async def get_schedule(session: AsyncSession, team_id: str, database_id: str) -> dict[str, Any] | None:
    c = backup_schedules.c
    return await first_row(
        session, sa.select(backup_schedules).where(c.team_id == team_id, c.database_id == database_id)
    )


async def schedules_of(session: AsyncSession, team_id: str) -> list[dict[str, Any]]:
    return await all_rows(session, sa.select(backup_schedules).where(backup_schedules.c.team_id == team_id))


async def volume_schedules_of(session: AsyncSession, team_id: str, application_id: str) -> list[dict[str, Any]]:
    c = backup_schedules.c
    return await all_rows(
        session, sa.select(backup_schedules).where(c.team_id == team_id, c.application_id == application_id)
    )


async def put_schedule(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    from sqlalchemy.dialects.postgresql import insert

    q = insert(backup_schedules).values(**values)
    q = q.on_conflict_do_update(index_elements=["database_id"], set_={k: q.excluded[k] for k in values})
    return await one_row(session, q.returning(*backup_schedules.c))


async def delete_schedule(session: AsyncSession, database_id: str) -> None:
    await session.execute(sa.delete(backup_schedules).where(backup_schedules.c.database_id == database_id))


async def team_exists(session: AsyncSession, team_id: str) -> bool:
    return (await session.execute(sa.select(teams.c.id).where(teams.c.id == team_id))).first() is not None
