"""Routes of one-off runs: a command in a fresh container of an application's live image. Thin: role,
input, use case, answer. Whoever may deploy starts a run; viewers read runs and their logs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from berth_api.domain.identity import Principal
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import PathId, V1Router
from berth_api.entrypoints.schemas import ID_PATTERN
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import problem_doc
from berth_api.usecases import runs as uc
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
    status: str = Field(description="queued, running, succeeded, failed, timed_out or skipped (a cron job's)")
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


@router.get(
    BASE + "/{run_id}/logs",
    summary="The last lines the run's container wrote (stdout and stderr, with times)",
    responses={503: problem_doc("The scheduler or the run's server cannot be reached")},
)
async def run_logs(
    request: Request,
    application_id: PathId,
    run_id: RunId,
    tail: Annotated[int, Query(ge=1, le=MAX_TAIL, description="How many of the last lines")] = 200,
    principal: Principal = require_role("viewer"),
) -> RunLogsOut:
    row, reply = await uc.logs(deps(request), principal, application_id, run_id, tail)
    return RunLogsOut(run_id=row["id"], status=row["status"], lines=reply.lines)
