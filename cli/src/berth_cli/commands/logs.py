"""``berth logs APP`` (and ``berth db logs``): an application's own logs, every replica merged, each line
prefixed with its service and replica. ``-f`` follows the api's event stream (one ``event: line`` per line)
and resumes after a dropped connection from the time of the last line it showed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from berth_cli.client import sse
from berth_cli.client.api import Api, ApiError
from berth_cli.commands.common import AppRef, DbRef, Json, session
from berth_cli.commands.deploy import deployment_id, follow_to_end

RETRIES = 5
Follow = Annotated[bool, typer.Option("--follow", "-f", help="keep printing new lines")]
Tail = Annotated[int, typer.Option("--tail", "-n", help="the last N lines first")]
Since = Annotated[str | None, typer.Option(help="only lines from this time on (RFC 3339)")]
Until = Annotated[str | None, typer.Option(help="only lines before this time (RFC 3339)")]
Timestamps = Annotated[bool, typer.Option("--timestamps", "-t", help="prefix each line with its time")]


def format_line(line: dict[str, Any], timestamps: bool) -> str:
    """``<replica> | text``: the replica (its container's name) first, the time when asked."""
    who = str(line.get("replica") or line.get("service") or "")
    head = f"{line.get('time', '')} " if timestamps else ""
    return f"{head}{who} | {line.get('line', '')}" if who else f"{head}{line.get('line', '')}"


def show(line: dict[str, Any], timestamps: bool, as_json: bool) -> None:
    typer.echo(json.dumps(line, ensure_ascii=False) if as_json else format_line(line, timestamps))


def passed(until: str | None) -> bool:
    """Whether ``until`` (RFC 3339; no zone: UTC) is in the past."""
    if not until:
        return False
    try:
        end = datetime.fromisoformat(until.replace("Z", "+00:00"))
    except ValueError:
        return False
    return (end if end.tzinfo else end.replace(tzinfo=UTC)) <= datetime.now(UTC)


def stream_lines(api: Api, path: str, params: dict[str, Any], timestamps: bool, as_json: bool) -> None:
    """Print the live stream; on a dropped connection, ask again from the last line's time (the lines of
    that same instant that were shown already are skipped). A stream that ends after ``until`` is done."""
    resume = sse.Resume(RETRIES)
    ended = ApiError(0, {"title": "The log stream ended", "detail": "the api closed it"})
    while True:
        query = dict(params)
        if resume.last_time is not None:
            query.update(since=resume.last_time, tail=None)
        try:
            with api.stream(path, headers={"Accept": "text/event-stream"}, follow=True, **query) as response:
                for event in sse.events(response.iter_lines()):
                    line = resume.fresh(event) if event.name == "line" else None
                    if line is not None:
                        show(line, timestamps, as_json)
            if passed(params.get("until")):
                return  # the api ends the stream once the window's end has passed
        except ApiError as exc:
            resume.dropped(exc, ended)
            continue
        resume.dropped(None, ended)


def print_logs(api: Api, path: str, params: dict[str, Any], follow: bool, timestamps: bool, as_json: bool) -> None:
    if follow:
        stream_lines(api, path, params, timestamps, as_json)
        return
    answer = api.get(path, **params)
    for line in answer["lines"]:
        show(line, timestamps, as_json)
    for server, why in (answer.get("unreachable") or {}).items():
        typer.echo(f"berth: the lines of server {server} are missing: {why}", err=True)
    if answer.get("truncated"):
        typer.echo("berth: the oldest lines were left out (ask with --since or a smaller --tail)", err=True)


def deployment_log(api: Api, app: dict[str, Any], ref: str, follow: bool) -> None:
    """A deployment's log as text, or followed until it ends (exit 1 when it did not succeed)."""
    dep = api.get(f"/v1/deployments/{deployment_id(api, app['id'], ref)}")
    if follow:
        follow_to_end(api, app, dep)
        return
    typer.echo(api.text(f"/v1/deployments/{dep['id']}/logs"), nl=False)


def logs(
    app: AppRef,
    follow: Follow = False,
    service: Annotated[str | None, typer.Option("--service", "-s", help="only this service's replicas")] = None,
    tail: Tail = 200,
    since: Since = None,
    until: Until = None,
    timestamps: Timestamps = False,
    deployment: Annotated[
        str | None,
        typer.Option("--deployment", "-d", help="a deployment's build and rollout log instead (id or number)"),
    ] = None,
    as_json: Json = False,
) -> None:
    """An application's own logs, every replica merged (``--json``: one JSON object per line); with
    ``--deployment``, that deployment's build and rollout log."""
    with session() as api:
        detail = api.application(app)
        if deployment is not None:
            deployment_log(api, detail, deployment, follow)
            return
        path = f"/v1/applications/{detail['id']}/logs"
        params = {"service": service, "tail": tail, "since": since, "until": until}
        print_logs(api, path, params, follow, timestamps, as_json)


def db_logs(
    database: DbRef,
    follow: Follow = False,
    tail: Tail = 200,
    since: Since = None,
    until: Until = None,
    timestamps: Timestamps = False,
    as_json: Json = False,
) -> None:
    """A database's logs (``--json``: one JSON object per line)."""
    with session() as api:
        path = f"/v1/databases/{api.database(database)['id']}/logs"
        print_logs(api, path, {"tail": tail, "since": since, "until": until}, follow, timestamps, as_json)
