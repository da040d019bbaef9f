"""``berth jobs ...``: an application's cron jobs (``/v1/applications/{id}/jobs``). A job is named by its
name or its id; ``berth jobs run`` runs it now (a run of kind ``cron``, read with ``berth runs``)."""

from __future__ import annotations

import shlex
from typing import Annotated, Any

import typer

from berth_cli.client.api import Api, ApiError
from berth_cli.client.output import print_json, print_table
from berth_cli.commands.common import AppRef, Json, session

jobs_app = typer.Typer(help="Cron jobs of an application.", no_args_is_help=True)
JobRef = Annotated[str, typer.Argument(help="the job's name or id (berth jobs list APP)")]


def find_job(api: Api, app_id: str, ref: str) -> dict[str, Any]:
    """The job named ``ref`` (its name, else its id) of the application."""
    for job in api.get(f"/v1/applications/{app_id}/jobs"):
        if ref in (job["name"], job["job_id"]):
            return dict(job)
    raise ApiError(404, {"title": "Not found", "detail": f"The application has no job {ref!r}."})


@jobs_app.command("list")
def jobs_list(app: AppRef, as_json: Json = False) -> None:
    """The application's cron jobs."""
    with session() as api:
        detail = api.application(app)
        rows = api.get(f"/v1/applications/{detail['id']}/jobs")
    if as_json:
        print_json(rows)
        return
    table = [
        [
            j["name"],
            j["cron"],
            j["timezone"],
            j["concurrency"],
            "yes" if j["enabled"] else "no",
            shlex.join(j["command"]),
        ]
        for j in rows
    ]
    print_table(["NAME", "CRON", "TIMEZONE", "CONCURRENCY", "ENABLED", "COMMAND"], table)


@jobs_app.command("show")
def jobs_show(app: AppRef, job: JobRef, as_json: Json = False) -> None:
    """One cron job and its last runs."""
    with session() as api:
        detail = api.application(app)
        found = find_job(api, detail["id"], job)
        history = api.get(f"/v1/applications/{detail['id']}/jobs/{found['job_id']}/runs")
    if as_json:
        print_json({**found, "runs": history})
        return
    typer.echo(f"Job {found['name']} of {detail['name']} ({found['job_id']})")
    typer.echo(f"schedule:     {found['cron']} ({found['timezone']})")
    typer.echo(f"command:      {shlex.join(found['command'])}")
    typer.echo(f"concurrency:  {found['concurrency']}")
    typer.echo(f"enabled:      {'yes' if found['enabled'] else 'no'}")
    for run in history[:5]:
        typer.echo(f"  {run['run_id']}  {run['status']}")


@jobs_app.command("create")
def jobs_create(
    app: AppRef,
    name: Annotated[str, typer.Argument(help="the job's name")],
    cron: Annotated[str, typer.Argument(help="when it fires: five fields, e.g. '30 2 * * *'")],
    command: Annotated[list[str], typer.Argument(help="the command and its arguments, after `--`")],
    timezone: Annotated[str | None, typer.Option(help="the zone the schedule is read in (api default: UTC)")] = None,
    service: Annotated[str | None, typer.Option("--service", "-s", help="whose image, variables and server")] = None,
    timeout: Annotated[int | None, typer.Option(help="stop a run after this many seconds")] = None,
    concurrency: Annotated[str | None, typer.Option(help="forbid, replace or allow (api default: forbid)")] = None,
    as_json: Json = False,
) -> None:
    """Create a cron job: ``berth jobs create APP NAME 'CRON' -- cmd ...``."""
    body: dict[str, Any] = {"name": name, "cron": cron, "command": command}
    for key, value in (
        ("timezone", timezone),
        ("service", service),
        ("timeout_s", timeout),
        ("concurrency", concurrency),
    ):
        if value is not None:
            body[key] = value
    with session() as api:
        detail = api.application(app)
        created = api.send("POST", f"/v1/applications/{detail['id']}/jobs", body)
    if as_json:
        print_json(created)
        return
    typer.echo(f"Job {created['name']} of {detail['name']} created ({created['job_id']})")


@jobs_app.command("delete")
def jobs_delete(app: AppRef, job: JobRef) -> None:
    """Delete a cron job (its runs stay)."""
    with session() as api:
        detail = api.application(app)
        found = find_job(api, detail["id"], job)
        api.send("DELETE", f"/v1/applications/{detail['id']}/jobs/{found['job_id']}")
    typer.echo(f"Job {found['name']} of {detail['name']} deleted")


@jobs_app.command("run")
def jobs_run(app: AppRef, job: JobRef, as_json: Json = False) -> None:
    """Run a cron job now, under its concurrency policy; prints the run's id."""
    with session() as api:
        detail = api.application(app)
        found = find_job(api, detail["id"], job)
        started = api.send("POST", f"/v1/applications/{detail['id']}/jobs/{found['job_id']}/runs")
    if as_json:
        print_json(started)
        return
    typer.echo(f"Run {started['run_id']} of job {found['name']} queued (berth runs show {app} {started['run_id']})")
