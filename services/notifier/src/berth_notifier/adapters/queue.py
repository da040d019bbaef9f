"""The delivery queue and log: one row per message to send on one channel (grouped events share a row).

Rows go ``pending`` -> ``sending`` (claimed, attempts + 1) -> ``delivered``, or back to ``pending`` with a
later ``next_attempt_at``, or ``failed`` once the attempts are spent or the endpoint refused for good.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_common.catalogue import DeliveryList, DeliveryView
from berth_common.records import record_of
from berth_notifier.adapters.store import new_id
from berth_notifier.adapters.tables import deliveries
from berth_notifier.domain.notice import Notice

MAX_ERROR = 500


@dataclass(frozen=True)
class Grouping:
    key: str
    groupable: bool
    wait_s: float
    interval_s: float


def delivery_view(row: Any) -> DeliveryView:
    return record_of(
        DeliveryView,
        row,
        title=notice_of(row).headline(),
        test=row.is_test,
        next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
    )


def notice_of(row: Any) -> Notice:
    """The stored notice with the group's count and time span applied."""
    notice = Notice.model_validate(row.notice)
    return notice.model_copy(update={"count": row.count, "first_time": row.first_at, "last_time": row.last_at})


async def _merge(session: AsyncSession, channel_id: str, notice: Notice, key: str) -> bool:
    """Fold the event into the group's unsent row, if there is one."""
    result = await session.execute(
        sa.update(deliveries)
        .where(
            deliveries.c.channel_id == channel_id,
            deliveries.c.group_key == key,
            deliveries.c.status == "pending",
            deliveries.c.attempts == 0,
            deliveries.c.is_test.is_(False),
        )
        .values(
            count=deliveries.c.count + 1,
            last_event_id=notice.event_id,
            last_at=sa.func.greatest(deliveries.c.last_at, notice.time),
            first_at=sa.func.least(deliveries.c.first_at, notice.time),
            updated_at=sa.func.now(),
        )
        .returning(deliveries.c.id)
    )
    return result.first() is not None


async def _group_due(session: AsyncSession, channel_id: str, group: Grouping, now: datetime) -> datetime:
    """The first of a group waits ``wait_s``; a later one waits until ``interval_s`` after the last send."""
    last = (
        await session.execute(
            sa.select(sa.func.max(sa.func.coalesce(deliveries.c.claimed_at, deliveries.c.created_at))).where(
                deliveries.c.channel_id == channel_id,
                deliveries.c.group_key == group.key,
                deliveries.c.status.in_(("sending", "delivered", "failed")),
                deliveries.c.created_at > now - timedelta(seconds=group.interval_s + group.wait_s + 60),
            )
        )
    ).scalar()
    due = now + timedelta(seconds=group.wait_s)
    if last is not None:
        due = max(due, last + timedelta(seconds=group.interval_s))
    return due


async def enqueue(
    session: AsyncSession,
    *,
    team_id: str,
    channel_ids: list[str],
    notice: Notice,
    group: Grouping,
    max_attempts: int,
    now: datetime,
    is_test: bool = False,
) -> list[str]:
    """Queue the notice on each channel (or fold it into a pending group); returns the delivery ids."""
    ids: list[str] = []
    for channel_id in channel_ids:
        due = now
        if group.groupable:
            if await _merge(session, channel_id, notice, group.key):
                continue
            due = await _group_due(session, channel_id, group, now)
        delivery_id = new_id()
        result = await session.execute(
            insert(deliveries)
            .values(
                id=delivery_id,
                team_id=team_id,
                channel_id=channel_id,
                event_type=notice.event_type,
                group_key=group.key,
                first_event_id=notice.event_id,
                last_event_id=notice.event_id,
                notice=notice.model_dump(mode="json"),
                first_at=notice.time,
                last_at=notice.time,
                is_test=is_test,
                max_attempts=max_attempts,
                next_attempt_at=due,
            )
            .on_conflict_do_nothing(constraint="deliveries_channel_event")
            .returning(deliveries.c.id)
        )
        if result.first() is not None:
            ids.append(delivery_id)
    return ids


