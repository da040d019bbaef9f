"""Routes of projects and environments. Thin: role, input, use case, answer."""

from __future__ import annotations

from fastapi import Request

from berth_api.domain.identity import Principal
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import PathId, Resource, V1Router
from berth_api.entrypoints.schemas_projects import (
    EnvironmentCreate,
    EnvironmentOut,
    ProjectCreate,
    ProjectOut,
    ProjectUpdate,
)
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import Responses, problem_doc
from berth_api.entrypoints.views import environment_out, project_out
from berth_api.usecases import projects as uc

router = V1Router("projects")
CONFLICT: Responses = {409: problem_doc("A name is taken, or the resource still holds applications")}
projects = Resource(router, ProjectOut, project_out)
environments = Resource(router, EnvironmentOut, environment_out)


@router.create(
    "/projects",
    summary="Create a project (with its production environment)",
    responses=CONFLICT,
)
async def create_project(
    body: ProjectCreate, request: Request, principal: Principal = require_role("developer")
) -> ProjectOut:
    return project_out(await uc.create_project(deps(request), principal, body.name, body.description))


projects.listing("/projects", "list_projects", uc.list_projects, "The team's projects")
projects.get("/projects/{project_id}", "get_project", uc.get_project, "A project")


@router.patch(
    "/projects/{project_id}",
    summary="Rename a project or change its description",
    responses=CONFLICT,
)
async def update_project(
    body: ProjectUpdate,
    request: Request,
    project_id: PathId,
    principal: Principal = require_role("developer"),
) -> ProjectOut:
    values = body.model_dump(exclude_none=True)
    return project_out(await uc.update_project(deps(request), principal, project_id, values))


projects.delete(
    "/projects/{project_id}",
    "delete_project",
    uc.delete_project,
    "Delete a project without applications",
    CONFLICT,
)


@router.create(
    "/projects/{project_id}/environments",
    summary="Add an environment to a project",
    responses=CONFLICT,
)
async def create_environment(
    body: EnvironmentCreate,
    request: Request,
    project_id: PathId,
    principal: Principal = require_role("developer"),
) -> EnvironmentOut:
    return environment_out(await uc.create_environment(deps(request), principal, project_id, body.name))


environments.listing(
    "/projects/{project_id}/environments", "list_environments", uc.list_environments, "A project's environments"
)
environments.get("/environments/{environment_id}", "get_environment", uc.get_environment, "An environment")
environments.delete(
    "/environments/{environment_id}",
    "delete_environment",
    uc.delete_environment,
    "Delete an environment without applications",
    CONFLICT,
)
