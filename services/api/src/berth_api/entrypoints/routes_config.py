"""Routes of configuration: environment variables, environment groups and their attachments, ``.env`` import
and export. Thin: role, input, use case, answer.

Exports mask secret values; ``?reveal_secrets=true`` needs the admin role (declared on the route, checked in
``auth``) and is recorded in the audit log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import AliasChoices, BaseModel

from berth_api.adapters.applications import StoredVariable
from berth_api.domain.applications import VariableInput
from berth_api.domain.identity import Principal
from berth_api.domain.roles import Role
from berth_api.entrypoints.audit import record_read
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import PathId, Resource, V1Router, path_parameters
from berth_api.entrypoints.schemas import ID_PATTERN
from berth_api.entrypoints.schemas_config import (
    ApplicationVariables,
    AttachedGroup,
    DotenvImportIn,
    EnvironmentVariables,
    GroupChanged,
    GroupCreate,
    GroupOut,
    GroupUpdate,
    Kind,
    ScopedVariableIn,
    ScopedVariableOut,
    VariablesPut,
)
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import Responses, problem_doc
from berth_api.usecases import Deps, configvars, groups
from berth_api.usecases.configvars import DotenvImport, Scoped

router = V1Router("configuration")
APP_CHANGE: Responses = {409: problem_doc("The application is being removed")}
# The owner of variables in a route shared by environments, applications and groups: named as in its path.
OwnerId = Annotated[
    str, Path(pattern=ID_PATTERN, validation_alias=AliasChoices("environment_id", "application_id", "group_id"))
]
Reveal = Annotated[bool, Query(description="Export secret values too (admin only; audited)")]
KindQuery = Annotated[Kind, Query(description="runtime variables or build args")]
REVEAL: tuple[str, Role] = ("reveal_secrets", "admin")
DOTENV: Responses = {200: {"description": "A .env file", "content": {"text/plain": {"schema": {"type": "string"}}}}}


def _scoped(variables: list[ScopedVariableIn]) -> list[Scoped]:
    return [(v.kind, VariableInput(v.name, v.value, v.secret)) for v in variables]


def _out(stored: list[StoredVariable]) -> list[ScopedVariableOut]:
    return [
        ScopedVariableOut(name=v.name, value=None if v.secret else v.value, secret=v.secret, kind=v.kind)
        for v in stored
    ]


def _import(body: DotenvImportIn) -> DotenvImport:
    return DotenvImport(content=body.content, kind=body.kind, secret=body.secret, replace=body.replace)


def _group_fields(rec: groups.GroupRecord) -> dict[str, Any]:
    return {**rec.row, "variables": _out(rec.variables), "applications": rec.applications}


def _group_out(rec: groups.GroupRecord) -> GroupOut:
    return GroupOut.model_validate(_group_fields(rec))


def _group_changed(rec: groups.GroupRecord) -> GroupChanged:
    return GroupChanged.model_validate({**_group_fields(rec), "redeployed": rec.redeployed})


async def _dotenv(request: Request, text: str, reveal: bool) -> PlainTextResponse:
    if reveal:
        await record_read(request, ["reveal_secrets"])
    return PlainTextResponse(text, headers={"Cache-Control": "no-store"})


def _no_options() -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class VariableOwner:
    """What the ``.env`` import and export routes of one kind of owner (environment, application, group)
    differ in; :func:`dotenv_routes` writes the two routes once for all of them."""

    path: str  # the owner's path, its id parameter named as in ``OwnerId``
    imported: type[BaseModel]
    import_summary: str
    export_summary: str
    import_variables: Callable[[Deps, Principal, str, DotenvImport], Awaitable[BaseModel]]
    export_variables: Callable[..., Awaitable[str]]  # (deps, principal, id, kind, reveal, **options)
    export_options: Callable[..., dict[str, Any]] = _no_options  # a dependency: the owner's query parameters
    import_responses: Responses = field(default_factory=dict)

    @property
    def noun(self) -> str:
        """In the route names (``import_<noun>_variables``), so in the OpenAPI operation ids: the path's id
        parameter without ``_id`` (a group's is ``env_group``, as in its other operation ids)."""
        noun = path_parameters(self.path)[-1].removesuffix("_id")
        return "env_group" if noun == "group" else noun


def dotenv_routes(owner: VariableOwner) -> None:
    """``POST <owner>/variables/import`` (developer) and ``GET <owner>/variables/export`` (viewer; admin to
    reveal secrets, audited)."""

    async def import_variables(
        body: DotenvImportIn, request: Request, owner_id: OwnerId, principal: Principal = require_role("developer")
    ) -> BaseModel:
        return await owner.import_variables(deps(request), principal, owner_id, _import(body))

    async def export_variables(
        request: Request,
        owner_id: OwnerId,
        kind: KindQuery = "runtime",
        reveal_secrets: Reveal = False,
        options: dict[str, Any] = Depends(owner.export_options),
        principal: Principal = require_role("viewer", elevated=REVEAL),
    ) -> PlainTextResponse:
        text = await owner.export_variables(deps(request), principal, owner_id, kind, reveal_secrets, **options)
        return await _dotenv(request, text, reveal_secrets)

    router.add_api_route(
        f"{owner.path}/variables/import",
        import_variables,
        methods=["POST"],
        name=f"import_{owner.noun}_variables",
        response_model=owner.imported,
        summary=owner.import_summary,
        responses=owner.import_responses,
    )
    router.add_api_route(
        f"{owner.path}/variables/export",
        export_variables,
        methods=["GET"],
        name=f"export_{owner.noun}_variables",
        response_class=Response,
        summary=owner.export_summary,
        responses=DOTENV,
    )


attached = Resource(router, AttachedGroup)
env_groups = Resource(router, GroupOut, _group_out)


# --- environments ------------------------------------------------------------------------------------


@router.get(
    "/environments/{environment_id}/variables",
    summary="An environment's variables (they apply to every application in it)",
)
async def get_environment_variables(
    request: Request, environment_id: PathId, principal: Principal = require_role("viewer")
) -> EnvironmentVariables:
    stored = await configvars.environment_variables(deps(request), principal, environment_id)
    return EnvironmentVariables(environment_id=environment_id, variables=_out(stored))


@router.put(
    "/environments/{environment_id}/variables",
    summary="Replace an environment's variables (applies at each application's next deployment)",
)
async def put_environment_variables(
    body: VariablesPut,
    request: Request,
    environment_id: PathId,
    principal: Principal = require_role("developer"),
) -> EnvironmentVariables:
    d = deps(request)
    stored = await configvars.put_environment_variables(d, principal, environment_id, _scoped(body.variables))
    return EnvironmentVariables(environment_id=environment_id, variables=_out(stored))


async def _import_environment(
    d: Deps, principal: Principal, environment_id: str, imp: DotenvImport
) -> EnvironmentVariables:
    stored = await configvars.import_environment(d, principal, environment_id, imp)
    return EnvironmentVariables(environment_id=environment_id, variables=_out(stored))


dotenv_routes(
    VariableOwner(
        path="/environments/{environment_id}",
        imported=EnvironmentVariables,
        import_summary="Import a .env file into an environment's variables",
        export_summary="An environment's variables as a .env file (secrets masked)",
        import_variables=_import_environment,
        export_variables=configvars.export_environment,
    )
)


# --- applications --------------------------------------------------------------------------------------


async def _import_application(
    d: Deps, principal: Principal, application_id: str, imp: DotenvImport
) -> ApplicationVariables:
    stored = await configvars.import_application(d, principal, application_id, imp)
    return ApplicationVariables(application_id=application_id, variables=_out(stored))


def _merged(
    merged: Annotated[bool, Query(description="Groups < environment < application, merged")] = False,
) -> dict[str, Any]:
    return {"merged": merged}


dotenv_routes(
    VariableOwner(
        path="/applications/{application_id}",
        imported=ApplicationVariables,
        import_summary="Import a .env file into an application's runtime variables or build args",
        import_responses=APP_CHANGE,
        export_summary="An application's variables as a .env file (merged: what a deployment gets, with origins)",
        import_variables=_import_application,
        export_variables=configvars.export_application,
        export_options=_merged,
    )
)


attached.listing(
    "/applications/{application_id}/env-groups",
    "list_application_env_groups",
    groups.groups_of,
    "The environment groups attached to an application, lowest precedence first",
)


def _attachment_route(
    method: str,
    name: str,
    summary: str,
    change: Callable[[Deps, Principal, str, str], Awaitable[list[dict[str, Any]]]],
) -> None:
    """Attaching and detaching a group: the same route but for the method and the change."""

    async def endpoint(
        request: Request,
        application_id: PathId,
        group_id: PathId,
        principal: Principal = require_role("developer"),
    ) -> list[AttachedGroup]:
        rows = await change(deps(request), principal, group_id, application_id)
        return [AttachedGroup.model_validate(g) for g in rows]

    router.add_api_route(
        "/applications/{application_id}/env-groups/{group_id}",
        endpoint,
        methods=[method],
        name=name,
        response_model=list[AttachedGroup],
        summary=summary,
        responses=APP_CHANGE,
    )


_attachment_route(
    "PUT",
    "attach_env_group",
    "Attach an environment group (it then wins over the groups attached before it)",
    groups.attach,
)
_attachment_route(
    "DELETE",
    "detach_env_group",
    "Detach an environment group from an application (applies at its next deployment)",
    groups.detach,
)


# --- groups --------------------------------------------------------------------------------------------


@router.create(
    "/env-groups",
    operation_id="create_env_group",
    summary="Create an environment group (shared variables for many applications)",
    responses={409: problem_doc("The name is taken")},
)
async def create_group(
    body: GroupCreate, request: Request, principal: Principal = require_role("developer")
) -> GroupOut:
    d = deps(request)
    rec = await groups.create_group(d, principal, body.name, body.redeploy_on_change, _scoped(body.variables))
    return _group_out(rec)


env_groups.listing("/env-groups", "list_env_groups", groups.list_groups, "The team's environment groups")
env_groups.get("/env-groups/{group_id}", "get_env_group", groups.get_group, "An environment group")


@router.patch(
    "/env-groups/{group_id}",
    operation_id="update_env_group",
    summary="Rename a group or change redeploy_on_change",
    responses={409: problem_doc("The name is taken")},
)
async def update_group(
    body: GroupUpdate, request: Request, group_id: PathId, principal: Principal = require_role("developer")
) -> GroupOut:
    values = body.model_dump(exclude_none=True)
    return _group_out(await groups.update_group(deps(request), principal, group_id, values))


env_groups.delete(
    "/env-groups/{group_id}",
    "delete_env_group",
    groups.delete_group,
    "Delete a group that is attached to no application",
    {409: problem_doc("It is still attached")},
)


@router.put(
    "/env-groups/{group_id}/variables",
    operation_id="put_env_group_variables",
    summary="Replace a group's variables; with redeploy_on_change, redeploys the attached applications",
)
async def put_group_variables(
    body: VariablesPut, request: Request, group_id: PathId, principal: Principal = require_role("developer")
) -> GroupChanged:
    rec = await groups.put_variables(deps(request), principal, group_id, _scoped(body.variables))
    return _group_changed(rec)


async def _import_group(d: Deps, principal: Principal, group_id: str, imp: DotenvImport) -> GroupChanged:
    return _group_changed(await groups.import_variables(d, principal, group_id, imp))


dotenv_routes(
    VariableOwner(
        path="/env-groups/{group_id}",
        imported=GroupChanged,
        import_summary="Import a .env file into a group's variables; with redeploy_on_change, redeploys",
        export_summary="A group's variables as a .env file (secrets masked)",
        import_variables=_import_group,
        export_variables=groups.export_variables,
    )
)
