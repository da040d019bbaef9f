"""Cron jobs of an application: a command run on a schedule, each firing a one-off run of kind ``cron``.

The api keeps the job and hands its timing to the scheduler's schedules in the transaction that changes it:
``cmd.schedule.set`` (the job's cron expression and IANA time zone, publishing ``cmd.job.fire``) while it is
enabled, ``cmd.schedule.remove`` when it is disabled or deleted; the schedule's revision grows with every
change, so a change delivered late is a no-op. The expression and the zone are checked as the scheduler
checks them (a 422 names the field).

``on_fire`` carries out a firing, once per message: the run's id follows from the firing's id
(``job_run_id``), so a firing delivered twice records one run. It takes the job as it is now (a deleted or
disabled job fires nothing) and the application's live deployment, records the run (``queued``, kind
``cron``) and sends ``cmd.job.run``, whose concurrency policy the scheduler applies. A firing that cannot
run (no live deployment, the job's service gone) is recorded ``failed`` with the reason and announced by
``evt.job.failed``. ``run_now`` runs the job at once the same way (a new run id, the same policy). The runs' events then keep the row up to date as for any run (``usecases/runs.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from berth_api.adapters import applications as apps_repo
from berth_api.adapters import deployments as deployments_repo
from berth_api.adapters import jobs as repo
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field, not_in_team
from berth_api.usecases import Deps
from berth_api.usecases.applications import application_missing, refuse_if_removing
from berth_api.usecases.backups import body_error
from berth_api.usecases.deployments import run
from berth_api.usecases.runs import choose_service
from berth_common.catalogue import (
    JOB_DEFAULT_GRACE_S,
    FireJob,
    JobFailed,
    RemoveSchedule,
    RunJob,
    SetSchedule,
    job_run_id,
    job_schedule_id,
)
from berth_common.db import Unit
from berth_common.envelope import new_id
from berth_common.logging import get_logger

log = get_logger(__name__)
HISTORY_LIMIT = 100
SETTINGS = ("name", "cron", "timezone", "command", "service", "timeout_s", "concurrency", "enabled")


@dataclass(frozen=True)
class JobInput:
    """What a request gives of a job (None: unchanged, on an update)."""

    name: str | None = None
    cron: str | None = None
    timezone: str | None = None
    command: list[str] | None = None
    service: str | None = None
    timeout_s: int | None = None
    concurrency: str | None = None
    enabled: bool | None = None
    service_given: bool = False  # an update that sets ``service`` (to None: the default service)


def _revision() -> int:
    return time.time_ns() // 1000


def _name_taken(name: str) -> ProblemError:
    return invalid_field("/body/name", f"the application has a job named {name!r} already", status=409)


async def _app(unit: Unit, principal: Principal, application_id: str, *, changing: bool) -> dict[str, Any]:
    app = await apps_repo.get_application(unit.session, principal.team_id, application_id)
    if app is None:
        raise application_missing(principal, application_id)
    if changing:
        refuse_if_removing(app)
    return app


def _check_service(app: dict[str, Any], service: str | None) -> None:
    if service is not None:
        choose_service(app["config"], service)


async def _send_schedule(unit: Unit, job: dict[str, Any]) -> None:
    """Stage the job's schedule as it is now: set while enabled, removed when not (422 naming the field the
    scheduler would refuse)."""
    schedule_id = job_schedule_id(job["id"])
    if not job["enabled"]:
        removal = RemoveSchedule(schedule_id=schedule_id, team_id=job["team_id"], revision=job["revision"])
        await unit.emit(removal, id=f"schedule-remove-{schedule_id}-{job['revision']}")
        return
    template = FireJob(job_id=job["id"], team_id=job["team_id"], application_id=job["application_id"])
    try:
        command = SetSchedule(
            schedule_id=schedule_id,
            team_id=job["team_id"],
            revision=job["revision"],
            cron=job["cron"],
            timezone=job["timezone"],
            grace_s=JOB_DEFAULT_GRACE_S,
            command_type=FireJob.TYPE,
            command=template.model_dump(mode="json"),
            target_id=job["application_id"],
        )
    except ValidationError as exc:
        raise body_error(exc) from None
    await unit.emit(command, id=f"schedule-set-{schedule_id}-{job['revision']}")


async def create(deps: Deps, principal: Principal, application_id: str, given: JobInput) -> dict[str, Any]:
    """Record the job and send its schedule (when enabled); the job as recorded."""

    async def body(unit: Unit) -> dict[str, Any]:
        app = await _app(unit, principal, application_id, changing=True)
        _check_service(app, given.service)
        values = {
            "id": new_id(),
            "team_id": principal.team_id,
            "application_id": application_id,
            **{k: getattr(given, k) for k in SETTINGS},
            "revision": _revision(),
            "created_by": principal.user_id,
        }
        await _send_schedule(unit, values)  # checks the expression and the zone before anything is written
        row = await repo.insert_job(unit.session, values)
        if row is None:
            raise _name_taken(str(given.name))
        return row

    row = await run(deps, body)
    log.info("job created", application_id=application_id, job_id=row["id"], cron=row["cron"])
    return row


async def update(deps: Deps, principal: Principal, application_id: str, job_id: str, given: JobInput) -> dict[str, Any]:
    """Change what ``given`` names and send the schedule again (set, or removed when disabled)."""

    async def body(unit: Unit) -> dict[str, Any]:
        app = await _app(unit, principal, application_id, changing=True)
        job = await repo.get_job(unit.session, principal.team_id, application_id, job_id, lock=True)
        if job is None:
            raise not_in_team("job", job_id, principal.team_name)
        values = {k: getattr(given, k) for k in SETTINGS if getattr(given, k) is not None}
        if given.service_given:
            values["service"] = given.service
        _check_service(app, values.get("service"))
        values["revision"] = _revision()
        await _send_schedule(unit, {**job, **values})
        row = await repo.update_job(unit.session, job_id, values)
        if row is None:
            raise _name_taken(str(values.get("name")))
        return row

    row = await run(deps, body)
    log.info("job changed", application_id=application_id, job_id=job_id, enabled=row["enabled"])
    return row


async def delete(deps: Deps, principal: Principal, application_id: str, job_id: str) -> None:
    """Remove the job's schedule and forget the job (its runs stay among the application's runs)."""

    async def body(unit: Unit) -> None:
        await _app(unit, principal, application_id, changing=False)
        job = await repo.get_job(unit.session, principal.team_id, application_id, job_id, lock=True)
        if job is None:
            raise not_in_team("job", job_id, principal.team_name)
        await _send_schedule(unit, {**job, "enabled": False, "revision": _revision()})
        await repo.delete_job(unit.session, job_id)

    await run(deps, body)
    log.info("job deleted", application_id=application_id, job_id=job_id)


async def _readable(deps: Deps, principal: Principal, application_id: str) -> None:
    async with deps.sessionmaker() as s:
        if await apps_repo.get_application(s, principal.team_id, application_id) is None:
            raise application_missing(principal, application_id)


async def list_jobs(deps: Deps, principal: Principal, application_id: str) -> list[dict[str, Any]]:
    await _readable(deps, principal, application_id)
    async with deps.sessionmaker() as s:
        return await repo.list_jobs(s, principal.team_id, application_id)


async def get_job(deps: Deps, principal: Principal, application_id: str, job_id: str) -> dict[str, Any]:
    await _readable(deps, principal, application_id)
    async with deps.sessionmaker() as s:
        row = await repo.get_job(s, principal.team_id, application_id, job_id)
    if row is None:
        raise not_in_team("job", job_id, principal.team_name)
    return row


async def history(deps: Deps, principal: Principal, application_id: str, job_id: str) -> list[dict[str, Any]]:
    """The job's runs, newest first (the last ``HISTORY_LIMIT``); each is read through the runs routes."""
    await get_job(deps, principal, application_id, job_id)
    async with deps.sessionmaker() as s:
        return await repo.runs_of_job(s, principal.team_id, job_id, HISTORY_LIMIT)


