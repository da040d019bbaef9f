"""Routes of preview environments: an application's preview settings (on, off, changed), its previews, and
destroying one by hand. The previews themselves come from pull request deliveries to its webhook."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import Request
from pydantic import BaseModel, Field

from berth_api.domain.identity import Principal
from berth_api.domain.previews import DEFAULT_PATTERN
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import PathId, Resource, V1Router
from berth_api.entrypoints.schemas import Flag
from berth_api.entrypoints.schemas_apps import Strict, VariableOut, Variables
from berth_api.entrypoints.state import deps
from berth_api.usecases import preview_settings as uc

router = V1Router("previews")
resource = Resource(router)
PATH = "/applications/{application_id}/previews"


class PreviewSettingsIn(Strict):
    host_pattern: str = Field(
        default=DEFAULT_PATTERN,
        max_length=253,
        description="The preview's host: {number}, {app}, {service}, {env} and {base} (the base domain)",
    )
    allow_forks: Flag = Field(default=False, description="Deploy pull requests from forks (untrusted code)")
    database: Literal["none", "fresh"] = Field(default="none", description="`fresh`: a new database per preview")
    database_engine: Literal["postgresql", "mysql", "mariadb", "redis", "mongodb"] = "postgresql"
    ttl_hours: int = Field(default=72, ge=0, le=24 * 365, description="Destroy a preview inactive this long (0: never)")
    max_previews: int = Field(default=5, ge=1, le=100, description="The most previews of the application at once")
    env: Variables = Field(default_factory=list, description="Preview-only variables: they win over the application's")


class PreviewSettingsOut(BaseModel):
    enabled: Flag = Field(description="false: previews are off (the values shown are the defaults)")
    host_pattern: str
    allow_forks: Flag
    database: str
    database_engine: str
    ttl_hours: int
    max_previews: int
    env: list[VariableOut]


class PreviewOut(BaseModel):
    id: str
    number: int
    forge: str
    title: str
    head_ref: str
    head_commit: str
    state: str
    want: str | None
    host: str | None
    preview_application_id: str | None
    database_id: str | None
    deployment_id: str | None
    deployment_state: str | None
    reason: str | None
    last_activity_at: datetime
    created_at: datetime


@router.put(PATH + "/settings", summary="Preview the application's pull requests (or change how)")
async def put_preview_settings(
    request: Request, application_id: PathId, body: PreviewSettingsIn, principal: Principal = require_role("developer")
) -> PreviewSettingsOut:
    given: dict[str, Any] = body.model_dump(exclude={"env"})
    given["env"] = [v.model_dump() for v in body.env]
    row = await uc.put_settings(deps(request), principal, application_id, given)
    return PreviewSettingsOut.model_validate(row)


@router.get(PATH + "/settings", summary="How the application's pull requests are previewed (never a secret)")
async def get_preview_settings(
    request: Request, application_id: PathId, principal: Principal = require_role("viewer")
) -> PreviewSettingsOut:
    return PreviewSettingsOut.model_validate(await uc.get_settings(deps(request), principal, application_id))


resource.delete(PATH + "/settings", "delete_preview_settings", uc.drop_settings, "No previews of new pull requests")


@router.get(PATH, summary="The application's previews, one per pull request")
async def list_previews(
    request: Request, application_id: PathId, principal: Principal = require_role("viewer")
) -> list[PreviewOut]:
    rows = await uc.list_previews(deps(request), principal, application_id)
    return [PreviewOut.model_validate(r) for r in rows]


@router.delete(
    PATH + "/{preview_id}", status_code=202, summary="Destroy a preview now, as its pull request closing would"
)
async def destroy_preview(
    request: Request, application_id: PathId, preview_id: PathId, principal: Principal = require_role("admin")
) -> None:
    await uc.destroy(deps(request), principal, application_id, preview_id)
