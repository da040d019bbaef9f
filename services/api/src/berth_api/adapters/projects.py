"""Database access for projects and environments. Every query is scoped by the caller's team."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters.rows import all_rows, as_dict, first_row, one_row
from berth_api.adapters.tables import applications, environments, projects
from berth_common.envelope import new_id


async def insert_project(session: AsyncSession, team_id: str, name: str, description: str) -> dict[str, Any]:
    q = sa.insert(projects).values(id=new_id(), team_id=team_id, name=name, description=description)
    return await one_row(session, q.returning(*projects.c))


async def get_project(session: AsyncSession, team_id: str, project_id: str) -> dict[str, Any] | None:
    q = sa.select(projects).where(projects.c.id == project_id, projects.c.team_id == team_id)
    return await first_row(session, q)


async def list_projects(session: AsyncSession, team_id: str) -> list[dict[str, Any]]:
    q = sa.select(projects).where(projects.c.team_id == team_id).order_by(projects.c.name)
    return await all_rows(session, q)


async def update_project(
    session: AsyncSession, team_id: str, project_id: str, values: dict[str, Any]
) -> dict[str, Any] | None:
    q = (
        sa.update(projects)
        .where(projects.c.id == project_id, projects.c.team_id == team_id)
        .values(**values, updated_at=sa.func.now())
        .returning(*projects.c)
    )
    return await first_row(session, q)


async def delete_project(session: AsyncSession, team_id: str, project_id: str) -> None:
    await session.execute(sa.delete(projects).where(projects.c.id == project_id, projects.c.team_id == team_id))


async def insert_environment(session: AsyncSession, team_id: str, project_id: str, name: str) -> dict[str, Any]:
    q = sa.insert(environments).values(id=new_id(), team_id=team_id, project_id=project_id, name=name)
    return await one_row(session, q.returning(*environments.c))


async def get_environment(
    session: AsyncSession, team_id: str, environment_id: str, *, lock: bool = False
) -> dict[str, Any] | None:
    q = sa.select(environments).where(environments.c.id == environment_id, environments.c.team_id == team_id)
    if lock:
        q = q.with_for_update()
    return await first_row(session, q)


async def environments_of(session: AsyncSession, project_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Environments by project id (production first, then by name)."""
    out: dict[str, list[dict[str, Any]]] = {p: [] for p in project_ids}
    if not project_ids:
        return out
    order = sa.case((environments.c.name == "production", 0), else_=1)
    q = sa.select(environments).where(environments.c.project_id.in_(project_ids)).order_by(order, environments.c.name)
    for r in (await session.execute(q)).all():
        out[r.project_id].append(as_dict(r))
    return out


async def delete_environment(session: AsyncSession, team_id: str, environment_id: str) -> None:
    await session.execute(
        sa.delete(environments).where(environments.c.id == environment_id, environments.c.team_id == team_id)
    )


async def count_applications(
    session: AsyncSession, *, project_id: str | None = None, environment_id: str | None = None
) -> int:
    q = sa.select(sa.func.count()).select_from(applications)
    if project_id is not None:
        q = q.where(applications.c.project_id == project_id)
    if environment_id is not None:
        q = q.where(applications.c.environment_id == environment_id)
    return int((await session.execute(q)).scalar_one())
