"""One-off runs of an application: a command in a fresh container of its live deployment's image.

``create`` records the run (``queued``) and stages ``cmd.run.start`` in the same transaction: the live
(last succeeded) deployment's id, whose image and variables the scheduler runs, and the service whose
environment and server the run takes (asked, or the deployment's first web service, else its first
worker). The scheduler answers with ``evt.run.started`` and ``evt.run.finished``; ``on_started`` and
``on_finished`` keep the row up to date (each once per message, a finished run is never changed again).
``cancel`` stages ``cmd.run.cancel`` for a run not finished (409 for one finished; a repeat sends the same
message id, so it is one cancel); the run ends ``cancelled`` by the scheduler's ``evt.run.finished``.
``logs`` reads the run's container logs through ``rpc.scheduler.container_logs`` (the container carries the
team's label, which the scheduler checks).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from berth_api.adapters import applications as apps_repo
from berth_api.adapters import deployments as deployments_repo
from berth_api.adapters import runs as repo
from berth_api.domain.applications import redact
from berth_api.domain.identity import Principal
from berth_api.domain.problems import ProblemError, invalid_field, not_in_team
from berth_api.usecases import Deps
from berth_api.usecases.applications import application_missing, refuse_if_removing
from berth_api.usecases.deployments import run
from berth_api.usecases.observability import RETRY_AFTER_S, ask
from berth_common.catalogue import (
    CancelRun,
    ContainerLogsQuery,
    ContainerLogsReply,
    RunFinished,
    RunStarted,
    StartRun,
)
from berth_common.db import Unit
from berth_common.envelope import new_id
from berth_common.logging import get_logger

log = get_logger(__name__)
SCHEDULER = "scheduler"
LIST_LIMIT = 100


def default_service(spec: dict[str, Any]) -> str | None:
    """The service a run takes when none is asked: the first web service, else the first worker."""
    services = spec.get("services") or []
    for kind in ("web", "worker"):
        found = next((s["name"] for s in services if s.get("kind") == kind), None)
        if found is not None:
            return str(found)
    return None


def choose_service(spec: dict[str, Any], asked: str | None) -> str:
    """The service named (422 when ``spec``, the live deployment's or the application's, has none of that
    name), else the default."""
    names = [s["name"] for s in spec.get("services") or []]
    if asked is not None:
        if asked not in names:
            listed = ", ".join(names) or "none"
            raise invalid_field("/body/service", f"there is no service {asked!r} to run it as (the services: {listed})")
        return asked
    chosen = default_service(spec)
    if chosen is None:
        raise invalid_field("/body/service", "the live deployment has no service to run the command as")
    return chosen


async def create(
    deps: Deps, principal: Principal, application_id: str, command: list[str], service: str | None, timeout_s: int
) -> dict[str, Any]:
    """Record the run and send ``cmd.run.start``; the run as recorded (queued)."""

    async def body(unit: Unit) -> dict[str, Any]:
        app = await apps_repo.get_application(unit.session, principal.team_id, application_id)
        if app is None:
            raise application_missing(principal, application_id)
        refuse_if_removing(app)
        if service is not None:  # a name the application does not have is wrong input, live or not
            choose_service(app["config"], service)
        live = (await deployments_repo.live_of(unit.session, [application_id])).get(application_id)
        if live is None:
            raise ProblemError(409, f"Application {application_id} has no live deployment to run a command in.")
        chosen = choose_service(live["spec"], service)
        run_id = new_id()
        row = await repo.insert_run(
            unit.session,
            {
                "id": run_id,
                "team_id": principal.team_id,
                "application_id": application_id,
                "deployment_id": live["id"],
                "service": chosen,
                "command": list(command),
                "timeout_s": timeout_s,
                "status": "queued",
                "last_lines": [],
                "created_by": principal.user_id,
            },
        )
        command_ = StartRun(
            run_id=run_id,
            team_id=principal.team_id,
            application_id=application_id,
            deployment_id=live["id"],
            service=chosen,
            command=list(command),
            timeout_s=timeout_s,
        )
        await unit.emit(command_, id=f"run-start-{run_id}")
        return row

    row = await run(deps, body)
    log.info("run requested", application_id=application_id, run_id=row["id"], service=row["service"])
    return row


async def _application(deps: Deps, principal: Principal, application_id: str) -> None:
    async with deps.sessionmaker() as s:
        if await apps_repo.get_application(s, principal.team_id, application_id) is None:
            raise application_missing(principal, application_id)


async def list_runs(deps: Deps, principal: Principal, application_id: str) -> list[dict[str, Any]]:
    """The application's runs, newest first (the last ``LIST_LIMIT``)."""
    await _application(deps, principal, application_id)
    async with deps.sessionmaker() as s:
        return await repo.list_runs(s, principal.team_id, application_id, LIST_LIMIT)


