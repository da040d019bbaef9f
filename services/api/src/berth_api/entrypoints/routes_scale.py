"""Routes of scaling: replicas of the live version by command, and a web service's autoscaling. Thin."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from berth_api.domain.identity import Principal
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import PathId, V1Router
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import problem_doc
from berth_api.usecases import scaling as uc
from berth_common.catalogue import AutoscalePolicy
from berth_common.catalogue.applications import MAX_SCALE_REASON, ReplicaCount
from berth_common.values import SLUG_PATTERN, Slug

router = V1Router("applications")
ServiceName = Annotated[str, Path(pattern=SLUG_PATTERN, max_length=32)]


class ScaleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    services: dict[Slug, ReplicaCount] = Field(
        min_length=1,
        max_length=20,
        description="Replicas per service (1 to 64)",
        examples=[{"web": 3}],
        json_schema_extra={"additionalProperties": False},  # service names only (the pattern of their keys)
    )
    reason: str = Field(default="", max_length=MAX_SCALE_REASON, description="Why (shown in the notifications)")
    drain_grace_s: float | None = Field(
        default=None, ge=0, le=3600, description="Seconds removed replicas drain (default: the scheduler's)"
    )


class ScaleOut(BaseModel):
    application_id: str
    request_id: str = Field(description="Names the scale in its evt.application.scaled events")
    services: dict[str, int]
    trigger: str
    reason: str


SCALE_DESCRIPTION = """Changes how many replicas of the live version each named service runs, without building or
deploying: new replicas start from the live version and join the routes once ready; removed ones leave the
routes, drain, then stop. The replicas are recorded on the application (the next deployment keeps them). A
running deployment finishes first. The scheduler answers with `evt.application.scaled` per service; the
application's `runtime` shows the replicas. 409: no live deployment, or the application is being removed."""


@router.start(
    "/applications/{application_id}/scale",
    summary="Scale the live version of an application (replicas per service)",
    description=SCALE_DESCRIPTION,
    responses={409: problem_doc("No live deployment, or the application is being removed")},
)
async def scale_application(
    body: ScaleIn, request: Request, application_id: PathId, principal: Principal = require_role("developer")
) -> ScaleOut:
    sent = await uc.scale(
        deps(request), principal, application_id, dict(body.services), body.reason, body.drain_grace_s
    )
    return ScaleOut.model_validate(sent)


@router.get(
    "/applications/{application_id}/services/{service}/autoscale",
    summary="A web service's autoscaling policy (null: off)",
)
async def get_autoscale(
    request: Request, application_id: PathId, service: ServiceName, principal: Principal = require_role("viewer")
) -> AutoscalePolicy | None:
    policy = await uc.get_autoscale(deps(request), principal, application_id, service)
    return AutoscalePolicy.model_validate(policy) if policy is not None else None


@router.put(
    "/applications/{application_id}/services/{service}/autoscale",
    summary="Autoscale a web service between min and max replicas on a CPU or memory target",
)
async def set_autoscale(
    body: AutoscalePolicy,
    request: Request,
    application_id: PathId,
    service: ServiceName,
    principal: Principal = require_role("developer"),
) -> AutoscalePolicy:
    await uc.set_autoscale(deps(request), principal, application_id, service, body)
    return body


@router.delete(
    "/applications/{application_id}/services/{service}/autoscale",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Stop autoscaling a web service (its replicas stay as they are)",
)
async def delete_autoscale(
    request: Request, application_id: PathId, service: ServiceName, principal: Principal = require_role("admin")
) -> Response:
    await uc.set_autoscale(deps(request), principal, application_id, service, None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
