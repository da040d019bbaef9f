"""Channels, subscriptions and the application map in the notifier schema. Every read is team-scoped."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from berth_common.catalogue import (
    ChannelCreate,
    ChannelUpdate,
    ChannelView,
    SubscriptionCreate,
    SubscriptionView,
)
from berth_common.outbound import OutboundPolicy
from berth_common.records import record_of
from berth_notifier.adapters.secretbox import SecretBox, SecretUnavailableError
from berth_notifier.adapters.tables import applications, channels, subscriptions
from berth_notifier.domain import channels as domain
from berth_notifier.domain.policy import matches


class ConflictError(ValueError):
    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


def new_id() -> str:
    return uuid.uuid4().hex


def aad(team_id: str, channel_id: str) -> str:
    return f"berth-channel:{team_id}:{channel_id}"


def channel_view(row: Any) -> ChannelView:
    return record_of(ChannelView, row)


def subscription_view(row: Any) -> SubscriptionView:
    return record_of(SubscriptionView, row)


async def get_channel(session: AsyncSession, team_id: str, channel_id: str, *, lock: bool = False) -> Any | None:
    stmt = sa.select(channels).where(channels.c.team_id == team_id, channels.c.id == channel_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).first()


async def get_channel_any_team(session: AsyncSession, channel_id: str) -> Any | None:
    """For the delivery workers only (a delivery row names its channel; never reachable from a query)."""
    return (await session.execute(sa.select(channels).where(channels.c.id == channel_id))).first()


async def _name_taken(session: AsyncSession, team_id: str, name: str, except_id: str | None = None) -> bool:
    stmt = sa.select(channels.c.id).where(channels.c.team_id == team_id, channels.c.name == name)
    if except_id:
        stmt = stmt.where(channels.c.id != except_id)
    return (await session.execute(stmt)).first() is not None


async def create_channel(
    session: AsyncSession, box: SecretBox, req: ChannelCreate, policy: OutboundPolicy
) -> ChannelView:
    kind, settings, secrets = domain.split(req.target)
    domain.validate(kind, settings, secrets, policy)
    if await _name_taken(session, req.team_id, req.name):
        raise ConflictError("name", "a channel with this name exists in the team")
    channel_id = new_id()
    values = {
        "id": channel_id,
        "team_id": req.team_id,
        "name": req.name,
        "kind": kind,
        "enabled": req.enabled,
        "settings": settings,
        "secret_blob": box.encrypt(secrets, aad(req.team_id, channel_id)),
        "secrets_set": sorted(secrets),
        "target": domain.hint(kind, settings, secrets),
    }
    try:
        async with session.begin_nested():
            await session.execute(sa.insert(channels).values(**values))
    except IntegrityError:
        raise ConflictError("name", "a channel with this name exists in the team") from None
    row = await get_channel(session, req.team_id, channel_id)
    return channel_view(row)


async def update_channel(
    session: AsyncSession, box: SecretBox, req: ChannelUpdate, policy: OutboundPolicy
) -> ChannelView | None:
    row = await get_channel(session, req.team_id, req.channel_id, lock=True)
    if row is None:
        return None
    values: dict[str, Any] = {"updated_at": sa.func.now()}
    if req.name is not None and req.name != row.name:
        if await _name_taken(session, req.team_id, req.name, except_id=row.id):
            raise ConflictError("name", "a channel with this name exists in the team")
        values["name"] = req.name
    if req.enabled is not None:
        values["enabled"] = req.enabled
    if req.target is not None:
        key = aad(row.team_id, row.id)
        old_secrets = box.decrypt(row.secret_blob, key)
        settings, secrets = domain.merge(row.kind, dict(row.settings), old_secrets, req.target)
        domain.validate(row.kind, settings, secrets, policy)
        values.update(
            settings=settings,
            secret_blob=box.encrypt(secrets, key),
            secrets_set=sorted(secrets),
            target=domain.hint(row.kind, settings, secrets),
        )
    await session.execute(sa.update(channels).where(channels.c.id == row.id).values(**values))
    return channel_view(await get_channel(session, req.team_id, req.channel_id))


async def list_channels(session: AsyncSession, team_id: str) -> list[ChannelView]:
    rows = await session.execute(sa.select(channels).where(channels.c.team_id == team_id).order_by(channels.c.name))
    return [channel_view(r) for r in rows]


async def delete_channel(session: AsyncSession, team_id: str, channel_id: str) -> bool:
    result = await session.execute(
        sa.delete(channels).where(channels.c.team_id == team_id, channels.c.id == channel_id).returning(channels.c.id)
    )
    return result.first() is not None


async def create_subscription(session: AsyncSession, req: SubscriptionCreate) -> SubscriptionView | None:
    if await get_channel(session, req.team_id, req.channel_id) is None:
        return None
    sub_id = new_id()
    await session.execute(
        sa.insert(subscriptions).values(
            id=sub_id,
            team_id=req.team_id,
            channel_id=req.channel_id,
            event_types=sorted(set(req.event_types)),
            project_id=req.project_id,
            application_id=req.application_id,
        )
    )
    row = (await session.execute(sa.select(subscriptions).where(subscriptions.c.id == sub_id))).one()
    return subscription_view(row)


async def list_subscriptions(session: AsyncSession, team_id: str, channel_id: str | None) -> list[SubscriptionView]:
    stmt = sa.select(subscriptions).where(subscriptions.c.team_id == team_id)
    if channel_id:
        stmt = stmt.where(subscriptions.c.channel_id == channel_id)
    rows = await session.execute(stmt.order_by(subscriptions.c.created_at, subscriptions.c.id))
    return [subscription_view(r) for r in rows]


async def delete_subscription(session: AsyncSession, team_id: str, subscription_id: str) -> bool:
    result = await session.execute(
        sa.delete(subscriptions)
        .where(subscriptions.c.team_id == team_id, subscriptions.c.id == subscription_id)
        .returning(subscriptions.c.id)
    )
    return result.first() is not None


async def matching_channels(
    session: AsyncSession, team_id: str, event_type: str, project_id: str | None, application_id: str | None
) -> list[str]:
    """Enabled channels of the team with a subscription matching the event (type, project, application)."""
    rows = await session.execute(
        sa.select(
            subscriptions.c.channel_id,
            subscriptions.c.event_types,
            subscriptions.c.project_id,
            subscriptions.c.application_id,
        )
        .join(channels, channels.c.id == subscriptions.c.channel_id)
        .where(subscriptions.c.team_id == team_id, channels.c.team_id == team_id, channels.c.enabled.is_(True))
    )
    found: list[str] = []
    for row in rows:
        if row.project_id is not None and row.project_id != project_id:
            continue
        if row.application_id is not None and row.application_id != application_id:
            continue
        if any(matches(p, event_type) for p in row.event_types) and row.channel_id not in found:
            found.append(row.channel_id)
    return found


async def remember_application(
    session: AsyncSession, application_id: str, team_id: str, project_id: str | None
) -> None:
    stmt = insert(applications).values(application_id=application_id, team_id=team_id, project_id=project_id)
    set_: dict[str, Any] = {"team_id": team_id, "updated_at": sa.func.now()}
    if project_id is not None:
        set_["project_id"] = project_id
    await session.execute(stmt.on_conflict_do_update(index_elements=[applications.c.application_id], set_=set_))


async def application_context(session: AsyncSession, application_id: str) -> dict[str, str]:
    row = (
        await session.execute(sa.select(applications).where(applications.c.application_id == application_id))
    ).first()
    if row is None:
        return {}
    found = {"team_id": row.team_id}
    if row.project_id:
        found["project_id"] = row.project_id
    return found


async def rotate_secrets(session: AsyncSession, box: SecretBox) -> tuple[int, list[str]]:
    """Re-encrypt every channel secret not written with the current key.

    Returns how many were re-encrypted and the ids of channels no configured key can read (they stay as
    they are: configure the old key in ``notify_previous_secret_keys``, or set their secrets again).
    """
    rotated, unreadable = 0, []
    rows = await session.execute(sa.select(channels.c.id, channels.c.team_id, channels.c.secret_blob).with_for_update())
    for row in rows.all():
        if box.is_current(row.secret_blob):
            continue
        try:
            blob = box.rotate_blob(row.secret_blob, aad(row.team_id, row.id))
        except SecretUnavailableError:
            unreadable.append(row.id)
            continue
        await session.execute(sa.update(channels).where(channels.c.id == row.id).values(secret_blob=blob))
        rotated += 1
    return rotated, unreadable