# --- a firing ----------------------------------------------------------------------------------------------


async def on_fire(msg: FireJob, unit: Unit) -> None:
    """Record the firing's run and send ``cmd.job.run`` (see the module)."""
    job = await repo.get_job(unit.session, msg.team_id, msg.application_id, msg.job_id)
    if job is None or not job["enabled"]:
        log.info("job firing of a job deleted or disabled; nothing runs", job_id=msg.job_id)
        return
    app = await apps_repo.get_application(unit.session, msg.team_id, msg.application_id)
    if app is None or app.get("state") == "removing":
        return
    run_id = job_run_id(msg.firing_id or f"{msg.job_id}-{new_id()}")
    live = (await deployments_repo.live_of(unit.session, [msg.application_id])).get(msg.application_id)
    refusal, service = None, job["service"] or ""
    if live is None:
        refusal = "the application has no live deployment to run the job in"
    else:
        try:
            service = choose_service(live["spec"], job["service"])
        except ProblemError as exc:
            refusal = f"the job cannot run: {exc.detail}"
    values = {
        "id": run_id,
        "team_id": msg.team_id,
        "application_id": msg.application_id,
        "deployment_id": live["id"] if live is not None else "",
        "service": service[:32],
        "command": list(job["command"]),
        "timeout_s": job["timeout_s"],
        "status": "queued" if refusal is None else "failed",
        "reason": refusal or "",
        "last_lines": [],
        "kind": "cron",
        "job_id": job["id"],
    }
    if refusal is not None:
        values["finished_at"] = datetime.now(UTC)
    if await repo.insert_job_run(unit.session, values) is None:
        return  # the firing was carried out already
    if refusal is not None:
        failed = JobFailed(
            job_id=job["id"],
            job_name=job["name"],
            run_id=run_id,
            team_id=msg.team_id,
            application_id=msg.application_id,
            status="failed",
            reason=refusal,
        )
        await unit.emit(failed, id=f"job-run-{run_id}-failed")
        log.warning("job firing failed", job_id=job["id"], run_id=run_id, reason=refusal)
        return
    assert live is not None
    await _send_run(unit, job, run_id, live["id"], service)
    log.info("job fired", job_id=job["id"], run_id=run_id, firing_id=msg.firing_id)


