"""Database access for a team's members and its invitations (api schema only; every query team-scoped)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.rows import all_rows, first_row, one_row
from berth_api.adapters.tables import api_tokens, invitations, memberships, teams, users
from berth_api.domain.roles import Role
from berth_common.envelope import new_id


def _member_columns() -> list[Any]:
    m, u = memberships.c, users.c
    return [u.id.label("user_id"), u.email, u.name, m.role, m.created_at.label("joined_at")]


async def list_members(session: AsyncSession, team_id: str) -> list[dict[str, Any]]:
    q = (
        sa.select(*_member_columns())
        .select_from(memberships.join(users, users.c.id == memberships.c.user_id))
        .where(memberships.c.team_id == team_id)
        .order_by(users.c.email)
    )
    return await all_rows(session, q)


async def get_member(session: AsyncSession, team_id: str, user_id: str) -> dict[str, Any] | None:
    q = (
        sa.select(*_member_columns())
        .select_from(memberships.join(users, users.c.id == memberships.c.user_id))
        .where(memberships.c.team_id == team_id, memberships.c.user_id == user_id)
    )
    return await first_row(session, q)


async def lock_admins(session: AsyncSession, team_id: str) -> list[str]:
    """The team's admins, their membership rows locked until the transaction ends (serialises changes that
    could leave a team without an admin)."""
    m = memberships.c
    q = sa.select(m.user_id).where(m.team_id == team_id, m.role == "admin").order_by(m.user_id).with_for_update()
    return [r.user_id for r in (await session.execute(q)).all()]


async def set_role(session: AsyncSession, team_id: str, user_id: str, role: Role) -> None:
    m = memberships.c
    await session.execute(sa.update(memberships).where(m.team_id == team_id, m.user_id == user_id).values(role=role))


async def remove_member(session: AsyncSession, team_id: str, user_id: str, now: datetime) -> int:
    """Delete the membership and revoke the user's tokens of this team; the number of tokens revoked."""
    m, t = memberships.c, api_tokens.c
    await session.execute(sa.delete(memberships).where(m.team_id == team_id, m.user_id == user_id))
    result = await session.execute(
        sa.update(api_tokens)
        .where(t.team_id == team_id, t.user_id == user_id, t.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def is_member(session: AsyncSession, team_id: str, user_id: str) -> bool:
    m = memberships.c
    q = sa.select(sa.literal(1)).where(m.team_id == team_id, m.user_id == user_id)
    return (await session.execute(q)).first() is not None


async def user_by_email(session: AsyncSession, email: str) -> dict[str, Any] | None:
    return await first_row(session, sa.select(users).where(users.c.email == email.lower()))


async def teams_of(session: AsyncSession, user_id: str) -> list[dict[str, Any]]:
    """Every team the user belongs to, with the role there."""
    m, tm = memberships.c, teams.c
    q = (
        sa.select(tm.id, tm.name, m.role)
        .select_from(memberships.join(teams, tm.id == m.team_id))
        .where(m.user_id == user_id)
        .order_by(tm.name)
    )
    return await all_rows(session, q)


# --- invitations -----------------------------------------------------------------------------------


def _invitation_columns() -> list[Any]:
    c = invitations.c
    return [c.id, c.email, c.role, c.prefix, c.created_by, c.created_at, c.expires_at, c.accepted_at, c.revoked_at]


async def insert_invitation(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    q = sa.insert(invitations).values(id=new_id(), **values).returning(*_invitation_columns())
    return await one_row(session, q)


async def pending_for(session: AsyncSession, team_id: str, email: str, now: datetime) -> bool:
    c = invitations.c
    q = sa.select(sa.literal(1)).where(
        c.team_id == team_id,
        c.email == email,
        c.accepted_at.is_(None),
        c.revoked_at.is_(None),
        c.expires_at > now,
    )
    return (await session.execute(q)).first() is not None


async def list_invitations(session: AsyncSession, team_id: str) -> list[dict[str, Any]]:
    q = (
        sa.select(*_invitation_columns())
        .where(invitations.c.team_id == team_id)
        .order_by(sa.desc(invitations.c.created_at))
        .limit(500)
    )
    return await all_rows(session, q)


async def revoke_invitation(
    session: AsyncSession, team_id: str, invitation_id: str, now: datetime
) -> dict[str, Any] | None:
    """Revoke a pending invitation (an accepted or already revoked one is returned as it is)."""
    c = invitations.c
    await session.execute(
        sa.update(invitations)
        .where(c.id == invitation_id, c.team_id == team_id, c.accepted_at.is_(None), c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return await first_row(
        session, sa.select(*_invitation_columns()).where(c.id == invitation_id, c.team_id == team_id)
    )


async def lock_invitation(session: AsyncSession, prefix: str) -> dict[str, Any] | None:
    """The invitation with this prefix and its team's name, locked (two accepts of one code serialise)."""
    c = invitations.c
    q = (
        sa.select(invitations, teams.c.name.label("team_name"))
        .select_from(invitations.join(teams, teams.c.id == c.team_id))
        .where(c.prefix == prefix)
        .with_for_update(of=invitations)
    )
    return await first_row(session, q)


async def mark_accepted(session: AsyncSession, invitation_id: str, user_id: str, now: datetime) -> None:
    await session.execute(
        sa.update(invitations).where(invitations.c.id == invitation_id).values(accepted_at=now, accepted_by=user_id)
    )
