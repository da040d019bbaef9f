"""Database access for teams themselves: a name's owner, a user's role in a team, what a team still holds,
and the deletion of an empty team (api schema only)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.tables import memberships, teams

# What goes with the team rather than being held by it: access (its tokens, pending invitations, the
# dashboard's sessions) and the team's own backup key. Every other table that names a team holds
# something an admin removes first, so a table added later blocks a deletion until it is thought about.
GOES_WITH_THE_TEAM = frozenset({"memberships", "api_tokens", "invitations", "ui_sessions", "backup_keys"})

# Every single-column foreign key onto teams.id, read from the catalogue (so no table is forgotten).
REFERENCES = sa.text(
    """
    SELECT cl.relname AS table_name, quote_ident(ns.nspname) || '.' || quote_ident(cl.relname) AS qualified,
           quote_ident(a.attname) AS column_name
    FROM pg_constraint c
    JOIN pg_class cl ON cl.oid = c.conrelid
    JOIN pg_namespace ns ON ns.oid = cl.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
    WHERE c.contype = 'f' AND c.confrelid = 'teams'::regclass AND cardinality(c.conkey) = 1
    ORDER BY cl.relname
    """
)


async def team_named(session: AsyncSession, name: str) -> str | None:
    return (await session.execute(sa.select(teams.c.id).where(teams.c.name == name))).scalar()


async def lock_team(session: AsyncSession, team_id: str) -> dict[str, str] | None:
    """The team's id and name, its row locked until the transaction ends (a deletion serialises with
    writes that check it)."""
    q = sa.select(teams.c.id, teams.c.name).where(teams.c.id == team_id).with_for_update()
    row = (await session.execute(q)).first()
    return None if row is None else {"id": row.id, "name": row.name}


async def role_in(session: AsyncSession, team_id: str, user_id: str) -> str | None:
    m = memberships.c
    q = sa.select(m.role).where(m.team_id == team_id, m.user_id == user_id)
    return (await session.execute(q)).scalar()


async def other_members(session: AsyncSession, team_id: str, user_id: str) -> int:
    m = memberships.c
    q = sa.select(sa.func.count()).select_from(memberships).where(m.team_id == team_id, m.user_id != user_id)
    return int((await session.execute(q)).scalar_one())


async def holdings(session: AsyncSession, team_id: str) -> dict[str, int]:
    """Per table, how many rows of this team it holds (tables holding none are left out)."""
    held: dict[str, int] = {}
    for ref in (await session.execute(REFERENCES)).all():
        if ref.table_name in GOES_WITH_THE_TEAM:
            continue
        # Identifiers quoted by Postgres itself, from its own catalogue; the team id is a bound parameter.
        count_sql = f"SELECT count(*) FROM {ref.qualified} WHERE {ref.column_name} = :team_id"  # noqa: S608
        count = int((await session.execute(sa.text(count_sql), {"team_id": team_id})).scalar_one())
        if count:
            held[ref.table_name] = count
    return held


async def delete_team(session: AsyncSession, team_id: str) -> None:
    """Delete the team; its memberships, tokens and invitations go with it (ON DELETE CASCADE)."""
    await session.execute(sa.delete(teams).where(teams.c.id == team_id))
