"""Routes of deployments: start, list, show, cancel, roll back, logs (text or Server-Sent Events)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, Header, Query, Request
from fastapi.responses import StreamingResponse

from berth_api.domain.identity import Principal
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import NOT_FOUND, PathId, Resource, V1Router
from berth_api.entrypoints.schemas_deployments import CancelRequest, DeploymentOut, DeployRequest, RollbackRequest
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import problem_doc
from berth_api.entrypoints.views import deployment_out
from berth_api.usecases import deployments as uc
from berth_api.usecases import logs

router = V1Router("deployments")
EVENT_STREAM = "text/event-stream"
deployments = Resource(router, DeploymentOut, deployment_out)
STREAM_HEADERS = {"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"}


@router.start(
    "/applications/{application_id}/deployments",
    summary="Deploy the application's current configuration (queued; follow it with GET or its logs)",
    responses={
        409: problem_doc("The application is being removed"),
        422: problem_doc("A commit was named for an application that is not built from git"),
    },
)
async def start_deployment(
    request: Request,
    application_id: PathId,
    body: Annotated[DeployRequest | None, Body()] = None,
    principal: Principal = require_role("developer"),
) -> DeploymentOut:
    asked = body or DeployRequest()
    return deployment_out(await uc.start(deps(request), principal, application_id, asked.options, commit=asked.commit))


@router.get(
    "/applications/{application_id}/deployments",
    summary="The application's deployments, newest first",
)
async def list_deployments(
    request: Request,
    application_id: PathId,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Only numbers below this")] = None,
    principal: Principal = require_role("viewer"),
) -> list[DeploymentOut]:
    rows = await uc.list_for(deps(request), principal, application_id, limit, before)
    return [deployment_out(r) for r in rows]


@router.start(
    "/applications/{application_id}/rollback",
    operation_id="rollback_application",
    summary="Deploy a previous successful deployment's image again, without a build",
    responses={
        409: problem_doc(
            "No earlier successful deployment, the one named did not succeed, or the application is being removed"
        ),
    },
)
async def rollback(
    request: Request,
    application_id: PathId,
    body: Annotated[RollbackRequest | None, Body()] = None,
    principal: Principal = require_role("developer"),
) -> DeploymentOut:
    body = body or RollbackRequest()
    row = await uc.rollback(deps(request), principal, application_id, body.deployment_id, body.options)
    return deployment_out(row)


deployments.get(
    "/deployments/{deployment_id}",
    "get_deployment",
    uc.get,
    "A deployment: status, state, step, timestamps, image, reason",
)


@router.start(
    "/deployments/{deployment_id}/cancel",
    summary="Ask the scheduler to cancel a deployment that does not serve traffic yet",
    responses={409: problem_doc("The deployment already ended, or already serves traffic")},
)
async def cancel_deployment(
    request: Request,
    deployment_id: PathId,
    body: Annotated[CancelRequest | None, Body()] = None,
    principal: Principal = require_role("developer"),
) -> DeploymentOut:
    reason = (body or CancelRequest()).reason
    return deployment_out(await uc.cancel(deps(request), principal, deployment_id, reason))


LOG_DESCRIPTION = (
    "`text/plain`: every line so far, in order. `text/event-stream` (or `?follow=1`): a comment and "
    "`event: ready` at once, then each line as `event: log` (`id`: its position; data: JSON with `seq`, "
    "`stream`, `line`, `time`), keep-alive comments, and `event: end` (data: the final state) once the "
    "deployment finished. Reconnect with `Last-Event-ID` to continue. Secret values are redacted."
)


@router.get(
    "/deployments/{deployment_id}/logs",
    operation_id="get_deployment_logs",
    summary="A deployment's build and deploy output, as text or as a live event stream",
    description=LOG_DESCRIPTION,
    response_class=StreamingResponse,
    responses={
        200: {"description": "The lines", "content": {"text/plain": {"schema": {"type": "string"}}, EVENT_STREAM: {}}},
        **NOT_FOUND,
        503: problem_doc("The log stream cannot be read right now"),
    },
)
async def deployment_logs(
    request: Request,
    deployment_id: PathId,
    follow: Annotated[bool, Query(description="Stream as Server-Sent Events")] = False,
    last_event_id: Annotated[int | None, Header(ge=0, le=2**63 - 1)] = None,
    principal: Principal = require_role("viewer"),
) -> StreamingResponse:
    d = deps(request)
    source = await logs.open_source(d, principal, deployment_id)
    if follow or EVENT_STREAM in request.headers.get("accept", ""):
        stream = logs.events(d, source, after=last_event_id or 0)
        return StreamingResponse(stream, media_type=EVENT_STREAM, headers=STREAM_HEADERS)
    lines = logs.text(d, source, await logs.newest(d, source))
    return StreamingResponse(lines, media_type="text/plain; charset=utf-8", headers=STREAM_HEADERS)
