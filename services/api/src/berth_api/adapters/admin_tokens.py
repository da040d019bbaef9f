"""Database access for minting an admin token from the host: the admin membership a token is made for."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.tables import memberships, teams, users


async def admin_membership(session: AsyncSession, email: str, team: str | None) -> dict[str, Any] | None:
    """The enabled user ``email``'s admin membership (in ``team``, else the oldest one): user and team ids
    and the team's name; None when there is none."""
    q = (
        sa.select(users.c.id.label("user_id"), teams.c.id.label("team_id"), teams.c.name.label("team_name"))
        .select_from(users.join(memberships, memberships.c.user_id == users.c.id).join(teams))
        .where(users.c.email == email.lower(), users.c.disabled_at.is_(None), memberships.c.role == "admin")
        .order_by(memberships.c.created_at, teams.c.name)
        .limit(1)
    )
    if team is not None:
        q = q.where(teams.c.name == team)
    row = (await session.execute(q)).mappings().first()
    return dict(row) if row is not None else None
