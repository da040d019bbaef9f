"""``berth deploy`` and ``berth rollback``: start a deployment, then show its rollout live, the steps and the
build log, from the deployment's event stream (``GET /v1/deployments/{id}/logs``, Server-Sent Events). The
exit code is 0 only when the deployment succeeded.

On a terminal the current step stays under the log as a spinner; elsewhere (a pipe, CI) every line is
printed as it comes. A dropped stream is resumed with ``Last-Event-ID``, so no line is shown twice.
"""

from __future__ import annotations

import re
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from berth_cli.client import sse
from berth_cli.client.api import Api, ApiError
from berth_cli.client.output import fail, print_json
from berth_cli.commands.common import AppRef, Json, session

STEP = re.compile(r"^\[([a-z_]+)\] (.*)$")
RETRIES = 5
GOES_ON = "Stopped following; the deployment goes on (berth apps status APP)."
Detach = Annotated[bool, typer.Option("--detach", "-d", help="start it and return (print the deployment)")]


class LiveView:
    """Where the lines go: a spinner with the current step on a terminal, plain lines elsewhere."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.console = Console(highlight=False) if sys.stdout.isatty() else None
        self.status: Any = None

    def __enter__(self) -> LiveView:
        if self.console is not None:
            self.status = self.console.status(Text(f"{self.title}: queued"))
            self.status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.stop()

    def step(self, state: str, text: str) -> None:
        if self.status is not None:
            self.status.update(Text(f"{self.title}: [{state}] {text}"))

    def line(self, stream: str, text: str) -> None:
        if self.console is None:
            typer.echo(text)
            return
        match = STEP.match(text) if stream == "deploy" else None
        if match:
            self.step(match.group(1), match.group(2))
            self.console.print(text, style="bold", markup=False)
        else:
            self.console.print(text, style="dim" if stream == "build" else None, markup=False)


def follow(api: Api, deployment: dict[str, Any], title: str, quiet: bool = False) -> dict[str, Any]:
    """Read the deployment's stream until its ``end`` event; the final state (``state``, ``status``,
    ``reason``)."""
    path = f"/v1/deployments/{deployment['id']}/logs"
    last_id: str | None = None
    failures = 0
    view: AbstractContextManager[Any] = nullcontext() if quiet else LiveView(title)
    with view as live:
        while True:
            headers = {"Accept": "text/event-stream"} | ({"Last-Event-ID": last_id} if last_id else {})
            try:
                with api.stream(path, headers=headers, follow=True) as response:
                    for event in sse.events(response.iter_lines()):
                        if event.name == "end":
                            return dict(event.json())
                        if event.name == "ready" and live is not None:
                            state = event.json()
                            live.step(state["state"], state.get("step") or state["state"])
                        elif event.name == "log":
                            last_id = event.id or last_id
                            failures = 0
                            if live is not None:
                                data = event.json()
                                live.line(data.get("stream", ""), data.get("line", ""))
            except ApiError as exc:
                if exc.status not in (0, 502, 503, 504) or failures >= RETRIES:
                    raise
            failures += 1
            if failures > RETRIES:
                raise ApiError(
                    0, {"title": "The deployment's stream ended", "detail": "it ended before the deployment did"}
                )
            time.sleep(min(2.0, 0.2 * 2**failures))


def title_of(app: dict[str, Any], deployment: dict[str, Any]) -> str:
    what = "Rollback" if deployment["kind"] == "rollback" else "Deployment"
    return f"{what} #{deployment['number']} of {app['name']}"


def ending(title: str, end: dict[str, Any]) -> str:
    """How a deployment ended: the reason's first line is the headline, its other lines (a replica's last
    log lines) follow, indented."""
    if not end.get("reason") or end["state"] == "succeeded":
        return f"{title} {end['state']}"
    head, _, rest = str(end["reason"]).partition("\n")
    detail = "".join(f"\n  {line}" for line in rest.splitlines())
    return f"{title} {end['state']}: {head}{detail}"


def follow_to_end(api: Api, app: dict[str, Any], deployment: dict[str, Any], as_json: bool = False) -> None:
    """Follow the deployment, then say how it ended; exit 1 unless it succeeded."""
    title = title_of(app, deployment)
    end = follow(api, deployment, title, quiet=as_json)
    if as_json:
        print_json(api.get(f"/v1/deployments/{deployment['id']}"))
    else:
        typer.echo(ending(title, end))
    if end["state"] != "succeeded":
        raise typer.Exit(1)


def finish(api: Api, app: dict[str, Any], deployment: dict[str, Any], detach: bool, as_json: bool) -> None:
    if not as_json:
        typer.echo(f"{title_of(app, deployment)} started ({deployment['id']})")
    if detach:
        if as_json:
            print_json(deployment)
        return
    follow_to_end(api, app, deployment, as_json)


def deploy(
    app: AppRef,
    commit: Annotated[
        str | None,
        typer.Option(
            "--commit", help="build this commit of a git application (a full commit id), not its branch's head"
        ),
    ] = None,
    detach: Detach = False,
    as_json: Json = False,
) -> None:
    """Deploy the application's current configuration and follow it; exit 0 only when it succeeded."""
    with session(interrupted=GOES_ON) as api:
        detail = api.application(app)
        body = {"commit": commit} if commit else None
        deployment = api.send("POST", f"/v1/applications/{detail['id']}/deployments", body)
        finish(api, detail, deployment, detach, as_json)


def deployment_id(api: Api, app_id: str, ref: str) -> str:
    number = ref.removeprefix("#")
    if not number.isdigit():
        return ref
    for d in api.get(f"/v1/applications/{app_id}/deployments", limit=200):
        if d["number"] == int(number):
            return str(d["id"])
    fail(ApiError(404, {"title": "Not found", "detail": f"no deployment #{number}"}))


def rollback(
    app: AppRef,
    to: Annotated[
        str | None,
        typer.Option("--to", help="a succeeded deployment: id or number (default: the one before the live one)"),
    ] = None,
    detach: Detach = False,
    as_json: Json = False,
) -> None:
    """Run a previous successful deployment's image again (no build) and follow it."""
    with session(interrupted=GOES_ON) as api:
        detail = api.application(app)
        body = {"deployment_id": deployment_id(api, detail["id"], to)} if to else {}
        deployment = api.send("POST", f"/v1/applications/{detail['id']}/rollback", body)
        finish(api, detail, deployment, detach, as_json)
