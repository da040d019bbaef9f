"""Routes of projects and environments. Thin: role, input, use case, answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

from berth_api.domain.identity import Principal
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.schemas import ID_PATTERN
from berth_api.entrypoints.schemas_apps import (
    EnvironmentCreate,
    EnvironmentOut,
    ProjectCreate,
    ProjectOut,
    ProjectUpdate,
)
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import PROBLEMS, Responses, problem_doc
from berth_api.entrypoints.views import environment_out, project_out
from berth_api.usecases import projects as uc

router = APIRouter(prefix="/v1", responses=PROBLEMS, tags=["projects"])
NOT_FOUND: Responses = {404: problem_doc("No such resource in this team")}
CONFLICT: Responses = {409: problem_doc("A name is taken, or the resource still holds applications")}
ProjectId = Annotated[str, Path(pattern=ID_PATTERN)]
EnvironmentId = Annotated[str, Path(pattern=ID_PATTERN)]


@router.post(
    "/projects",
    response_model=ProjectOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create a project (with its production environment)",
    responses=CONFLICT,
)
async def create_project(
    body: ProjectCreate, request: Request, principal: Principal = require_role("developer")
) -> ProjectOut:
    return project_out(await uc.create_project(deps(request), principal, body.name, body.description))


@router.get("/projects", response_model=list[ProjectOut], summary="The team's projects")
async def list_projects(request: Request, principal: Principal = require_role("viewer")) -> list[ProjectOut]:
    return [project_out(r) for r in await uc.list_projects(deps(request), principal)]


@router.get("/projects/{project_id}", response_model=ProjectOut, summary="A project", responses=NOT_FOUND)
async def get_project(
    request: Request, project_id: ProjectId, principal: Principal = require_role("viewer")
) -> ProjectOut:
    return project_out(await uc.get_project(deps(request), principal, project_id))


@router.patch(
    "/projects/{project_id}",
    response_model=ProjectOut,
    summary="Rename a project or change its description",
    responses={**NOT_FOUND, **CONFLICT},
)
async def update_project(
    body: ProjectUpdate,
    request: Request,
    project_id: ProjectId,
    principal: Principal = require_role("developer"),
) -> ProjectOut:
    values = body.model_dump(exclude_none=True)
    return project_out(await uc.update_project(deps(request), principal, project_id, values))


@router.delete(
    "/projects/{project_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a project without applications",
    responses={**NOT_FOUND, **CONFLICT},
)
async def delete_project(
    request: Request, project_id: ProjectId, principal: Principal = require_role("admin")
) -> Response:
    await uc.delete_project(deps(request), principal, project_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/projects/{project_id}/environments",
    response_model=EnvironmentOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add an environment to a project",
    responses={**NOT_FOUND, **CONFLICT},
)
async def create_environment(
    body: EnvironmentCreate,
    request: Request,
    project_id: ProjectId,
    principal: Principal = require_role("developer"),
) -> EnvironmentOut:
    return environment_out(await uc.create_environment(deps(request), principal, project_id, body.name))


@router.get(
    "/projects/{project_id}/environments",
    response_model=list[EnvironmentOut],
    summary="A project's environments",
    responses=NOT_FOUND,
)
async def list_environments(
    request: Request, project_id: ProjectId, principal: Principal = require_role("viewer")
) -> list[EnvironmentOut]:
    return [environment_out(e) for e in await uc.list_environments(deps(request), principal, project_id)]


@router.get(
    "/environments/{environment_id}", response_model=EnvironmentOut, summary="An environment", responses=NOT_FOUND
)
async def get_environment(
    request: Request, environment_id: EnvironmentId, principal: Principal = require_role("viewer")
) -> EnvironmentOut:
    return environment_out(await uc.get_environment(deps(request), principal, environment_id))


@router.delete(
    "/environments/{environment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an environment without applications",
    responses={**NOT_FOUND, **CONFLICT},
)
async def delete_environment(
    request: Request, environment_id: EnvironmentId, principal: Principal = require_role("admin")
) -> Response:
    await uc.delete_environment(deps(request), principal, environment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
