"""Persistence of the image pruning due after an application's last success (``tables.prunes_due``): a
pruning given up for the application's next work, or cut short by a restart, is resumed from here."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_scheduler.adapters.tables import prunes_due


@dataclass(frozen=True)
class Due:
    """A pruning due: after ``deployment_id`` succeeded, running ``image``."""

    deployment_id: str
    image: str | None


async def put(session: AsyncSession, application_id: str, deployment_id: str, image: str | None) -> None:
    """The pruning after ``deployment_id``'s success is due (it replaces one due after an older success)."""
    values = {"deployment_id": deployment_id, "image": image}
    stmt = insert(prunes_due).values(application_id=application_id, **values)
    await session.execute(stmt.on_conflict_do_update(index_elements=[prunes_due.c.application_id], set_=values))


async def get(session: AsyncSession, application_id: str) -> Due | None:
    q = sa.select(prunes_due).where(prunes_due.c.application_id == application_id)
    row = (await session.execute(q)).first()
    return None if row is None else Due(row.deployment_id, row.image)


async def done(session: AsyncSession, application_id: str, deployment_id: str) -> None:
    """The pruning after ``deployment_id`` ran (one due after a later success meanwhile stays due)."""
    await session.execute(
        sa.delete(prunes_due).where(
            prunes_due.c.application_id == application_id, prunes_due.c.deployment_id == deployment_id
        )
    )


async def applications(session: AsyncSession) -> list[str]:
    """The applications with a pruning due."""
    return list((await session.execute(sa.select(prunes_due.c.application_id))).scalars())
