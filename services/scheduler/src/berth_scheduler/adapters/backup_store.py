"""The scheduler's records of backups and restores (``tables.backups``, ``backup_objects``, ``restores``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_scheduler.adapters.tables import backup_objects, backups, restores
from berth_scheduler.domain.backups import Stored


async def lock_backup(session: AsyncSession, backup_id: str) -> dict[str, Any] | None:
    row = (await session.execute(sa.select(backups).where(backups.c.id == backup_id).with_for_update())).first()
    return dict(row._mapping) if row else None


async def insert_backup(session: AsyncSession, **values: Any) -> None:
    await session.execute(insert(backups).values(**values).on_conflict_do_nothing())


async def update_backup(session: AsyncSession, backup_id: str, **values: Any) -> None:
    await session.execute(sa.update(backups).where(backups.c.id == backup_id).values(**values))


async def add_upload(session: AsyncSession, backup_id: str, entry: list[Any]) -> None:
    row = await lock_backup(session, backup_id)
    if row is not None:
        await update_backup(session, backup_id, uploads=[*row["uploads"], entry])


async def stale_backups(session: AsyncSession, before: float) -> list[str]:
    """Running backups whose process stopped beating (locked: another scheduler skips them)."""
    query = (
        sa.select(backups.c.id)
        .where(backups.c.state == "running", backups.c.heartbeat_at < before)
        .with_for_update(skip_locked=True)
    )
    return [r.id for r in (await session.execute(query)).all()]


async def record_objects(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(backup_objects).values(rows).on_conflict_do_nothing())


async def kept_objects(session: AsyncSession, database_id: str, destination: str) -> list[Stored]:
    """The verified copies of the database's backups in ``destination`` that retention has not deleted."""
    query = sa.select(backup_objects.c.key, backup_objects.c.created_at).where(
        backup_objects.c.database_id == database_id,
        backup_objects.c.destination == destination,
        backup_objects.c.pruned_at.is_(None),
    )
    return [Stored(r.key, r.created_at) for r in (await session.execute(query)).all()]


async def mark_pruned(session: AsyncSession, destination: str, keys: list[str], when: float) -> None:
    if keys:
        await session.execute(
            sa.update(backup_objects)
            .where(backup_objects.c.destination == destination, backup_objects.c.key.in_(keys))
            .values(pruned_at=when)
        )


async def claim_restore(session: AsyncSession, restore_id: str, backup_id: str, now: float) -> str | None:
    """Record a new restore as running: None; for one seen before, its state (locked)."""
    result = await session.execute(
        insert(restores)
        .values(id=restore_id, backup_id=backup_id, state="running", started_at=now)
        .on_conflict_do_nothing()
        .returning(restores.c.id)
    )
    if result.first() is not None:
        return None
    query = sa.select(restores.c.state).where(restores.c.id == restore_id).with_for_update()
    return str((await session.execute(query)).scalar_one())


async def finish_restore(session: AsyncSession, restore_id: str, state: str, reason: str | None, now: float) -> None:
    await session.execute(
        sa.update(restores).where(restores.c.id == restore_id).values(state=state, reason=reason, finished_at=now)
    )
