"""Database access for commit statuses: a webhook's status target, and the statuses owed per deployment."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.preview_tables import previews
from berth_api.adapters.rows import all_rows, first_row
from berth_api.adapters.tables import deployments
from berth_api.adapters.webhook_tables import webhook_status_reports, webhook_status_targets

targets, reports = webhook_status_targets, webhook_status_reports


async def target(session: AsyncSession, webhook_id: str) -> dict[str, Any] | None:
    return await first_row(session, sa.select(targets).where(targets.c.id == webhook_id))


async def put_target(session: AsyncSession, values: dict[str, Any]) -> None:
    q = insert(targets).values(**values)
    q = q.on_conflict_do_update(index_elements=[targets.c.id], set_={k: q.excluded[k] for k in values if k != "id"})
    await session.execute(q)


async def drop_target(session: AsyncSession, webhook_id: str) -> None:
    await session.execute(sa.delete(targets).where(targets.c.id == webhook_id))


async def owe(session: AsyncSession, deployment_id: str, webhook_id: str, commit: str, now: datetime) -> None:
    values = {"deployment_id": deployment_id, "webhook_id": webhook_id, "commit": commit, "next_at": now}
    await session.execute(insert(reports).values(**values).on_conflict_do_nothing())


async def owed(session: AsyncSession, now: datetime, limit: int = 20) -> list[dict[str, Any]]:
    """Reports due now, with their deployment's state, their target and whether the deployment is a
    preview's, locked (other processes skip them)."""
    q = (
        sa.select(
            reports,
            deployments.c.state,
            deployments.c.team_id,
            targets.c.forge,
            targets.c.api_url,
            targets.c.repository,
        )
        .add_columns(targets.c.sealed, targets.c.link_base, previews.c.id.is_not(None).label("preview"))
        .join(deployments, deployments.c.id == reports.c.deployment_id)
        .join(targets, targets.c.id == reports.c.webhook_id)
        .outerjoin(previews, previews.c.preview_application_id == deployments.c.application_id)
        .where(reports.c.next_at <= now)
        .order_by(reports.c.next_at)
        .limit(limit)
        .with_for_update(of=reports, skip_locked=True)
    )
    return await all_rows(session, q)


async def sent(session: AsyncSession, deployment_id: str, state: str, *, done: bool) -> None:
    if done:
        await session.execute(sa.delete(reports).where(reports.c.deployment_id == deployment_id))
        return
    q = sa.update(reports).where(reports.c.deployment_id == deployment_id)
    await session.execute(q.values(sent_state=state, attempts=0, last_error=None))


async def failed(session: AsyncSession, deployment_id: str, attempts: int, next_at: datetime, error: str) -> None:
    q = sa.update(reports).where(reports.c.deployment_id == deployment_id)
    await session.execute(q.values(attempts=attempts, next_at=next_at, last_error=error))


async def drop(session: AsyncSession, deployment_id: str) -> None:
    await session.execute(sa.delete(reports).where(reports.c.deployment_id == deployment_id))


async def outstanding(session: AsyncSession) -> bool:
    return (await session.execute(sa.select(sa.literal(1)).select_from(reports).limit(1))).first() is not None