async def _send_run(unit: Unit, job: dict[str, Any], run_id: str, deployment_id: str, service: str) -> None:
    """Send ``cmd.job.run`` for the job's run recorded ``queued`` (the scheduler applies its policy)."""
    command = RunJob(
        run_id=run_id,
        team_id=job["team_id"],
        application_id=job["application_id"],
        deployment_id=deployment_id,
        service=service,
        command=list(job["command"]),
        timeout_s=job["timeout_s"],
        job_id=job["id"],
        job_name=job["name"],
        concurrency=job["concurrency"],
    )
    await unit.emit(command, id=f"job-run-{run_id}")


async def run_now(deps: Deps, principal: Principal, application_id: str, job_id: str) -> dict[str, Any]:
    """Run the job now, outside its schedule (enabled or not): a run of kind ``cron``, under the job's
    concurrency policy as a firing is; the run as recorded (queued). 409: no live deployment; 422: the
    job's service is gone from it."""

    async def body(unit: Unit) -> dict[str, Any]:
        await _app(unit, principal, application_id, changing=True)
        job = await repo.get_job(unit.session, principal.team_id, application_id, job_id)
        if job is None:
            raise not_in_team("job", job_id, principal.team_name)
        live = (await deployments_repo.live_of(unit.session, [application_id])).get(application_id)
        if live is None:
            raise ProblemError(409, f"Application {application_id} has no live deployment to run the job in.")
        service = choose_service(live["spec"], job["service"])
        values = {
            "id": new_id(),
            "team_id": principal.team_id,
            "application_id": application_id,
            "deployment_id": live["id"],
            "service": service,
            "command": list(job["command"]),
            "timeout_s": job["timeout_s"],
            "status": "queued",
            "last_lines": [],
            "kind": "cron",
            "job_id": job["id"],
            "created_by": principal.user_id,
        }
        row = await repo.insert_job_run(unit.session, values)
        assert row is not None  # a new id
        await _send_run(unit, job, row["id"], live["id"], service)
        return row

    row = await run(deps, body)
    log.info("job run now", job_id=job_id, run_id=row["id"])
    return row


async def unschedule_all(unit: Unit, team_id: str, application_id: str) -> int:
    """Remove the schedule of every job of the application and forget the jobs (it is being deleted: nothing
    could run them any more); how many there were."""
    rows = await repo.jobs_of(unit.session, team_id, application_id)
    for job in rows:
        await _send_schedule(unit, {**job, "enabled": False, "revision": _revision()})
        await repo.delete_job(unit.session, job["id"])
    return len(rows)
