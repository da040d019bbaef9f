"""Routes of applications. Thin: role, input, use case, answer."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Query, Request, Response, status

from berth_api.domain.applications import VariableInput
from berth_api.domain.git_access import DEPLOY_KEY, TOKEN, GivenAccess
from berth_api.domain.identity import Principal
from berth_api.domain.mounts import kept_volumes
from berth_api.entrypoints.auth import lean_handler, require_role
from berth_api.entrypoints.page_cache import not_modified
from berth_api.entrypoints.resources import NOT_FOUND, IdFilter, PathId, V1Router
from berth_api.entrypoints.schemas import ID_PATTERN
from berth_api.entrypoints.schemas_apps import (
    ApplicationCreate,
    ApplicationUpdate,
    GitSourceIn,
    ImageSourceIn,
    VariableIn,
)
from berth_api.entrypoints.schemas_apps_out import (
    ApplicationDetail,
    ApplicationListItem,
    ApplicationOut,
)
from berth_api.entrypoints.schemas_compose import ComposeIn
from berth_api.entrypoints.schemas_pre_deploy import pre_deploy_config
from berth_api.entrypoints.schemas_volumes import ApplicationRemovalOut
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import Responses, problem_doc
from berth_api.entrypoints.views import APPLICATIONS, application_detail, application_item, application_out, list_page
from berth_api.usecases import applications as uc
from berth_api.usecases import removal, replicas

router = V1Router("applications")
CONFLICT: Responses = {409: problem_doc("The name or a host name is taken")}


def _inputs(variables: list[VariableIn]) -> list[VariableInput]:
    return [VariableInput(v.name, v.value, v.secret) for v in variables]


def _source(source: ImageSourceIn | GitSourceIn) -> dict[str, Any]:
    return source.model_dump(mode="json", exclude={"build_args"})


def _build_args(source: ImageSourceIn | GitSourceIn) -> list[VariableInput]:
    return _inputs(source.build_args) if isinstance(source, GitSourceIn) else []


@router.create(
    "/environments/{environment_id}/applications",
    summary="Create an application in an environment",
    responses=CONFLICT,
)
async def create_application(
    body: ApplicationCreate,
    request: Request,
    environment_id: PathId,
    principal: Principal = require_role("developer"),
) -> ApplicationOut:
    config: dict[str, Any] = {
        **({"source": _source(body.source)} if body.source is not None else {}),
        "services": [s.model_dump(mode="json") for s in body.services or []],
        "limits": body.limits.model_dump(mode="json"),
        "restart_policy": body.restart_policy,
        "stop_timeout_s": body.stop_timeout_s,
    }
    if body.tls is not None:
        config["tls"] = body.tls.model_dump(mode="json")
    if body.pre_deploy is not None:
        config["pre_deploy"] = pre_deploy_config(body.pre_deploy)
    if body.compose is not None:
        config["compose"] = body.compose.model_dump(mode="json", exclude={"files"})
        config["compose_hosts"] = [h.model_dump(mode="json") for h in body.hosts]
        config["compose_placement"] = [p.model_dump(mode="json") for p in body.placement]
    build = _build_args(body.source) if body.source is not None else []
    files = _files(body.compose)
    record = await uc.create_application(
        deps(request), principal, environment_id, body.name, config, _inputs(body.env), build, _access(body), files
    )
    return application_out(record)


def _files(compose: ComposeIn | None) -> list[dict[str, Any]]:
    """A compose file's files as the use case takes them: their contents in the clear (sealed there)."""
    return [
        {"path": f.path, "content": f.content.get_secret_value() if f.content is not None else None, "mode": f.mode}
        for f in (compose.files if compose is not None else [])
    ]


def _access(body: ApplicationCreate) -> GivenAccess | None:
    given = body.git_access
    if given is None:
        return None
    if given.token is not None:
        return GivenAccess(TOKEN, given.token.token.get_secret_value(), given.token.username)
    assert given.deploy_key is not None
    key = given.deploy_key
    return GivenAccess(DEPLOY_KEY, key.private_key.get_secret_value(), host_keys=tuple(key.host_keys))


@router.get(
    "/environments/{environment_id}/applications",
    summary="An environment's applications",
)
async def list_environment_applications(
    request: Request, environment_id: PathId, principal: Principal = require_role("viewer")
) -> list[ApplicationListItem]:
    records = await uc.list_applications(deps(request), principal, environment_id=environment_id)
    return APPLICATIONS.validate_python([application_item(r) for r in records])


LIST_DESCRIPTION = """The team's applications, ordered by name, environment and id: `limit` of them (200 unless
given, at most 1000) from `offset`, each with its newest deployment (`last_deployment`). `X-Total-Count` says
how many the team has (in the project when `project_id` is given) and `Link: <...>; rel="next"` gives the
next page while there is one.

The answer carries a strong `ETag`; send it back in `If-None-Match` and an unchanged page is answered
`304 Not Modified` with no body. Pages are cached per team and invalidated by every change to the team's
applications, their variables, host names and deployments (queued, changing state or deleted), environments
and projects."""
PAGE_HEADERS = {
    "ETag": {"description": "A strong validator of this page", "schema": {"type": "string"}},
    "X-Total-Count": {"description": "How many applications match (all pages)", "schema": {"type": "integer"}},
    "Link": {"description": 'The next page, `<url>; rel="next"`, while there is one', "schema": {"type": "string"}},
}


