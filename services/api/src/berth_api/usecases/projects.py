"""Projects and their environments (``production`` is created with the project)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from berth_api.adapters import projects as repo
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, name_taken, not_in_team
from berth_api.usecases import Deps
from berth_common.logging import get_logger

log = get_logger(__name__)

DEFAULT_ENVIRONMENT = "production"


def project_missing(principal: Principal, project_id: str) -> ProblemError:
    return not_in_team("project", project_id, principal.team_name)


def environment_missing(principal: Principal, environment_id: str) -> ProblemError:
    return not_in_team("environment", environment_id, principal.team_name)


async def _refuse_if_used(s: AsyncSession, what: str, **scope: str) -> None:
    """A project or an environment is deleted only once it holds no application."""
    apps = await repo.count_applications(s, **scope)
    if apps:
        raise ProblemError(409, f"The {what} still has {apps} application(s); delete them first.")


async def create_project(deps: Deps, principal: Principal, name: str, description: str) -> dict[str, Any]:
    try:
        async with deps.sessionmaker() as s, s.begin():
            row = await repo.insert_project(s, principal.team_id, name, description)
            env = await repo.insert_environment(s, principal.team_id, row["id"], DEFAULT_ENVIRONMENT)
    except IntegrityError:
        raise name_taken("project", name) from None
    log.info("project created", project_id=row["id"], team_id=principal.team_id)
    return {**row, "environments": [env]}


async def list_projects(deps: Deps, principal: Principal) -> list[dict[str, Any]]:
    async with deps.sessionmaker() as s:
        rows = await repo.list_projects(s, principal.team_id)
        envs = await repo.environments_of(s, [r["id"] for r in rows])
    return [{**r, "environments": envs[r["id"]]} for r in rows]


async def get_project(deps: Deps, principal: Principal, project_id: str) -> dict[str, Any]:
    async with deps.sessionmaker() as s:
        row = await repo.get_project(s, principal.team_id, project_id)
        if row is None:
            raise project_missing(principal, project_id)
        envs = await repo.environments_of(s, [project_id])
    return {**row, "environments": envs[project_id]}


async def update_project(deps: Deps, principal: Principal, project_id: str, values: dict[str, Any]) -> dict[str, Any]:
    try:
        async with deps.sessionmaker() as s, s.begin():
            row = (
                await repo.update_project(s, principal.team_id, project_id, values)
                if values
                else await repo.get_project(s, principal.team_id, project_id)
            )
            if row is None:
                raise project_missing(principal, project_id)
            envs = await repo.environments_of(s, [project_id])
    except IntegrityError:
        raise name_taken("project", str(values.get("name"))) from None
    return {**row, "environments": envs[project_id]}


async def delete_project(deps: Deps, principal: Principal, project_id: str) -> None:
    async with deps.sessionmaker() as s, s.begin():
        if await repo.get_project(s, principal.team_id, project_id) is None:
            raise project_missing(principal, project_id)
        await _refuse_if_used(s, "project", project_id=project_id)
        await repo.delete_project(s, principal.team_id, project_id)
    log.info("project deleted", project_id=project_id, team_id=principal.team_id)


async def create_environment(deps: Deps, principal: Principal, project_id: str, name: str) -> dict[str, Any]:
    try:
        async with deps.sessionmaker() as s, s.begin():
            if await repo.get_project(s, principal.team_id, project_id) is None:
                raise project_missing(principal, project_id)
            return await repo.insert_environment(s, principal.team_id, project_id, name)
    except IntegrityError:
        raise name_taken("environment", name) from None


async def list_environments(deps: Deps, principal: Principal, project_id: str) -> list[dict[str, Any]]:
    return list((await get_project(deps, principal, project_id))["environments"])


async def get_environment(deps: Deps, principal: Principal, environment_id: str) -> dict[str, Any]:
    async with deps.sessionmaker() as s:
        row = await repo.get_environment(s, principal.team_id, environment_id)
    if row is None:
        raise environment_missing(principal, environment_id)
    return row


async def delete_environment(deps: Deps, principal: Principal, environment_id: str) -> None:
    async with deps.sessionmaker() as s, s.begin():
        if await repo.get_environment(s, principal.team_id, environment_id) is None:
            raise environment_missing(principal, environment_id)
        await _refuse_if_used(s, "environment", environment_id=environment_id)
        await repo.delete_environment(s, principal.team_id, environment_id)
