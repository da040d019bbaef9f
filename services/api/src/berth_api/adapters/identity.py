"""Database access for identity: users, teams, memberships and api tokens (api schema only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.readpool import BatchedLookup, ReadPool
from berth_api.adapters.rows import all_rows, first_row, one_row
from berth_api.adapters.tables import api_tokens, memberships, teams, users
from berth_api.domain.identity import TokenRecord
from berth_api.domain.roles import Role
from berth_api.domain.tokens import NewToken
from berth_common.envelope import new_id
from berth_common.records import record_of

BOOTSTRAP_LOCK = "berth-api-bootstrap"


async def lock_bootstrap(session: AsyncSession) -> None:
    """Serialise first-start bootstrap across processes (held until the transaction ends)."""
    await session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": BOOTSTRAP_LOCK})


async def any_user(session: AsyncSession) -> bool:
    return (await session.execute(sa.select(sa.literal(1)).select_from(users).limit(1))).first() is not None


async def create_user(session: AsyncSession, email: str, name: str) -> str:
    user_id = new_id()
    await session.execute(sa.insert(users).values(id=user_id, email=email.lower(), name=name))
    return user_id


async def create_team(session: AsyncSession, name: str) -> str:
    team_id = new_id()
    await session.execute(sa.insert(teams).values(id=team_id, name=name))
    return team_id


async def add_member(session: AsyncSession, user_id: str, team_id: str, role: Role) -> None:
    await session.execute(sa.insert(memberships).values(user_id=user_id, team_id=team_id, role=role))


async def insert_token(
    session: AsyncSession, user_id: str, team_id: str, name: str, token: NewToken, expires_at: datetime | None
) -> dict[str, Any]:
    q = sa.insert(api_tokens).values(
        id=new_id(),
        user_id=user_id,
        team_id=team_id,
        name=name,
        prefix=token.prefix,
        hash=token.hash,
        expires_at=expires_at,
    )
    return await one_row(session, q.returning(*_public_columns()))


def _public_columns() -> list[sa.Column[Any]]:
    c = api_tokens.c
    return [c.id, c.name, c.prefix, c.user_id, c.created_at, c.expires_at, c.revoked_at, c.last_used_at]


# The token check of every request, in one statement on the read pool: the token, its user, its team with
# the team's revision (the application list's cache key, api_0005) and the user's role in that team; the
# tokens of the requests waiting at the same time in one statement (``TokenLookup``).
TOKEN_QUERY = """
SELECT t.prefix AS key, t.id AS token_id, t.name AS token_name, t.hash, t.expires_at, t.revoked_at,
       t.last_used_at, u.id AS user_id, u.email AS user_email, u.name AS user_name,
       u.disabled_at IS NOT NULL AS user_disabled, tm.id AS team_id, tm.name AS team_name, tm.revision, m.role
FROM api_tokens t
JOIN users u ON u.id = t.user_id
JOIN teams tm ON tm.id = t.team_id
LEFT JOIN memberships m ON m.user_id = t.user_id AND m.team_id = t.team_id
WHERE t.prefix = ANY($1::text[])
"""
TOUCH_QUERY = "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1"


def token_lookup(pool: ReadPool) -> BatchedLookup:
    return BatchedLookup(pool, TOKEN_QUERY)


async def check_token(lookup: BatchedLookup, prefix: str) -> tuple[TokenRecord, int] | None:
    """The token with this prefix, its user and team, the user's current role in that team (None if no
    longer a member) and the team's revision: read after the call, no session."""
    row = await lookup.get(prefix)
    if row is None:
        return None
    return record_of(TokenRecord, dict(row.items())), int(row["revision"])


async def touch_token_now(pool: ReadPool, token_id: str, now: datetime) -> None:
    await pool.execute(TOUCH_QUERY, token_id, now)


async def list_tokens(session: AsyncSession, team_id: str) -> list[dict[str, Any]]:
    query = sa.select(*_public_columns()).where(api_tokens.c.team_id == team_id).order_by(api_tokens.c.created_at)
    return await all_rows(session, query)


async def revoke_token(session: AsyncSession, team_id: str, token_id: str, now: datetime) -> dict[str, Any] | None:
    """Revoke a token of this team (idempotent: a revoked token keeps its first revocation time)."""
    c = api_tokens.c
    await session.execute(
        sa.update(api_tokens)
        .where(c.id == token_id, c.team_id == team_id, c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return await first_row(session, sa.select(*_public_columns()).where(c.id == token_id, c.team_id == team_id))


async def revoke_own_token(session: AsyncSession, user_id: str, token_id: str, now: datetime) -> dict[str, Any] | None:
    """Revoke one of the user's own tokens, in whichever team it acts (idempotent, as ``revoke_token``);
    None when the user has no such token. The row carries its ``team_id`` for the audit log."""
    c = api_tokens.c
    await session.execute(
        sa.update(api_tokens)
        .where(c.id == token_id, c.user_id == user_id, c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return await first_row(
        session, sa.select(*_public_columns(), c.team_id).where(c.id == token_id, c.user_id == user_id)
    )
