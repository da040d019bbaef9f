"""Routes of cron jobs: a command an application runs on a schedule (``usecases/jobs.py``). Thin: role,
input, use case, answer. Whoever may deploy creates and changes jobs (an admin deletes one, as every deletion); viewers read them and their history, whose runs
(with exit codes, last lines and logs) are read through the runs routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from berth_api.domain.identity import Principal
from berth_api.entrypoints.auth import require_role
from berth_api.entrypoints.resources import PathId, V1Router
from berth_api.entrypoints.routes_runs import RunOut, run_out
from berth_api.entrypoints.schemas import ID_PATTERN, Flag
from berth_api.entrypoints.state import deps
from berth_api.entrypoints.v1 import problem_doc
from berth_api.usecases import jobs as uc
from berth_common.catalogue import (
    RUN_DEFAULT_TIMEOUT_S,
    Concurrency,
    CronExpression,
    JobName,
    RunArgv,
    RunTimeoutS,
    TimeZone,
)
from berth_common.values import Slug

router = V1Router("jobs")
JobId = Annotated[str, Path(pattern=ID_PATTERN)]
BASE = "/applications/{application_id}/jobs"
CRON = "A cron expression of five fields (minute hour day-of-month month day-of-week), e.g. `30 2 * * *`"
ZONE = "The IANA time zone the expression is read in (`Europe/Berlin`, `UTC`)"
POLICY = "While a previous run still runs: `forbid` skips the firing, `replace` stops it, `allow` runs both"


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: JobName = Field(description="Unique in the application: lowercase letters, digits and dashes")
    cron: CronExpression = Field(description=CRON, examples=["30 2 * * *"])
    timezone: TimeZone = Field(default="UTC", description=ZONE)
    command: RunArgv = Field(description="The argv of the process (never given to a shell)")
    service: Slug | None = Field(default=None, description="Whose environment and server (default: first web)")
    timeout_s: RunTimeoutS = Field(default=RUN_DEFAULT_TIMEOUT_S, description="A run is killed after this long")
    concurrency: Concurrency = Field(default="forbid", description=POLICY)
    enabled: Flag = True


class JobUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: JobName | None = None
    cron: CronExpression | None = Field(default=None, description=CRON)
    timezone: TimeZone | None = Field(default=None, description=ZONE)
    command: RunArgv | None = None
    service: Slug | None = Field(default=None, description="null: the default service")
    timeout_s: RunTimeoutS | None = None
    concurrency: Concurrency | None = Field(default=None, description=POLICY)
    enabled: Flag | None = None


class JobOut(BaseModel):
    job_id: str
    application_id: str
    name: str
    cron: str
    timezone: str
    command: list[str]
    service: str | None
    timeout_s: int
    concurrency: str
    enabled: Flag
    created_at: datetime
    updated_at: datetime


def job_out(row: dict[str, Any]) -> JobOut:
    return JobOut.model_validate({**row, "job_id": row["id"]})


def _input(body: JobCreate | JobUpdate) -> uc.JobInput:
    given = body.model_dump(exclude_unset=True)
    return uc.JobInput(**given, service_given="service" in given)


@router.create(BASE, summary="Create a cron job", responses={409: problem_doc("A job of that name exists")})
async def create_job(
    body: JobCreate, request: Request, application_id: PathId, principal: Principal = require_role("developer")
) -> JobOut:
    given = uc.JobInput(**body.model_dump(), service_given=True)
    return job_out(await uc.create(deps(request), principal, application_id, given))


@router.get(BASE, summary="The application's cron jobs")
async def list_jobs(
    request: Request, application_id: PathId, principal: Principal = require_role("viewer")
) -> list[JobOut]:
    return [job_out(r) for r in await uc.list_jobs(deps(request), principal, application_id)]


@router.get(BASE + "/{job_id}", summary="One cron job")
async def get_job(
    request: Request, application_id: PathId, job_id: JobId, principal: Principal = require_role("viewer")
) -> JobOut:
    return job_out(await uc.get_job(deps(request), principal, application_id, job_id))


@router.patch(
    BASE + "/{job_id}",
    summary="Change a cron job (what is given; a changed schedule counts from now)",
    responses={409: problem_doc("A job of that name exists")},
)
async def update_job(
    body: JobUpdate,
    request: Request,
    application_id: PathId,
    job_id: JobId,
    principal: Principal = require_role("developer"),
) -> JobOut:
    return job_out(await uc.update(deps(request), principal, application_id, job_id, _input(body)))


@router.delete(BASE + "/{job_id}", status_code=204, summary="Delete a cron job (its runs stay)")
async def delete_job(
    request: Request, application_id: PathId, job_id: JobId, principal: Principal = require_role("admin")
) -> Response:
    await uc.delete(deps(request), principal, application_id, job_id)
    return Response(status_code=204)


@router.get(
    BASE + "/{job_id}/runs",
    operation_id="list_job_runs",
    summary="The job's runs, newest first (each read through the runs routes)",
)
async def job_history(
    request: Request, application_id: PathId, job_id: JobId, principal: Principal = require_role("viewer")
) -> list[RunOut]:
    return [run_out(r) for r in await uc.history(deps(request), principal, application_id, job_id)]


@router.start(
    BASE + "/{job_id}/runs",
    summary="Run the job now, outside its schedule (a run of kind `cron`, under the job's concurrency policy)",
    responses={409: problem_doc("No live deployment, or the application is being removed")},
)
async def run_job_now(
    request: Request, application_id: PathId, job_id: JobId, principal: Principal = require_role("developer")
) -> RunOut:
    return run_out(await uc.run_now(deps(request), principal, application_id, job_id))
