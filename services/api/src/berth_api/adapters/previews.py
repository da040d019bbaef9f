"""Database access for preview environments: an application's preview settings and its previews."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.preview_tables import preview_settings, previews
from berth_api.adapters.rows import all_rows, first_row, one_row
from berth_api.adapters.tables import deployments


async def settings_of(session: AsyncSession, application_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    """The application's preview settings (``lock``: held until the transaction ends, so deliveries of one
    application count its previews against the limit one after another)."""
    q = sa.select(preview_settings).where(preview_settings.c.id == application_id)
    return await first_row(session, q.with_for_update() if lock else q)


async def put_settings(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    q = insert(preview_settings).values(**values)
    q = q.on_conflict_do_update(
        index_elements=[preview_settings.c.id], set_={k: q.excluded[k] for k in values if k != "id"}
    )
    return await one_row(session, q.returning(*preview_settings.c))


async def drop_settings(session: AsyncSession, application_id: str) -> None:
    await session.execute(sa.delete(preview_settings).where(preview_settings.c.id == application_id))


async def get(session: AsyncSession, application_id: str, number: int, *, lock: bool = False) -> dict[str, Any] | None:
    q = sa.select(previews).where(previews.c.application_id == application_id, previews.c.number == number)
    return await first_row(session, q.with_for_update() if lock else q)


async def by_id(session: AsyncSession, preview_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    q = sa.select(previews).where(previews.c.id == preview_id)
    return await first_row(session, q.with_for_update(skip_locked=True) if lock else q)


async def of_application(session: AsyncSession, application_id: str) -> list[dict[str, Any]]:
    q = (
        sa.select(previews, deployments.c.state.label("deployment_state"))
        .outerjoin(deployments, deployments.c.id == previews.c.deployment_id)
        .where(previews.c.application_id == application_id)
        .order_by(previews.c.number)
    )
    return await all_rows(session, q)


async def count_active(session: AsyncSession, application_id: str) -> int:
    """The application's previews that are up or will be: active ones, and destroying ones reopened (each
    holds its place under the limit until it is made again)."""
    up = sa.or_(previews.c.state == "active", previews.c.reopen.is_(True))
    q = sa.select(sa.func.count()).where(previews.c.application_id == application_id, up)
    return int((await session.execute(q)).scalar_one())


async def insert_preview(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(previews).values(**values))


async def update(session: AsyncSession, preview_id: str, **values: Any) -> None:
    await session.execute(sa.update(previews).where(previews.c.id == preview_id).values(**values))


async def claim(session: AsyncSession, preview_id: str, want: str, commit: str) -> bool:
    """Take the preview's pending action (False: another process took it, or a newer one replaced it)."""
    q = (
        sa.update(previews)
        .where(previews.c.id == preview_id, previews.c.want == want, previews.c.head_commit == commit)
        .values(want=None)
        .returning(previews.c.id)
    )
    return (await session.execute(q)).first() is not None


async def delete(session: AsyncSession, preview_id: str) -> bool:
    """Delete a destroyed preview unless it was reopened meanwhile (False: it was, and stays)."""
    q = sa.delete(previews).where(previews.c.id == preview_id, previews.c.reopen.is_(False))
    return (await session.execute(q.returning(previews.c.id))).first() is not None


async def reopened(session: AsyncSession, preview_id: str) -> bool:
    """Whether a destroyed preview was reopened meanwhile; if so it becomes a new preview wanting a deploy
    of its head commit (the row locked: a delivery waits for it)."""
    q = sa.select(previews.c.reopen).where(previews.c.id == preview_id).with_for_update()
    if not (await session.execute(q)).scalar():
        return False
    fresh = {"preview_application_id": None, "database_id": None, "deployment_id": None, "host": None}
    await update(session, preview_id, **fresh, state="active", want="deploy", reopen=False, reason=None)
    return True


async def wanting(session: AsyncSession) -> list[dict[str, Any]]:
    return await all_rows(
        session, sa.select(previews).where(previews.c.want.is_not(None)).order_by(previews.c.created_at)
    )


async def destroying(session: AsyncSession) -> list[dict[str, Any]]:
    return await all_rows(
        session, sa.select(previews).where(previews.c.state == "destroying", previews.c.want.is_(None))
    )


async def expired(session: AsyncSession, now: datetime) -> list[dict[str, Any]]:
    """Active previews without activity for longer than their application's time-to-live."""
    ttl = sa.func.make_interval(0, 0, 0, 0, preview_settings.c.ttl_hours)
    q = (
        sa.select(previews.c.id, previews.c.head_commit)
        .join(preview_settings, preview_settings.c.id == previews.c.application_id)
        .where(previews.c.state == "active", previews.c.want.is_(None), preview_settings.c.ttl_hours > 0)
        .where(previews.c.last_activity_at + ttl < now)
    )
    return await all_rows(session, q)


async def orphaned(session: AsyncSession) -> list[dict[str, Any]]:
    """Previews whose application was deleted and that are not being destroyed yet."""
    q = sa.select(previews.c.id).where(
        previews.c.application_id.is_(None), previews.c.state == "active", previews.c.want.is_distinct_from("destroy")
    )
    return await all_rows(session, q)


async def commenting(session: AsyncSession) -> list[dict[str, Any]]:
    """Previews with their deployment's state (for the comment each keeps on its pull request)."""
    q = sa.select(previews, deployments.c.state.label("deployment_state")).outerjoin(
        deployments, deployments.c.id == previews.c.deployment_id
    )
    return await all_rows(session, q)
