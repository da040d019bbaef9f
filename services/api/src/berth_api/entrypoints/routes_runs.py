"""Routes of one-off runs: a command in a fresh container of an application's live image. Thin: role,
input, use case, answer. Whoever may deploy starts a run; viewers read runs and their logs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from berth_api.domain.identity import Principal
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import PathId, V1Router
from berth_api.entrypoints.routes_runtime_logs import EVENT_STREAM, STREAM_HEADERS
from berth_api.entrypoints.schemas import ID_PATTERN, Timestamp
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import problem_doc
from berth_api.usecases import run_logs as run_logs_uc
from berth_api.usecases import runs as uc
from berth_api.usecases.runtime_logs import Window
from berth_common.catalogue import RUN_DEFAULT_TIMEOUT_S, ContainerLogLine, RunArgv, RunTimeoutS
from berth_common.catalogue.container_logs import MAX_TAIL
from berth_common.values import Slug

router = V1Router("runs")
RunId = Annotated[str, Path(pattern=ID_PATTERN)]
BASE = "/applications/{application_id}/runs"


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: RunArgv = Field(
        description="The command as argv (never given to a shell): 1 to 64 arguments, each at most 4096 characters",
        examples=[["python", "manage.py", "migrate"]],
    )
    service: Slug | None = Field(
        default=None,
        description="The service whose environment and server it takes (default: the first web, else worker)",
    )
    timeout_s: RunTimeoutS = Field(default=RUN_DEFAULT_TIMEOUT_S, description="Killed after this many seconds")


class RunOut(BaseModel):
    run_id: str
    application_id: str
    deployment_id: str = Field(description="The live deployment whose image and variables it runs with")
    service: str
    command: list[str]
    timeout_s: int
    status: str = Field(
        description="queued, running, succeeded, failed, timed_out, skipped (a cron job's) or cancelled"
    )
    exit_code: int | None
    reason: str = Field(description="Why it failed or timed out, e.g. `exited with code 3`")
    last_lines: list[str] = Field(description="The last lines it wrote (at most 20), once finished")
    server_id: str | None
    duration_s: float | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    kind: str = Field(default="run", description="`run` (one-off) or `cron` (a cron job's firing)")
    job_id: str | None = Field(default=None, description="The cron job of a `cron` run")


class RunLogsOut(BaseModel):
    run_id: str
    status: str
    lines: list[ContainerLogLine]


def run_out(row: dict[str, Any]) -> RunOut:
    return RunOut.model_validate({**row, "run_id": row["id"]})


RUN_DESCRIPTION = """Runs `command` once in a fresh container of the live deployment's image, with the
application's variables and the chosen service's environment, on the server that service runs on. The
answer does not wait: poll the run (or its logs) for `running`, then `succeeded`, `failed` (with the exit
code and the last lines) or `timed_out`. 409: the application has no live deployment or is being removed."""


@router.start(
    BASE,
    summary="Run a one-off command in a fresh container of the live version",
    description=RUN_DESCRIPTION,
    responses={409: problem_doc("No live deployment, or the application is being removed")},
)
async def create_run(
    body: RunCreate, request: Request, application_id: PathId, principal: Principal = require_role("developer")
) -> RunOut:
    row = await uc.create(deps(request), principal, application_id, list(body.command), body.service, body.timeout_s)
    return run_out(row)


@router.get(BASE, summary="The application's one-off runs, newest first")
async def list_runs(
    request: Request, application_id: PathId, principal: Principal = require_role("viewer")
) -> list[RunOut]:
    return [run_out(r) for r in await uc.list_runs(deps(request), principal, application_id)]


@router.get(BASE + "/{run_id}", summary="One run: its status, exit code, reason and last lines")
async def get_run(
    request: Request, application_id: PathId, run_id: RunId, principal: Principal = require_role("viewer")
) -> RunOut:
    return run_out(await uc.get_run(deps(request), principal, application_id, run_id))


@router.start(
    BASE + "/{run_id}/cancel",
    summary="Cancel a run: a queued run never starts, a running one is stopped; it ends `cancelled`",
    responses={409: problem_doc("The run has finished already")},
)
async def cancel_run(
    request: Request, application_id: PathId, run_id: RunId, principal: Principal = require_role("developer")
) -> RunOut:
    return run_out(await uc.cancel(deps(request), principal, application_id, run_id))


def _rendered(row: dict[str, Any]) -> str:
    return run_out(row).model_dump_json()


RUN_LOGS_DOC = (
    "`follow=false`: JSON, the last `tail` lines of the run's container. `follow=true`: `text/event-stream`: "
    "the last `tail` lines, then each new one as it is written, one `event: line` each (data: the runtime "
    "logs' line object), a `: keepalive` comment when quiet; once the run ended, one `event: end` (data: "
    "the run, with its status and exit code) and the stream ends. A queued run's stream waits for it to "
    "start. Secret values are redacted."
)


@router.get(
    BASE + "/{run_id}/logs",
    operation_id="get_run_logs",
    summary="The lines the run's container wrote (stdout and stderr, with times), as JSON or followed",
    description=RUN_LOGS_DOC,
    response_model=None,
    responses={
        200: {"model": RunLogsOut, "description": "The lines", "content": {EVENT_STREAM: {}}},
        503: problem_doc("The scheduler or the run's server cannot be reached"),
    },
)
async def run_logs(
    request: Request,
    application_id: PathId,
    run_id: RunId,
    tail: Annotated[int, Query(ge=1, le=MAX_TAIL, description="How many of the last lines")] = 200,
    since: Annotated[
        Timestamp | None, Query(description="Only lines written at or after this time (RFC 3339; follow only)")
    ] = None,
    follow: Annotated[bool, Query(description="Stream as Server-Sent Events until the run ends")] = False,
    principal: Principal = require_role("viewer"),
) -> Any:
    d = deps(request)
    if follow:
        window = Window(tail, since)
        follow_ = await run_logs_uc.follow_run(d, principal, application_id, run_id, window, _rendered)
        return StreamingResponse(follow_.events(), media_type=EVENT_STREAM, headers=STREAM_HEADERS)
    row, lines = await run_logs_uc.tail(d, principal, application_id, run_id, tail)
    return RunLogsOut(run_id=row["id"], status=row["status"], lines=lines)