async def get_run(deps: Deps, principal: Principal, application_id: str, run_id: str) -> dict[str, Any]:
    await _application(deps, principal, application_id)
    async with deps.sessionmaker() as s:
        row = await repo.get_run(s, principal.team_id, application_id, run_id)
    if row is None:
        raise not_in_team("run", run_id, principal.team_name)
    return row


async def cancel(deps: Deps, principal: Principal, application_id: str, run_id: str) -> dict[str, Any]:
    """Ask the scheduler to cancel the run (queued: it never starts; running: it is stopped); the run as
    recorded now. 409 when it has finished."""

    async def body(unit: Unit) -> dict[str, Any]:
        if await apps_repo.get_application(unit.session, principal.team_id, application_id) is None:
            raise application_missing(principal, application_id)
        row = await repo.get_run(unit.session, principal.team_id, application_id, run_id)
        if row is None:
            raise not_in_team("run", run_id, principal.team_name)
        if row["status"] not in repo.UNFINISHED:
            raise ProblemError(409, f"Run {run_id} has finished already ({row['status']}): there is nothing to cancel.")
        msg = CancelRun(run_id=run_id, team_id=principal.team_id, application_id=application_id)
        await unit.emit(msg, id=f"run-cancel-{run_id}")
        return row

    row = await run(deps, body)
    log.info("run cancel requested", application_id=application_id, run_id=run_id)
    return row


async def logs(
    deps: Deps, principal: Principal, application_id: str, run_id: str, tail: int
) -> tuple[dict[str, Any], ContainerLogsReply]:
    """The run and the last ``tail`` lines of its container (none while it is queued; 404 when its
    container was pruned)."""
    row = await get_run(deps, principal, application_id, run_id)
    if row["container"] is None or row["started_at"] is None:  # never started: no container to read
        return row, ContainerLogsReply(lines=[])
    query = ContainerLogsQuery(
        team_id=principal.team_id, server_id=row["server_id"] or "local", container=row["container"], tail=tail
    )
    reply = await ask(deps, SCHEDULER, query, ContainerLogsReply, fields={"tail": "/query/tail"})
    if reply.unreachable:
        reason = reply.reason or "its Docker engine does not answer"
        raise ProblemError(
            503,
            f"The run's server {row['server_id']} cannot be reached: {reason}. Try again shortly.",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    if not reply.found:
        raise ProblemError(404, f"The container of run {run_id} is gone (only the newest runs keep theirs).")
    return row, reply


# --- the scheduler's answers -------------------------------------------------------------------------


async def on_started(msg: RunStarted, unit: Unit) -> None:
    values = {"status": "running", "server_id": msg.server_id, "container": msg.container, "started_at": msg.started_at}
    await repo.mark_started(unit.session, msg.run_id, values)


async def on_finished(secrets_of: Callable[[dict[str, Any]], list[str]], msg: RunFinished, unit: Unit) -> None:
    """Record the run's end; its last lines and reason are redacted of the secret values of the deployment
    it ran with (``secrets_of``: a deployment row's), as its logs are when read."""
    row = await repo.get_run(unit.session, msg.team_id, msg.application_id, msg.run_id)
    dep = row and await deployments_repo.get_deployment_any(unit.session, row["deployment_id"])
    secrets = secrets_of(dep) if dep else []
    values = {
        "status": msg.status,
        "exit_code": msg.exit_code,
        "reason": redact(msg.reason, secrets),
        "last_lines": [redact(line, secrets) for line in msg.last_lines],
        "duration_s": msg.duration_s,
        "server_id": msg.server_id,
        "container": msg.container or None,
        "finished_at": msg.finished_at,
    }
    ran = msg.exit_code is not None or msg.duration_s > 0
    started_at = msg.finished_at - timedelta(seconds=msg.duration_s) if ran else None
    await repo.mark_finished(unit.session, msg.run_id, values, started_at)
    log.info("run finished", run_id=msg.run_id, status=msg.status, exit_code=msg.exit_code)
