"""Database access for environment variables, environment groups, their variables and attachments."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.applications import StoredVariable, variable_rows
from berth_api.adapters.rows import all_rows, first_row, one_row
from berth_api.adapters.tables import (
    env_groups,
    environment_variables,
    group_attachments,
    group_variables,
)
from berth_common.envelope import new_id

TABLES = {"environment": (environment_variables, "environment_id"), "group": (group_variables, "group_id")}


async def variables_of(session: AsyncSession, scope: str, owner_ids: list[str]) -> dict[str, list[StoredVariable]]:
    """Variables of environments or groups by owner id, runtime then build, in their stored order."""
    table, owner = TABLES[scope]
    out: dict[str, list[StoredVariable]] = {o: [] for o in owner_ids}
    if not owner_ids:
        return out
    c = table.c
    q = sa.select(table).where(c[owner].in_(owner_ids)).order_by(c[owner], sa.desc(c.kind), c.position)
    for r in (await session.execute(q)).all():
        out[r._mapping[owner]].append(StoredVariable(r.kind, r.name, r.secret, r.value, r.sealed))
    return out


async def replace_variables(session: AsyncSession, scope: str, owner_id: str, rows: list[StoredVariable]) -> None:
    table, owner = TABLES[scope]
    await session.execute(sa.delete(table).where(table.c[owner] == owner_id))
    if rows:
        await session.execute(sa.insert(table), variable_rows({owner: owner_id}, rows))


# --- groups ----------------------------------------------------------------------------------------


async def insert_group(session: AsyncSession, team_id: str, name: str, redeploy: bool) -> dict[str, Any]:
    q = (
        sa.insert(env_groups)
        .values(id=new_id(), team_id=team_id, name=name, redeploy_on_change=redeploy)
        .returning(*env_groups.c)
    )
    return await one_row(session, q)


async def get_group(session: AsyncSession, team_id: str, group_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    q = sa.select(env_groups).where(env_groups.c.id == group_id, env_groups.c.team_id == team_id)
    if lock:
        q = q.with_for_update()
    return await first_row(session, q)


async def list_groups(session: AsyncSession, team_id: str) -> list[dict[str, Any]]:
    q = sa.select(env_groups).where(env_groups.c.team_id == team_id).order_by(env_groups.c.name)
    return await all_rows(session, q)


async def update_group(session: AsyncSession, group_id: str, values: dict[str, Any]) -> dict[str, Any]:
    q = (
        sa.update(env_groups)
        .where(env_groups.c.id == group_id)
        .values(**values, updated_at=sa.func.now())
        .returning(*env_groups.c)
    )
    return await one_row(session, q)


async def delete_group(session: AsyncSession, group_id: str) -> None:
    await session.execute(sa.delete(env_groups).where(env_groups.c.id == group_id))


# --- attachments -----------------------------------------------------------------------------------


async def attached_applications(session: AsyncSession, group_ids: list[str]) -> dict[str, list[str]]:
    """Application ids by group id, in attach order."""
    out: dict[str, list[str]] = {g: [] for g in group_ids}
    if not group_ids:
        return out
    a = group_attachments.c
    q = sa.select(a.group_id, a.application_id).where(a.group_id.in_(group_ids)).order_by(a.group_id, a.seq)
    for r in (await session.execute(q)).all():
        out[r.group_id].append(r.application_id)
    return out


async def groups_of(session: AsyncSession, application_id: str) -> list[dict[str, Any]]:
    """The groups attached to an application, in attach order (a later group wins over an earlier one)."""
    a = group_attachments.c
    q = (
        sa.select(env_groups)
        .select_from(group_attachments.join(env_groups, env_groups.c.id == a.group_id))
        .where(a.application_id == application_id)
        .order_by(a.seq)
    )
    return await all_rows(session, q)


async def attach(session: AsyncSession, group_id: str, application_id: str) -> bool:
    """Attach (idempotent: an attached group keeps its place); whether it was new."""
    q = (
        pg_insert(group_attachments)
        .values(group_id=group_id, application_id=application_id)
        .on_conflict_do_nothing()
        .returning(group_attachments.c.seq)
    )
    return (await session.execute(q)).first() is not None


async def detach(session: AsyncSession, group_id: str, application_id: str) -> bool:
    a = group_attachments.c
    result = await session.execute(
        sa.delete(group_attachments).where(a.group_id == group_id, a.application_id == application_id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
