"""Routes of an application's named volumes. Thin."""

from __future__ import annotations

from fastapi import Request

from berth_api.domain.identity import Principal
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import PathId, V1Router
from berth_api.entrypoints.schemas_volumes import VolumesOut
from berth_api.entrypoints.state import deps
from berth_api.usecases import volumes as uc

router = V1Router("applications")


@router.get(
    "/applications/{application_id}/volumes",
    summary="An application's named volumes on its servers, with their size",
    description="Each named volume on each server it was made on, with its size in bytes as the server's "
    "Docker engine counts it. Volumes outlive deployments, rollbacks and scaling, and a DELETE of the "
    "application keeps them unless it says `delete_volumes=true`. When the scheduler does not answer, "
    "`available` is false and `error` says why.",
)
async def list_volumes(
    request: Request, application_id: PathId, principal: Principal = require_role("viewer")
) -> VolumesOut:
    return VolumesOut.model_validate(await uc.volumes_of(deps(request), principal, application_id))
