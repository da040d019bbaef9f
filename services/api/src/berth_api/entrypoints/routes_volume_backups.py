"""Routes of an application's volume backups: on demand, on a schedule, and restores. Thin: role, input,
use case, answer.

The database backups' roles: viewers read; developers start backups and restore into a new volume; admins
set schedules and restore over the existing volume (with ``confirm``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path, Query, Request, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from berth_api.domain import names
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError
from berth_api.domain.roles import allows
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import PathId, V1Router
from berth_api.entrypoints.schemas import Flag
from berth_api.entrypoints.schemas_backups import (
    BACKUP_ID,
    BackupCreate,
    BackupOut,
    RestoreOut,
    ScheduleIn,
    ScheduleOut,
    ServerId,
    backup_out,
)
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import problem_doc
from berth_api.usecases import backups as backup_uc
from berth_api.usecases import restores as restore_uc
from berth_api.usecases import volume_backups as uc
from berth_common.values import SLUG_PATTERN

router = V1Router("backups")
VolumeName = Annotated[str, Path(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", examples=["data"])]
StopService = Field(default=False, description="Stop the service mounting the volume while it is read")
OnServer = Field(default=None, description="The volume's server, when it is on more than one")
BASE = "/applications/{application_id}/volumes/{volume}"


class VolumeBackupCreate(BackupCreate):
    stop_service: Flag = StopService
    server_id: ServerId | None = OnServer


class VolumeScheduleIn(ScheduleIn):
    stop_service: Flag = StopService
    server_id: ServerId | None = OnServer


class VolumeBackupOut(BackupOut):
    database_id: str = Field(description="The volume's key (what retention groups its backups by)")
    application_id: str
    volume: str
    server_id: str | None = None


def volume_backup_out(row: dict[str, Any]) -> VolumeBackupOut:
    return VolumeBackupOut.model_validate({**row, "objects": backup_out(row).model_dump()["objects"]})


class VolumeScheduleOut(ScheduleOut):
    database_id: str = Field(description="The volume's key")
    application_id: str
    volume: str
    stop_service: str | None = None
    server_id: str


def volume_schedule_out(row: dict[str, Any]) -> VolumeScheduleOut:
    source = row["source"] or {}
    shown = {"destinations": row["destination_ids"], "stop_service": source.get("stop_service")}
    return VolumeScheduleOut.model_validate({**row, **shown, "server_id": source.get("server_id")})


class VolumeRestoreCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backup_id: str = Field(pattern=BACKUP_ID, description="A succeeded backup of this volume")
    destination: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$", description="Restore from this copy")
    target: Literal["new", "existing"] = Field(default="new", description="A new volume, or over this one")
    name: Annotated[str | None, AfterValidator(lambda v: v if v is None else names.slug(v))] = Field(
        default=None,
        min_length=1,
        max_length=25,
        examples=["data-restored"],
        description="The new volume's name",
        json_schema_extra={"pattern": SLUG_PATTERN},
    )
    confirm: Flag = Field(default=False, description="Required for target existing (a backup is taken first)")
    stop_service: Flag | None = Field(
        default=None, description="Stop the service mounting the volume meanwhile (default: over the existing one)"
    )


class VolumeRestoreOut(RestoreOut):
    application_id: str
    volume: str
    target_volume: str = Field(description="The Docker volume restored into")


def volume_restore_out(row: dict[str, Any]) -> VolumeRestoreOut:
    return VolumeRestoreOut.model_validate({**row, "target_volume": (row["target_source"] or {}).get("volume", "")})


@router.start(f"{BASE}/backups", summary="Back the volume up now (a tar stream; state: requested, then running)")
async def start_volume_backup(
    body: VolumeBackupCreate,
    request: Request,
    application_id: PathId,
    volume: VolumeName,
    principal: Principal = require_role("developer"),
) -> VolumeBackupOut:
    retention = body.retention.model_dump(exclude_none=True) if body.retention else None
    backup = backup_uc.BackupInput(list(body.destinations), body.compression, retention, body.encrypt)
    given = uc.VolumeBackupInput(backup, body.stop_service, body.server_id)
    return volume_backup_out(await uc.start(deps(request), principal, application_id, volume, given))


@router.get(f"{BASE}/backups", summary="The volume's backups, newest first")
async def list_volume_backups(
    request: Request, application_id: PathId, volume: VolumeName, principal: Principal = require_role("viewer")
) -> list[VolumeBackupOut]:
    return [volume_backup_out(r) for r in await uc.list_of(deps(request), principal, application_id, volume)]


@router.start(
    f"{BASE}/restore",
    summary="Restore a backup into a new volume of the application (default) or over this one (admins, with confirm)",
    responses={409: problem_doc("The backup did not succeed, or none of its destinations exists any more")},
)
async def restore_volume(
    body: VolumeRestoreCreate,
    request: Request,
    application_id: PathId,
    volume: VolumeName,
    principal: Principal = require_role("developer"),
) -> VolumeRestoreOut:
    if body.target == "existing" and not allows(principal.role, "admin"):
        raise ProblemError(403, "Restoring over an existing volume is for the team's admins.")
    asked = restore_uc.RestoreInput(body.backup_id, body.destination, body.target, body.name, body.confirm)
    given = uc.VolumeRestoreInput(asked, body.stop_service)
    return volume_restore_out(await uc.restore(deps(request), principal, application_id, volume, given))


@router.put(f"{BASE}/backup-schedule", summary="Back the volume up on a schedule")
async def set_volume_schedule(
    body: VolumeScheduleIn,
    request: Request,
    application_id: PathId,
    volume: VolumeName,
    principal: Principal = require_role("admin"),
) -> VolumeScheduleOut:
    retention = body.retention.model_dump(exclude_none=True)
    given = backup_uc.ScheduleInput(
        body.cron, body.timezone, list(body.destinations), retention, body.compression, body.grace_s, body.encrypt
    )
    backup = uc.VolumeBackupInput(backup_uc.BackupInput([]), body.stop_service, body.server_id)
    row = await uc.set_schedule(deps(request), principal, application_id, volume, given, backup)
    return volume_schedule_out(row)


ServerQuery = Annotated[str | None, Query(pattern=r"^(local|[0-9a-f]{32})$", description="The volume's server")]


@router.get(f"{BASE}/backup-schedule", summary="The volume's backup schedule (null: none)")
async def get_volume_schedule(
    request: Request,
    application_id: PathId,
    volume: VolumeName,
    server_id: ServerQuery = None,
    principal: Principal = require_role("viewer"),
) -> VolumeScheduleOut | None:
    row = await uc.get_schedule(deps(request), principal, application_id, volume, server_id)
    return None if row is None else volume_schedule_out(row)


@router.delete(
    f"{BASE}/backup-schedule",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Stop backing the volume up on a schedule (none: nothing to do)",
)
async def remove_volume_schedule(
    request: Request,
    application_id: PathId,
    volume: VolumeName,
    server_id: ServerQuery = None,
    principal: Principal = require_role("admin"),
) -> Response:
    await uc.remove_schedule(deps(request), principal, application_id, volume, server_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
