"""Routes that run a database like an application: minor-version upgrades (a backup first), its logs and
its metrics. Thin: role, input, use case, answer. Alert rules on a database are ``/v1/alert-rules`` with
``target_kind: database``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Request
from pydantic import BaseModel, ConfigDict, Field

from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError
from berth_api.domain.roles import allows
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import Resource, V1Router
from berth_api.entrypoints.routes_metrics import UNAVAILABLE, From, Metrics, Step, To, _out, _query
from berth_api.entrypoints.routes_runtime_logs import EVENT_STREAM, FOLLOW_DOC, Follow, Since, Tail, Until, streamed
from berth_api.entrypoints.schemas import ID_PATTERN, Flag
from berth_api.entrypoints.schemas_metrics import MetricsOut
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import problem_doc
from berth_api.usecases import database_observability as observe
from berth_api.usecases import database_upgrades as uc
from berth_api.usecases.runtime_logs import Window
from berth_common.catalogue import RuntimeLogLine

router = V1Router("databases", {404: problem_doc("No such database in this team")})
DatabaseId = Annotated[str, Path(pattern=ID_PATTERN)]


class UpgradeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, max_length=16, examples=["15.9"], description="A version of the same major line")
    destinations: list[Annotated[str, Field(pattern=ID_PATTERN)]] | None = Field(
        default=None,
        max_length=8,
        description="Where the backup taken first goes (default: the destinations of the database's schedule)",
    )
    skip_backup: Flag = Field(default=False, description="Upgrade without a backup first (admins; audited)")


class UpgradeOut(BaseModel):
    id: str
    database_id: str
    from_version: str
    to_version: str
    state: Literal["backing_up", "upgrading", "succeeded", "failed"]
    reason: str = ""
    backup_id: str | None = Field(default=None, description="The backup taken first")
    backup_skipped: Flag = False
    rolled_back: Flag | None = Field(default=None, description="Failed after the switch: the old version runs again")
    created_at: datetime | None = None
    finished_at: datetime | None = None


class LogsOut(BaseModel):
    database_id: str
    lines: list[RuntimeLogLine] = Field(
        description="Oldest first, stdout and stderr apart, with their times; `replica` is the container's name"
    )


@router.start(
    "/databases/{database_id}/upgrade",
    summary="Upgrade to another minor version: a backup first, then the new image on the same data",
    responses={
        409: problem_doc("No backup destination, the database is not running, or another change is under way"),
        422: problem_doc("Not a version of the database's major line (a major upgrade needs a dump and restore)"),
    },
)
async def upgrade_database(
    body: UpgradeCreate, request: Request, database_id: DatabaseId, principal: Principal = require_role("developer")
) -> UpgradeOut:
    if body.skip_backup and not allows(principal.role, "admin"):
        raise ProblemError(403, "Upgrading without a backup first is for the team's admins.")
    given = uc.UpgradeInput(body.version, body.destinations, body.skip_backup)
    return UpgradeOut.model_validate(await uc.start(deps(request), principal, database_id, given))


Resource(router, UpgradeOut).listing(
    "/databases/{database_id}/upgrades", "list_database_upgrades", uc.list_of, "The database's upgrades, newest first"
)


@router.get(
    "/databases/{database_id}/logs",
    operation_id="get_database_logs",
    summary="The lines the database's container wrote (stdout and stderr, with times), as JSON or followed",
    description=FOLLOW_DOC,
    response_model=None,
    responses={
        200: {"model": LogsOut, "description": "The lines", "content": {EVENT_STREAM: {}}},
        503: problem_doc("The scheduler or the database's server cannot be reached"),
    },
)
async def database_logs(
    request: Request,
    database_id: DatabaseId,
    tail: Tail = 200,
    since: Since = None,
    until: Until = None,
    follow: Follow = False,
    principal: Principal = require_role("viewer"),
) -> Any:
    window = Window(tail, since, until)
    if follow:
        return streamed(await observe.follow_logs(deps(request), principal, database_id, window))
    return LogsOut(database_id=database_id, lines=await observe.logs(deps(request), principal, database_id, window))


@router.get(
    "/databases/{database_id}/metrics",
    operation_id="get_database_metrics",
    summary="Time series of the database's container: CPU, memory, network, block I/O, restarts",
    responses=UNAVAILABLE,
)
async def database_metrics(
    request: Request,
    database_id: DatabaseId,
    start: From = None,
    end: To = None,
    step: Step = None,
    metrics: Metrics = None,
    principal: Principal = require_role("viewer"),
) -> MetricsOut:
    reply = await observe.metrics(deps(request), principal, database_id, _query(start, end, step, metrics))
    return _out("database", database_id, reply)
