"""Persistence of the autoscaling policies (``usecases/autoscale.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_metrics.adapters.tables import autoscale_policies as t


@dataclass(frozen=True)
class StoredPolicy:
    application_id: str
    service: str
    team_id: str
    policy: dict[str, Any]
    last_change_at: float | None


async def record(
    s: AsyncSession, application_id: str, service: str, team_id: str, policy: dict[str, Any] | None, revision: int
) -> bool:
    """Keep the policy unless a later revision is known; whether it was kept."""
    stmt = insert(t).values(
        application_id=application_id, service=service, team_id=team_id, policy=policy, revision=revision
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.application_id, t.c.service],
        set_={"policy": stmt.excluded.policy, "revision": stmt.excluded.revision, "team_id": stmt.excluded.team_id},
        where=t.c.revision < stmt.excluded.revision,
    )
    res = await s.execute(stmt.returning(t.c.revision))
    return res.first() is not None


async def active(s: AsyncSession) -> list[StoredPolicy]:
    rows = await s.execute(sa.select(t).where(t.c.policy.is_not(None)).order_by(t.c.application_id, t.c.service))
    return [StoredPolicy(r.application_id, r.service, r.team_id, dict(r.policy), r.last_change_at) for r in rows]


async def changed_at(s: AsyncSession, application_id: str, service: str, at: float) -> None:
    await s.execute(
        sa.update(t).where(t.c.application_id == application_id, t.c.service == service).values(last_change_at=at)
    )
