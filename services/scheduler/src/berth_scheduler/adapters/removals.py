"""Persistence of removals (``domain/removal.py``) and what a removal reads of the application's records."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_common.records import record_of
from berth_scheduler.adapters.tables import containers, deployments, removals, routes
from berth_scheduler.domain.removal import FINISHED, Phase, Removal
from berth_scheduler.domain.routing import RoutePlan

ACTIVE = sa.not_(removals.c.phase.in_([p.value for p in FINISHED]))


def removal_of(row: Any) -> Removal:
    return record_of(
        Removal,
        row,
        phase=Phase(row.phase),
        plan=RoutePlan.from_json(row.route_plan) if row.route_plan else None,
        containers=tuple(row.containers or ()),
        images=tuple(row.images or ()),
    )


def _values(r: Removal) -> dict[str, Any]:
    return {
        "team_id": r.team_id,
        "phase": r.phase.value,
        "attempt": r.attempt,
        "drain_grace_s": r.drain_grace_s,
        "route_plan": r.plan.to_json() if r.plan else None,
        "deadline_at": r.deadline_at,
        "drain_until": r.drain_until,
        "containers": list(r.containers),
        "images": list(r.images),
        "routes_removed": r.routes_removed,
        "containers_removed": r.containers_removed,
        "images_removed": r.images_removed,
        "delete_volumes": r.delete_volumes,
        "volumes_removed": r.volumes_removed,
        "reason": r.reason,
        "requested_at": r.requested_at,
        "finished_at": r.finished_at,
        "version": r.version,
    }


async def load(s: AsyncSession, application_id: str, *, lock: bool = False) -> Removal | None:
    q = sa.select(removals).where(removals.c.application_id == application_id)
    if lock:
        q = q.with_for_update()
    row = (await s.execute(q)).first()
    return removal_of(row) if row is not None else None


async def save(s: AsyncSession, r: Removal) -> None:
    values = _values(r)
    stmt = insert(removals).values(application_id=r.application_id, **values)
    await s.execute(stmt.on_conflict_do_update(index_elements=[removals.c.application_id], set_=values))


async def active_applications(s: AsyncSession) -> list[str]:
    rows = await s.execute(sa.select(removals.c.application_id).where(ACTIVE))
    return sorted(r.application_id for r in rows)


async def is_active(s: AsyncSession, application_id: str) -> bool:
    q = sa.select(removals.c.application_id).where(removals.c.application_id == application_id).where(ACTIVE)
    return (await s.execute(q)).first() is not None


async def application_known(s: AsyncSession, application_id: str) -> bool:
    """Whether the scheduler ever had a deployment or a route of the application."""
    for table in (deployments, routes):
        q = sa.select(sa.literal(1)).select_from(table).where(table.c.application_id == application_id).limit(1)
        if (await s.execute(q)).first() is not None:
            return True
    return False


async def built_images(s: AsyncSession, application_id: str) -> tuple[set[str], set[str]]:
    """(the images the application's builds produced, every name the application had)."""
    rows = await s.execute(
        sa.select(deployments.c.image, deployments.c.needs_build, deployments.c.spec).where(
            deployments.c.application_id == application_id
        )
    )
    built, app_names = set(), set()
    for image, needs_build, spec in rows:
        if needs_build and image:
            built.add(str(image))
        if isinstance(spec, dict) and spec.get("name"):
            app_names.add(str(spec["name"]))
    return built, app_names


async def deployed_specs(s: AsyncSession, application_id: str) -> list[Any]:
    """The stored snapshots (JSON) of the application's deployments: where its volumes may be."""
    rows = await s.execute(sa.select(deployments.c.spec).where(deployments.c.application_id == application_id))
    return [spec for (spec,) in rows if isinstance(spec, dict)]


async def forget_containers(s: AsyncSession, application_id: str) -> None:
    await s.execute(sa.delete(containers).where(containers.c.application_id == application_id))
