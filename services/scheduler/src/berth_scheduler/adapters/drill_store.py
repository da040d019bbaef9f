"""What a restore drill reads of the scheduler's backup records (``tables.backups``, ``backup_objects``)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from berth_scheduler.adapters.tables import backup_objects, backups


@dataclass(frozen=True)
class Newest:
    """The newest verified copy of a database's backups in one destination."""

    backup_id: str
    key: str
    sha256: str
    compression: str


async def newest_object(session: AsyncSession, database_id: str, destination: str, engine: str) -> Newest | None:
    """The newest copy in ``destination`` of a succeeded ``engine`` backup of ``database_id`` that retention
    kept."""
    query = (
        sa.select(backup_objects.c.backup_id, backup_objects.c.key, backup_objects.c.sha256, backups.c.compression)
        .join(backups, backups.c.id == backup_objects.c.backup_id)
        .where(
            backup_objects.c.database_id == database_id,
            backup_objects.c.destination == destination,
            backup_objects.c.pruned_at.is_(None),
            backups.c.state == "succeeded",
            backups.c.engine == engine,
        )
        .order_by(backup_objects.c.created_at.desc())
        .limit(1)
    )
    row = (await session.execute(query)).first()
    return Newest(row.backup_id, row.key, row.sha256, row.compression) if row else None
