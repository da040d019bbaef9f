"""``berth run APP -- cmd ...`` and ``berth runs ...``: one-off runs, a command in a fresh container of the
application's live version.

``berth run`` starts the run (``POST /v1/applications/{id}/runs``), follows its log
(``GET .../runs/{run_id}/logs?follow=true``, Server-Sent Events) and exits as the command did: its exit code,
124 when it timed out (as ``timeout(1)`` does), 1 when it could not run. The command's stdout and stderr go
to the client's stdout and stderr unchanged; what ``berth`` itself says goes to stderr, so the output can be
piped. A dropped stream is asked again from the time of the last line shown, skipping the lines of that
instant already shown.
"""

from __future__ import annotations

import shlex
from typing import Annotated, Any

import typer

from berth_cli.client import sse
from berth_cli.client.api import Api, ApiError
from berth_cli.client.output import print_json, print_table, when
from berth_cli.commands.common import AppRef, Json, session

runs_app = typer.Typer(help="One-off runs (berth run APP -- cmd ...).", no_args_is_help=True)
RETRIES = 5
TIMED_OUT = 124  # as timeout(1)
RESUME_TAIL = 5000
RunRef = Annotated[str, typer.Argument(help="the run's id (berth runs list APP)")]


def goes_on(app: str, run_id: str) -> str:
    return f"Stopped following; the run goes on (berth runs show {app} {run_id})."


def exit_code_of(run: dict[str, Any]) -> int:
    """The command's exit code; 124 for a timed-out run; 1 for one that could not run."""
    if run["status"] == "succeeded":
        return 0
    if run["status"] == "timed_out":
        return TIMED_OUT
    code = run.get("exit_code")
    return code if isinstance(code, int) and code > 0 else 1


def ending(app: dict[str, Any], run: dict[str, Any]) -> str:
    reason = f": {run['reason']}" if run.get("reason") and run["status"] != "succeeded" else ""
    return f"Run {run['run_id']} of {app['name']} {run['status']}{reason}"


def follow_run(api: Api, path: str, quiet: bool = False) -> dict[str, Any]:
    """Print the run's lines (stdout to stdout, stderr to stderr) until its ``end`` event; the run."""
    resume = sse.Resume(RETRIES)
    ended = ApiError(0, {"title": "The run's log stream ended", "detail": "it ended before the run did"})
    while True:
        params: dict[str, Any] = {"follow": True}
        if resume.last_time is not None:
            params.update(since=resume.last_time, tail=RESUME_TAIL)
        try:
            with api.stream(path, headers={"Accept": "text/event-stream"}, **params) as response:
                for event in sse.events(response.iter_lines()):
                    if event.name == "end":
                        return dict(event.json())
                    line = resume.fresh(event) if event.name == "line" else None
                    if line is not None and not quiet:
                        typer.echo(line.get("line", ""), err=line.get("stream") == "stderr")
        except ApiError as exc:
            resume.dropped(exc, ended)
            continue
        resume.dropped(None, ended)


def run(
    app: AppRef,
    command: Annotated[list[str], typer.Argument(help="the command and its arguments, after `--`")],
    service: Annotated[
        str | None, typer.Option("--service", "-s", help="whose image, variables and server (default: the web one)")
    ] = None,
    timeout: Annotated[int | None, typer.Option(help="stop it after this many seconds (api default: 3600)")] = None,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="start it and print its id")] = False,
    as_json: Json = False,
) -> None:
    """Run a command once in a fresh container of the live version and follow its output; exit with the
    command's exit code (124: timed out, 1: it could not run)."""
    body: dict[str, Any] = {"command": command}
    if service is not None:
        body["service"] = service
    if timeout is not None:
        body["timeout_s"] = timeout
    with session() as api:
        detail = api.application(app)
        started = api.send("POST", f"/v1/applications/{detail['id']}/runs", body)
        if detach:
            if as_json:
                print_json(started)
            else:
                typer.echo(started["run_id"])
            return
        run_id = started["run_id"]
        if not as_json:
            typer.echo(f"Run {run_id} of {detail['name']} ({started['service']}) started", err=True)
        path = f"/v1/applications/{detail['id']}/runs/{run_id}/logs"
        try:
            ended = follow_run(api, path, quiet=as_json)
        except KeyboardInterrupt:
            typer.echo(f"\n{goes_on(app, run_id)}", err=True)
            raise typer.Exit(130) from None
    if as_json:
        print_json(ended)
    else:
        typer.echo(ending(detail, ended), err=True)
    raise typer.Exit(exit_code_of(ended))


@runs_app.command("list")
def runs_list(app: AppRef, as_json: Json = False) -> None:
    """The application's runs, newest first (the last 100)."""
    with session() as api:
        detail = api.application(app)
        rows = api.get(f"/v1/applications/{detail['id']}/runs")
    if as_json:
        print_json(rows)
        return
    table = [
        [
            r["run_id"],
            r["status"],
            r["exit_code"],
            r["service"],
            shlex.join(r["command"]),
            when(r["created_at"]),
            None if r["duration_s"] is None else f"{r['duration_s']:.1f}s",
        ]
        for r in rows
    ]
    print_table(["RUN", "STATUS", "EXIT", "SERVICE", "COMMAND", "CREATED", "DURATION"], table)


@runs_app.command("show")
def runs_show(app: AppRef, run_id: RunRef, as_json: Json = False) -> None:
    """One run: its command, status, exit code, reason and last lines."""
    with session() as api:
        detail = api.application(app)
        found = api.get(f"/v1/applications/{detail['id']}/runs/{run_id}")
    if as_json:
        print_json(found)
        return
    typer.echo(ending(detail, found) if found["finished_at"] else f"Run {run_id} of {detail['name']} {found['status']}")
    typer.echo(f"command:  {shlex.join(found['command'])}")
    typer.echo(f"service:  {found['service']}")
    for line in found["last_lines"]:
        typer.echo(f"  {line}")


@runs_app.command("logs")
def runs_logs(
    app: AppRef,
    run_id: RunRef,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="until the run ends (then exit as it did)")] = False,
    tail: Annotated[int, typer.Option("--tail", "-n", help="the last N lines")] = 200,
) -> None:
    """A run's output; ``-f`` follows it to its end and exits as the run did."""
    with session(interrupted=goes_on(app, run_id)) as api:
        detail = api.application(app)
        path = f"/v1/applications/{detail['id']}/runs/{run_id}/logs"
        if follow:
            ended = follow_run(api, path)
            typer.echo(ending(detail, ended), err=True)
            raise typer.Exit(exit_code_of(ended))
        for line in api.get(path, tail=tail)["lines"]:
            typer.echo(line["line"], err=line["stream"] == "stderr")


@runs_app.command("cancel")
def runs_cancel(app: AppRef, run_id: RunRef, as_json: Json = False) -> None:
    """Cancel a run: a queued run never starts, a running one is stopped; it ends ``cancelled``."""
    with session() as api:
        detail = api.application(app)
        found = api.send("POST", f"/v1/applications/{detail['id']}/runs/{run_id}/cancel")
    if as_json:
        print_json(found)
        return
    typer.echo(f"Run {run_id} of {detail['name']} cancelling (berth runs show {app} {run_id})")
