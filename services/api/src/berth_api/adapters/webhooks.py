"""Database access for git forge webhooks: the webhook of an application, the delivery ids received, and
the debounced push each application waits to deploy."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.rows import all_rows, first_row, one_row
from berth_api.adapters.tables import applications
from berth_api.adapters.webhook_tables import webhook_deliveries, webhook_pushes, webhooks


async def for_application(session: AsyncSession, team_id: str, application_id: str) -> dict[str, Any] | None:
    q = sa.select(webhooks).where(webhooks.c.application_id == application_id, webhooks.c.team_id == team_id)
    return await first_row(session, q)


async def get(session: AsyncSession, webhook_id: str) -> dict[str, Any] | None:
    return await first_row(session, sa.select(webhooks).where(webhooks.c.id == webhook_id))


async def for_delivery(session: AsyncSession, webhook_id: str) -> dict[str, Any] | None:
    """The webhook with its application's ``config`` (one statement on a delivery's path)."""
    q = (
        sa.select(webhooks, applications.c.config)
        .join(applications, applications.c.id == webhooks.c.application_id)
        .where(webhooks.c.id == webhook_id)
    )
    return await first_row(session, q)


async def insert_webhook(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    return await one_row(session, sa.insert(webhooks).values(**values).returning(*webhooks.c))


async def update_webhook(session: AsyncSession, webhook_id: str, **values: Any) -> dict[str, Any]:
    q = sa.update(webhooks).where(webhooks.c.id == webhook_id).values(**values).returning(*webhooks.c)
    return await one_row(session, q)


async def delete_webhook(session: AsyncSession, webhook_id: str) -> None:
    await session.execute(sa.delete(webhooks).where(webhooks.c.id == webhook_id))


async def first_delivery(session: AsyncSession, webhook_id: str, delivery_id: str) -> bool:
    """Record a delivery id; False when it was already recorded (a replay)."""
    q = (
        insert(webhook_deliveries)
        .values(webhook_id=webhook_id, delivery_id=delivery_id)
        .on_conflict_do_nothing()
        .returning(webhook_deliveries.c.delivery_id)
    )
    return (await session.execute(q)).first() is not None


async def forget_deliveries(session: AsyncSession, before: datetime) -> int:
    result = await session.execute(sa.delete(webhook_deliveries).where(webhook_deliveries.c.received_at < before))
    return int(getattr(result, "rowcount", 0) or 0)


async def pending_push(session: AsyncSession, application_id: str) -> dict[str, Any] | None:
    q = sa.select(webhook_pushes).where(webhook_pushes.c.application_id == application_id).with_for_update()
    return await first_row(session, q)


async def put_push(session: AsyncSession, values: dict[str, Any]) -> None:
    """Insert the application's waiting push, or replace the one waiting (a newer push wins)."""
    q = insert(webhook_pushes).values(**values)
    keep = {"application_id", "team_id"}
    q = q.on_conflict_do_update(
        index_elements=[webhook_pushes.c.application_id],
        set_={k: q.excluded[k] for k in values if k not in keep},
    )
    await session.execute(q)


async def due_pushes(session: AsyncSession, now: datetime, limit: int = 20) -> list[dict[str, Any]]:
    """Pushes whose time came, locked (another api process skips them)."""
    q = (
        sa.select(webhook_pushes)
        .where(webhook_pushes.c.due_at <= now)
        .order_by(webhook_pushes.c.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return await all_rows(session, q)


async def drop_push(session: AsyncSession, application_id: str) -> None:
    await session.execute(sa.delete(webhook_pushes).where(webhook_pushes.c.application_id == application_id))


async def waiting(session: AsyncSession, application_id: str) -> dict[str, Any] | None:
    q = sa.select(webhook_pushes).where(webhook_pushes.c.application_id == application_id)
    return await first_row(session, q)


async def next_due(session: AsyncSession) -> datetime | None:
    value = (await session.execute(sa.select(sa.func.min(webhook_pushes.c.due_at)))).scalar()
    return value if isinstance(value, datetime) else None