async def _page_response(
    request: Request, principal: Principal, project_id: str | None, limit: int, offset: int
) -> Response:
    page = await list_page(request, principal, project_id, limit, offset)
    headers = {"ETag": page.etag, "Cache-Control": "private, no-cache", "Vary": "Authorization"}
    if not_modified(request.headers.get("if-none-match"), page.etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(page.body, media_type="application/json", headers={**headers, **dict(page.headers)})


PLAIN_LIMIT = re.compile(r"^[0-9]{1,4}$")
PLAIN_OFFSET = re.compile(r"^[0-9]{1,7}$")
PLAIN_ID = re.compile(ID_PATTERN)


async def _plain_list(request: Request, principal: Principal) -> Response | None:
    """The list's plain requests (each parameter given once, in its canonical form, in range) without
    FastAPI's request handling; None for anything else, which the route below answers (and validates)."""
    items = request.query_params.multi_items()
    query = dict(items)
    if len(query) != len(items):
        return None
    limit, offset, project_id = query.get("limit", "200"), query.get("offset", "0"), query.get("project_id")
    if not (PLAIN_LIMIT.match(limit) and PLAIN_OFFSET.match(offset)) or not 1 <= int(limit) <= 1000:
        return None
    if int(offset) > 1_000_000 or (project_id is not None and not PLAIN_ID.match(project_id)):
        return None
    return await _page_response(request, principal, project_id, int(limit), int(offset))


@router.get(
    "/applications",
    response_model=list[ApplicationListItem],
    summary="The team's applications",
    description=LIST_DESCRIPTION,
    responses={
        200: {"description": "A page of the team's applications", "headers": PAGE_HEADERS},
        304: {"description": "Not modified: the page still has the ETag sent in If-None-Match"},
    },
)
@lean_handler(_plain_list)
async def list_applications(
    request: Request,
    project_id: IdFilter = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    principal: Principal = require_role("viewer"),
) -> Response:
    return await _page_response(request, principal, project_id, limit, offset)


@router.get(
    "/applications/{application_id}",
    summary="An application: its configuration, live version, replicas and their health",
)
async def get_application(
    request: Request, application_id: PathId, principal: Principal = require_role("viewer")
) -> ApplicationDetail:
    d = deps(request)
    record, live = await uc.get_application(d, principal, application_id)
    return application_detail(record, live, await replicas.runtime_of(d, principal, application_id))


@router.patch(
    "/applications/{application_id}",
    summary="Change an application (each field given replaces that field); applies at the next deployment",
    responses={409: problem_doc("A host name is taken, or the application is being removed")},
)
async def update_application(
    body: ApplicationUpdate,
    request: Request,
    application_id: PathId,
    principal: Principal = require_role("developer"),
) -> ApplicationOut:
    changes: dict[str, Any] = {}
    if body.source is not None:
        changes["source"] = _source(body.source)
    if body.services is not None:
        changes["services"] = [s.model_dump(mode="json") for s in body.services]
    if body.compose is not None:
        changes["compose"] = body.compose.model_dump(mode="json", exclude={"files"})
    if body.hosts is not None:
        changes["compose_hosts"] = [h.model_dump(mode="json") for h in body.hosts]
    if body.placement is not None:
        changes["compose_placement"] = [p.model_dump(mode="json") for p in body.placement]
    if body.limits is not None:
        changes["limits"] = body.limits.model_dump(mode="json")
    if body.restart_policy is not None:
        changes["restart_policy"] = body.restart_policy
    if body.stop_timeout_s is not None:
        changes["stop_timeout_s"] = body.stop_timeout_s
    if body.tls is not None:
        changes["tls"] = body.tls.model_dump(mode="json")
    if "pre_deploy" in body.model_fields_set:  # null: no job any more
        changes["pre_deploy"] = pre_deploy_config(body.pre_deploy)
    runtime = _inputs(body.env) if body.env is not None else None
    build = _build_args(body.source) if body.source is not None else None
    files = _files(body.compose)
    record = await uc.update_application(deps(request), principal, application_id, changes, runtime, build, files)
    return application_out(record)


DELETE_DESCRIPTION = """An application that was never deployed is deleted at once (204). A deployed one (it may have
containers, routes and images) is handed to the scheduler: it is marked `removing` and `cmd.application.remove`
is sent in the same transaction; the answer is 202 with the application (`state: removing`). While it is being
removed it is neither changed nor deployed (409). Once the scheduler removed its routes, containers and images
it is gone (404) and its host names are free; if the scheduler could not, it is `active` again with
`removal_error`. A DELETE while it is being removed answers 202 again and sends nothing more.

Named volumes are never deleted implicitly: the removal keeps them on their servers unless
`delete_volumes=true`, and the 202 lists them (`volumes_kept`, or `volumes_deleted` when asked)."""


@router.delete(
    "/applications/{application_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an application; a deployed one is taken down by the scheduler first",
    description=DELETE_DESCRIPTION,
    responses={
        202: {"model": ApplicationRemovalOut, "description": "Being removed: the scheduler takes it down"},
        204: {"description": "Deleted (it was never deployed)"},
        **NOT_FOUND,
    },
)
async def delete_application(
    request: Request,
    application_id: PathId,
    drain_grace_s: Annotated[
        float | None,
        Query(ge=0, le=3600, description="Seconds in-flight requests get to finish (default: the scheduler's)"),
    ] = None,
    delete_volumes: Annotated[
        bool, Query(description="Delete the application's named volumes too (kept unless this is true)")
    ] = False,
    principal: Principal = require_role("admin"),
) -> Response:
    record = await removal.remove_application(deps(request), principal, application_id, drain_grace_s, delete_volumes)
    if record is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    volumes = kept_volumes(record.row["config"]["services"], application_id)
    out = application_out(record).model_dump(by_alias=True)
    shown = {"volumes_kept": [] if delete_volumes else volumes, "volumes_deleted": volumes if delete_volumes else []}
    body = ApplicationRemovalOut.model_validate({**out, **shown}).model_dump_json(by_alias=True)
    return Response(body, status_code=status.HTTP_202_ACCEPTED, media_type="application/json")
