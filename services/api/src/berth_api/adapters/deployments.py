"""Database access for deployments: what was asked (sealed snapshot) and the projection of its status."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.rows import all_rows, as_dict, first_row, one_row
from berth_api.adapters.tables import deployments
from berth_api.domain.deployments import Projection
from berth_common.catalogue import StartDeployment, ValidateServer
from berth_common.db.tables import outbox
from berth_common.records import record_of

# Commands whose JSON carries secret values in the clear (the scheduler needs them): kept in the outbox
# only until published.
SECRET_SUBJECTS = (StartDeployment.TYPE, ValidateServer.TYPE)


async def next_number(session: AsyncSession, application_id: str) -> int:
    """The application's next deployment number (call with the application row locked)."""
    q = sa.select(sa.func.coalesce(sa.func.max(deployments.c.number), 0)).where(
        deployments.c.application_id == application_id
    )
    return int((await session.execute(q)).scalar_one()) + 1


async def insert_deployment(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    return await one_row(session, sa.insert(deployments).values(**values).returning(*deployments.c))


async def get_deployment(session: AsyncSession, team_id: str, deployment_id: str) -> dict[str, Any] | None:
    q = sa.select(deployments).where(deployments.c.id == deployment_id, deployments.c.team_id == team_id)
    return await first_row(session, q)


async def get_deployment_any(session: AsyncSession, deployment_id: str) -> dict[str, Any] | None:
    return await first_row(session, sa.select(deployments).where(deployments.c.id == deployment_id))


async def lock_deployment(session: AsyncSession, deployment_id: str) -> dict[str, Any] | None:
    """For bus handlers: the row, locked until the transaction ends (events of one deployment serialise)."""
    q = sa.select(deployments).where(deployments.c.id == deployment_id).with_for_update()
    return await first_row(session, q)


async def list_deployments(
    session: AsyncSession, team_id: str, application_id: str, limit: int, before: int | None = None
) -> list[dict[str, Any]]:
    c = deployments.c
    q = sa.select(deployments).where(c.application_id == application_id, c.team_id == team_id)
    if before is not None:
        q = q.where(c.number < before)
    q = q.order_by(sa.desc(c.number)).limit(limit)
    return await all_rows(session, q)


async def succeeded(session: AsyncSession, application_id: str, limit: int = 2) -> list[dict[str, Any]]:
    """The application's succeeded deployments, the most recently finished first (the first is live)."""
    c = deployments.c
    q = (
        sa.select(deployments)
        .where(c.application_id == application_id, c.state == "succeeded")
        .order_by(sa.desc(c.finished_at), sa.desc(c.number))
        .limit(limit)
    )
    return await all_rows(session, q)


async def live_of(session: AsyncSession, application_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The live (last succeeded) deployment of each application that has one."""
    if not application_ids:
        return {}
    c = deployments.c
    q = (
        sa.select(deployments)
        .ext(distinct_on(c.application_id))
        .where(c.application_id.in_(application_ids), c.state == "succeeded")
        .order_by(c.application_id, sa.desc(c.finished_at), sa.desc(c.number))
    )
    return {r.application_id: as_dict(r) for r in (await session.execute(q)).all()}


async def newest_of(session: AsyncSession, application_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The newest deployment (highest number, any state) of each application that has one."""
    if not application_ids:
        return {}
    c = deployments.c
    cols = (c.application_id, c.id, c.number, c.kind, c.state, c.created_at, c.finished_at)
    q = (
        sa.select(*cols)
        .ext(distinct_on(c.application_id))
        .where(c.application_id.in_(application_ids))
        .order_by(c.application_id, sa.desc(c.number))
    )
    return {r.application_id: as_dict(r) for r in (await session.execute(q)).all()}


def projection_of(row: dict[str, Any]) -> Projection:
    return record_of(Projection, row)


async def save_projection(session: AsyncSession, deployment_id: str, p: Projection, **extra: Any) -> None:
    await session.execute(
        sa.update(deployments)
        .where(deployments.c.id == deployment_id)
        .values(**asdict(p), updated_at=sa.func.now(), **extra)
    )


async def update_fields(session: AsyncSession, deployment_id: str, **values: Any) -> None:
    await session.execute(
        sa.update(deployments).where(deployments.c.id == deployment_id).values(**values, updated_at=sa.func.now())
    )


async def mark_images_pruned(session: AsyncSession, application_id: str, images: list[str], at: Any) -> int:
    """Record ``at`` on the application's deployments that ran one of ``images`` and have no digest to pull
    it again by (once: a later report keeps the first time); how many were marked."""
    result = await session.execute(
        sa.update(deployments)
        .where(
            deployments.c.application_id == application_id,
            deployments.c.image.in_(images),
            deployments.c.image_digest.is_(None),
            deployments.c.images_pruned_at.is_(None),
        )
        .values(images_pruned_at=at)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def purge_published_secrets(session: AsyncSession) -> int:
    """Delete published outbox rows of commands that carry secret values (they are on the bus now)."""
    result = await session.execute(
        sa.delete(outbox).where(outbox.c.subject.in_(SECRET_SUBJECTS), outbox.c.published_at.isnot(None))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
