"""Persistence of scales (``domain/scaling.py``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_scheduler.adapters.tables import scales
from berth_scheduler.domain.scaling import FINISHED, Phase, Scale, Slot

ACTIVE = sa.not_(scales.c.phase.in_([p.value for p in FINISHED]))


def scale_of(row: Any) -> Scale:
    return Scale(
        id=row.id,
        seq=int(row.seq),
        application_id=row.application_id,
        team_id=row.team_id,
        trigger=row.trigger,
        reason=row.reason,
        targets={str(k): int(v) for k, v in (row.targets or {}).items()},
        drain_grace_s=float(row.drain_grace_s),
        phase=Phase(row.phase),
        deployment_id=row.deployment_id,
        before={str(k): int(v) for k, v in (row.before or {}).items()},
        add=tuple(Slot.from_json(s) for s in row.add or ()),
        remove=tuple(Slot.from_json(s) for s in row.remove or ()),
        deadline_at=row.deadline_at,
        drain_until=row.drain_until,
        failure=row.failure,
        finished_at=row.finished_at,
        version=int(row.version),
    )


def _values(s: Scale) -> dict[str, Any]:
    return {
        "phase": s.phase.value,
        "deployment_id": s.deployment_id,
        "before": dict(s.before),
        "add": [slot.to_json() for slot in s.add],
        "remove": [slot.to_json() for slot in s.remove],
        "deadline_at": s.deadline_at,
        "drain_until": s.drain_until,
        "failure": s.failure,
        "finished_at": s.finished_at,
        "version": s.version,
    }


async def insert_scale(s: AsyncSession, values: dict[str, Any]) -> bool:
    """Record a new scale (``pending``); False when its request id is known already."""
    row = {"phase": Phase.PENDING.value, "before": {}, "add": [], "remove": [], "version": 0, **values}
    res = await s.execute(insert(scales).values(**row).on_conflict_do_nothing().returning(scales.c.id))
    return res.scalar() is not None


async def current(s: AsyncSession, application_id: str, *, lock: bool = False) -> Scale | None:
    """The application's oldest unfinished scale (scales of one application run one after the other)."""
    q = sa.select(scales).where(scales.c.application_id == application_id, ACTIVE).order_by(scales.c.seq).limit(1)
    if lock:
        q = q.with_for_update()
    row = (await s.execute(q)).first()
    return scale_of(row) if row is not None else None


async def load(s: AsyncSession, scale_id: str) -> Scale | None:
    row = (await s.execute(sa.select(scales).where(scales.c.id == scale_id))).first()
    return scale_of(row) if row is not None else None


async def save(s: AsyncSession, scale: Scale) -> None:
    await s.execute(sa.update(scales).where(scales.c.id == scale.id).values(**_values(scale)))


async def is_active(s: AsyncSession, application_id: str) -> bool:
    q = sa.select(sa.literal(1)).where(scales.c.application_id == application_id, ACTIVE).limit(1)
    return (await s.execute(q)).first() is not None


async def active_applications(s: AsyncSession) -> list[str]:
    rows = await s.execute(sa.select(scales.c.application_id).where(ACTIVE).distinct())
    return sorted(r.application_id for r in rows)