async def claim_next(session: AsyncSession, channel_id: str, now: datetime) -> Any | None:
    row = (
        await session.execute(
            sa.select(deliveries)
            .where(
                deliveries.c.channel_id == channel_id,
                deliveries.c.status == "pending",
                deliveries.c.next_attempt_at <= now,
            )
            .order_by(deliveries.c.next_attempt_at, deliveries.c.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
    ).first()
    if row is None:
        return None
    return (
        await session.execute(
            sa.update(deliveries)
            .where(deliveries.c.id == row.id)
            .values(status="sending", claimed_at=now, attempts=deliveries.c.attempts + 1, updated_at=sa.func.now())
            .returning(*deliveries.c)
        )
    ).first()


async def next_due(session: AsyncSession, channel_id: str) -> datetime | None:
    value: datetime | None = (
        await session.execute(
            sa.select(sa.func.min(deliveries.c.next_attempt_at)).where(
                deliveries.c.channel_id == channel_id, deliveries.c.status == "pending"
            )
        )
    ).scalar()
    return value


async def mark_delivered(session: AsyncSession, delivery_id: str, now: datetime) -> None:
    await session.execute(
        sa.update(deliveries)
        .where(deliveries.c.id == delivery_id)
        .values(status="delivered", delivered_at=now, next_attempt_at=None, updated_at=sa.func.now())
    )


async def mark_failed(
    session: AsyncSession, row: Any, error: str, retry_at: datetime | None, *, release: bool = False
) -> str:
    """Record a failed attempt: retry at ``retry_at`` while attempts remain, else ``failed``.

    ``release`` gives a claimed row back without counting the attempt (shutdown mid-send).
    """
    attempts = row.attempts - 1 if release else row.attempts
    retry = retry_at is not None and (release or attempts < row.max_attempts)
    status = "pending" if retry else "failed"
    await session.execute(
        sa.update(deliveries)
        .where(deliveries.c.id == row.id)
        .values(
            status=status,
            attempts=attempts,
            last_error=error[:MAX_ERROR] if error else row.last_error,
            next_attempt_at=retry_at if retry else None,
            updated_at=sa.func.now(),
        )
    )
    return status


async def recover_stuck(session: AsyncSession, claimed_before: datetime) -> list[str]:
    """Claims older than any send can take belong to a crashed process: give them back (at-least-once)."""
    rows = await session.execute(
        sa.update(deliveries)
        .where(deliveries.c.status == "sending", deliveries.c.claimed_at < claimed_before)
        .values(status="pending", next_attempt_at=sa.func.now(), updated_at=sa.func.now())
        .returning(deliveries.c.channel_id)
    )
    return sorted({r.channel_id for r in rows})


async def channels_due(session: AsyncSession, before: datetime) -> list[str]:
    rows = await session.execute(
        sa.select(deliveries.c.channel_id)
        .where(deliveries.c.status == "pending", deliveries.c.next_attempt_at <= before)
        .distinct()
    )
    return [r.channel_id for r in rows]


async def prune(session: AsyncSession, older_than: datetime) -> int:
    result = await session.execute(
        sa.delete(deliveries)
        .where(deliveries.c.status.in_(("delivered", "failed")), deliveries.c.updated_at < older_than)
        .returning(deliveries.c.id)
    )
    return len(result.all())


async def get_delivery(session: AsyncSession, team_id: str, delivery_id: str) -> DeliveryView | None:
    row = (
        await session.execute(
            sa.select(deliveries).where(deliveries.c.team_id == team_id, deliveries.c.id == delivery_id)
        )
    ).first()
    return None if row is None else delivery_view(row)


async def list_deliveries(session: AsyncSession, req: DeliveryList) -> list[DeliveryView]:
    stmt = sa.select(deliveries).where(deliveries.c.team_id == req.team_id)
    if req.channel_id:
        stmt = stmt.where(deliveries.c.channel_id == req.channel_id)
    if req.status:
        stmt = stmt.where(deliveries.c.status == req.status)
    if req.before:
        stmt = stmt.where(deliveries.c.created_at < req.before)
    rows = await session.execute(stmt.order_by(deliveries.c.created_at.desc(), deliveries.c.id).limit(req.limit))
    return [delivery_view(r) for r in rows]
