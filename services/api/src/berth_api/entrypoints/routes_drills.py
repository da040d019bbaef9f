"""Routes of restore drills: a database's backup restored into a scratch container and checked, on demand
and on a schedule. Thin: role, input, use case, answer.

The database backups' roles: viewers read; developers run a drill; admins set the schedule.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from berth_api.domain.identity import Principal
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import PathId, Resource, V1Router
from berth_api.entrypoints.schemas_backups import BACKUP_ID
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import problem_doc
from berth_api.usecases import drills as uc
from berth_common.catalogue import DB_NAME_PATTERN, CronExpression, DrillCheck, TimeZone

router = V1Router("backups")
DestinationId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="A backup destination of the team")]
CheckDatabase = Annotated[
    str | None, Field(default=None, pattern=DB_NAME_PATTERN, description="Run the check here (default: the database)")
]
CHECK_DOC = (
    "row_counts (tables with their minimum rows) or query (one read-only SQL statement and its expected value) "
    "for PostgreSQL and MariaDB; keys (at_least: the key count, exist: keys that must exist) for Redis"
)


class DrillCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backup_id: str | None = Field(default=None, pattern=BACKUP_ID, description="Default: the newest verified backup")
    destination: DestinationId | None = Field(default=None, description="Read the backup from this copy")
    check: DrillCheck = Field(description=CHECK_DOC)
    check_database: CheckDatabase


class DrillValueOut(BaseModel):
    name: str
    expected: str
    found: str | None = None


class DrillOut(BaseModel):
    id: str
    database_id: str
    backup_id: str | None = None
    state: str = Field(description="requested, succeeded or failed")
    reason: str = ""
    engine: str | None = None
    destination_id: str | None = None
    check: dict[str, Any] | None = Field(default=None, description="The check as asked (none: a schedule's run)")
    check_text: str = Field(default="", description="What the scheduler checked, in words")
    values: list[DrillValueOut] = Field(description="The values the check read, with what was expected")
    schedule_id: str | None = None
    restore_s: float | None = None
    duration_s: float | None = None
    created_at: datetime
    finished_at: datetime | None = None


class DrillScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cron: CronExpression = Field(examples=["0 4 * * 0"], description="minute hour day-of-month month day-of-week")
    timezone: TimeZone = Field(examples=["Europe/Berlin"], description="An IANA time zone")
    destination: DestinationId = Field(description="Each run drills the newest verified backup stored here")
    check: DrillCheck = Field(description=CHECK_DOC)
    check_database: CheckDatabase
    grace_s: int = Field(default=300, ge=30, le=86400, description="How late a run may start and be on time")


class DrillScheduleOut(BaseModel):
    database_id: str
    cron: str
    timezone: str
    grace_s: int
    destination: str
    check: dict[str, Any]
    updated_at: datetime


def schedule_out(row: dict[str, Any]) -> DrillScheduleOut:
    return DrillScheduleOut.model_validate({**row, "destination": row["destination_id"]})


@router.start(
    "/databases/{database_id}/drills",
    summary="Drill a backup now: restore it into a scratch container and run the check",
    responses={409: problem_doc("The database has no verified backup, or the backup named did not succeed")},
)
async def start_drill(
    body: DrillCreate, request: Request, database_id: PathId, principal: Principal = require_role("developer")
) -> DrillOut:
    given = uc.DrillInput(body.check.model_dump(mode="json"), body.backup_id, body.destination, body.check_database)
    return DrillOut.model_validate(await uc.start(deps(request), principal, database_id, given))


drills = Resource(router, DrillOut)
drills.listing("/databases/{database_id}/drills", "list_drills", uc.list_of, "The database's drills, newest first")
Resource(router, DrillOut, id_pattern=BACKUP_ID).get(
    "/drills/{drill_id}", "get_drill", uc.get, "A drill: its outcome, the check and the values it read"
)


@router.put("/databases/{database_id}/drill-schedule", summary="Drill the database's newest backup on a schedule")
async def set_drill_schedule(
    body: DrillScheduleIn, request: Request, database_id: PathId, principal: Principal = require_role("admin")
) -> DrillScheduleOut:
    given = uc.DrillScheduleInput(
        body.cron,
        body.timezone,
        body.destination,
        body.check.model_dump(mode="json"),
        body.check_database,
        body.grace_s,
    )
    return schedule_out(await uc.set_schedule(deps(request), principal, database_id, given))


@router.get("/databases/{database_id}/drill-schedule", summary="The database's drill schedule (null: none)")
async def get_drill_schedule(
    request: Request, database_id: PathId, principal: Principal = require_role("viewer")
) -> DrillScheduleOut | None:
    row = await uc.get_schedule(deps(request), principal, database_id)
    return None if row is None else schedule_out(row)


@router.delete(
    "/databases/{database_id}/drill-schedule",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Stop drilling the database on a schedule (none: nothing to do)",
)
async def remove_drill_schedule(
    request: Request, database_id: PathId, principal: Principal = require_role("admin")
) -> Response:
    await uc.remove_schedule(deps(request), principal, database_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
