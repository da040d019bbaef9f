"""Routes of backups: a team's backup destinations, a database's backups (on demand and on a schedule), and
restores. Thin: role, input, use case, answer.

Viewers read; developers start backups and restore into a new database; admins manage destinations and
schedules, restore over an existing database (with ``confirm``) and export the team's backup key (audited).
An S3 secret key is write-only: no answer carries it, nor a database password.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import Path, Query, Request, Response, status

from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError
from berth_api.domain.roles import allows
from berth_api.entrypoints.audit import record_read
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import Resource, V1Router
from berth_api.entrypoints.schemas import ID_PATTERN
from berth_api.entrypoints.schemas_backups import (
    BACKUP_ID,
    BackupCreate,
    BackupKeyOut,
    BackupOut,
    DestinationIn,
    DestinationOut,
    DestinationUpdate,
    RestoreCreate,
    RestoreItem,
    RestoreOut,
    S3DestinationIn,
    ScheduleIn,
    ScheduleOut,
    backup_out,
    destination_out,
    schedule_out,
)
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import Responses, problem_doc
from berth_api.usecases import backup_destinations as dest_uc
from berth_api.usecases import backup_keys as key_uc
from berth_api.usecases import backups as uc
from berth_api.usecases import drills as drill_uc
from berth_api.usecases import restores as restore_uc

router = V1Router("backups")
CONFLICT: Responses = {409: problem_doc("The name is taken, or a schedule uses the destination")}
DatabaseId = Annotated[str, Path(pattern=ID_PATTERN)]
destinations = Resource(router, DestinationOut, destination_out)


@router.create(
    "/backup-destinations",
    operation_id="create_backup_destination",
    summary="Add a backup destination (an S3 bucket or a directory)",
    responses=CONFLICT,
)
async def create_destination(
    body: DestinationIn, request: Request, principal: Principal = require_role("admin")
) -> DestinationOut:
    settings = body.model_dump(exclude={"kind", "name", "secret_key"})
    secret = body.secret_key.get_secret_value() if isinstance(body, S3DestinationIn) else None
    row = await dest_uc.create(deps(request), principal, body.name, body.kind, settings, secret)
    return destination_out(row)


@router.patch(
    "/backup-destinations/{destination_id}",
    operation_id="update_backup_destination",
    summary="Change a backup destination",
    responses=CONFLICT,
)
async def update_destination(
    body: DestinationUpdate,
    request: Request,
    destination_id: DatabaseId,
    principal: Principal = require_role("admin"),
) -> DestinationOut:
    values = body.model_dump(exclude_none=True, exclude={"secret_key"})
    secret = body.secret_key.get_secret_value() if body.secret_key is not None else None
    return destination_out(await drill_uc.update_destination(deps(request), principal, destination_id, values, secret))


destinations.listing("/backup-destinations", "list_backup_destinations", dest_uc.list_all, "The team's destinations")
destinations.get("/backup-destinations/{destination_id}", "get_backup_destination", dest_uc.get, "A destination")
destinations.delete(
    "/backup-destinations/{destination_id}",
    "delete_backup_destination",
    dest_uc.delete,
    "Forget a backup destination (refused while a schedule uses it; stored backups stay where they are)",
    responses=CONFLICT,
)


@router.start("/databases/{database_id}/backups", summary="Back the database up now (state: requested, then running)")
async def start_backup(
    body: BackupCreate, request: Request, database_id: DatabaseId, principal: Principal = require_role("developer")
) -> BackupOut:
    retention = body.retention.model_dump(exclude_none=True) if body.retention else None
    given = uc.BackupInput(list(body.destinations), body.compression, retention, body.encrypt)
    return backup_out(await uc.start(deps(request), principal, database_id, given))


backups = Resource(router, BackupOut, backup_out)
Resource(router, BackupOut, backup_out, BACKUP_ID).get(
    "/backups/{backup_id}", "get_backup", uc.get, "A backup: its state, reason and verified objects"
)
backups.listing("/databases/{database_id}/backups", "list_backups", uc.list_of, "The database's backups, newest first")
Resource(router, RestoreOut).get("/restores/{restore_id}", "get_restore", restore_uc.get, "A restore and its log")


NEXT_PAGE = {
    "Link": {
        "description": 'The next (older) page, `<url>; rel="next"`, while there is one',
        "schema": {"type": "string"},
    }
}


@router.get(
    "/databases/{database_id}/restores",
    operation_id="list_restores",
    summary="The database's restores, newest first (each restore's log is on the restore itself)",
    description='`limit` of them; `Link: <...>; rel="next"` gives the next page (`before` the last of this one) '
    "while there is one.",
    responses={200: {"description": "A page of the restores", "headers": NEXT_PAGE}},
)
async def list_restores(
    request: Request,
    response: Response,
    database_id: DatabaseId,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[
        str | None, Query(pattern=ID_PATTERN, description="Only restores older than this one (the last of a page)")
    ] = None,
    principal: Principal = require_role("viewer"),
) -> list[RestoreItem]:
    rows, older = await restore_uc.list_for(deps(request), principal, database_id, limit, before)
    if older is not None:
        response.headers["Link"] = f'<{request.url.path}?{urlencode({"limit": limit, "before": older})}>; rel="next"'
    return [RestoreItem.model_validate(r) for r in rows]


@router.start(
    "/databases/{database_id}/restore",
    summary="Restore a backup into a new database (default) or over this one (admins, with confirm)",
    responses={409: problem_doc("The backup did not succeed, or none of its destinations exists any more")},
)
async def restore_backup(
    body: RestoreCreate, request: Request, database_id: DatabaseId, principal: Principal = require_role("developer")
) -> RestoreOut:
    if body.target == "existing" and not allows(principal.role, "admin"):
        raise ProblemError(403, "Restoring over an existing database is for the team's admins.")
    given = restore_uc.RestoreInput(body.backup_id, body.destination, body.target, body.name, body.confirm)
    return RestoreOut.model_validate(await restore_uc.start(deps(request), principal, database_id, given))


@router.put(
    "/databases/{database_id}/backup-schedule",
    operation_id="set_backup_schedule",
    summary="Back the database up on a schedule",
)
async def set_schedule(
    body: ScheduleIn, request: Request, database_id: DatabaseId, principal: Principal = require_role("admin")
) -> ScheduleOut:
    given = uc.ScheduleInput(
        body.cron,
        body.timezone,
        list(body.destinations),
        body.retention.model_dump(exclude_none=True),
        body.compression,
        body.grace_s,
        body.encrypt,
    )
    return schedule_out(await uc.set_schedule(deps(request), principal, database_id, given))


@router.get(
    "/databases/{database_id}/backup-schedule",
    operation_id="get_backup_schedule",
    summary="The database's backup schedule (null: none)",
)
async def get_schedule(
    request: Request, database_id: DatabaseId, principal: Principal = require_role("viewer")
) -> ScheduleOut | None:
    row = await uc.get_schedule(deps(request), principal, database_id)
    return None if row is None else schedule_out(row)


@router.delete(
    "/databases/{database_id}/backup-schedule",
    operation_id="remove_backup_schedule",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Stop backing the database up on a schedule (none: nothing to do)",
)
async def remove_schedule(
    request: Request, database_id: DatabaseId, principal: Principal = require_role("admin")
) -> Response:
    await uc.remove_schedule(deps(request), principal, database_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/team/backup-key",
    summary="Export the team's backup key to an admin (made on first use); the read is audited",
)
async def export_backup_key(request: Request, principal: Principal = require_role("admin")) -> BackupKeyOut:
    out = BackupKeyOut.model_validate(await key_uc.export(deps(request), principal))
    await record_read(request, ["backup_key"])
    return out
