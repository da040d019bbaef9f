"""The volume data each deployment moves (``volume_moves``): recorded before the old replicas stop, each
copy's progress, and what a failed deployment's undo finds."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_scheduler.adapters.tables import volume_moves as t
from berth_scheduler.domain.volume_moves import Move


async def record(s: AsyncSession, deployment_id: str, moves: list[tuple[Move, bool]]) -> None:
    """Record the planned moves with whether each made its target's volume; one recorded stays as it is."""
    if not moves:
        return
    rows = [
        {
            "deployment_id": deployment_id,
            "volume": m.volume,
            "target": m.target,
            "source": m.source,
            "services": list(m.services),
            "target_made": made,
        }
        for m, made in moves
    ]
    await s.execute(insert(t).values(rows).on_conflict_do_nothing())


async def moves_of(s: AsyncSession, deployment_id: str) -> list[Any]:
    """The deployment's recorded moves, in a stable order."""
    q = sa.select(t).where(t.c.deployment_id == deployment_id).order_by(t.c.volume, t.c.target)
    return list((await s.execute(q)).all())


async def mark(s: AsyncSession, deployment_id: str, volume: str, target: str, **values: Any) -> None:
    """Set a move's state (``attempts`` grows by one when the state is ``copying``)."""
    if values.get("state") == "copying":
        values["attempts"] = t.c.attempts + 1
    q = sa.update(t).where(t.c.deployment_id == deployment_id, t.c.volume == volume, t.c.target == target)
    await s.execute(q.values(**values))
