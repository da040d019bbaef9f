"""``berth projects ...``, ``berth apps ...``, ``berth status APP``, ``berth scale`` and ``berth open``:
projects and applications, named by id or name."""

from __future__ import annotations

import sys
import webbrowser
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from berth_cli.client.api import ApiError
from berth_cli.client.output import fail, print_fields, print_json, print_table, when
from berth_cli.commands import compose as compose_cmd
from berth_cli.commands import git_access
from berth_cli.commands.common import AppRef, Json, session

projects_app = typer.Typer(help="Projects (each with its environments).", no_args_is_help=True)
apps_app = typer.Typer(help="Applications.", no_args_is_help=True)


@projects_app.command("list")
def projects_list(as_json: Json = False) -> None:
    """The team's projects."""
    with session() as api:
        projects = api.get("/v1/projects")
    if as_json:
        print_json(projects)
        return
    rows = [
        [p["name"], ",".join(e["name"] for e in p["environments"]), p["id"], when(p["created_at"])] for p in projects
    ]
    print_table(["NAME", "ENVIRONMENTS", "ID", "CREATED"], rows)


@projects_app.command("create")
def projects_create(
    name: str,
    description: Annotated[str, typer.Option(help="what it is for")] = "",
    as_json: Json = False,
) -> None:
    """Create a project (with its production environment)."""
    with session() as api:
        project = api.send("POST", "/v1/projects", {"name": name, "description": description})
    if as_json:
        print_json(project)
        return
    typer.echo(f"Created project {project['name']} ({project['id']})")


def source_text(source: dict[str, Any]) -> str:
    if source["kind"] == "image":
        return str(source["image"])
    ref = source.get("commit") or source.get("branch") or "HEAD"
    return f"{source['repository']}@{ref}"


@apps_app.command("list")
def apps_list(
    project: Annotated[str | None, typer.Option("--project", "-p", help="only this project's (id or name)")] = None,
    as_json: Json = False,
) -> None:
    """The team's applications."""
    with session() as api:
        projects = {p["id"]: p["name"] for p in api.get("/v1/projects")}
        project_id = api.project(project)["id"] if project else None
        apps = api.applications(project_id)
    if as_json:
        print_json(apps)
        return
    rows = [
        [
            a["name"],
            projects.get(a["project_id"], a["project_id"]),
            a["environment"],
            source_text(a["source"]),
            a["state"],
            a["id"],
        ]
        for a in apps
    ]
    print_table(["NAME", "PROJECT", "ENVIRONMENT", "SOURCE", "STATE", "ID"], rows)


def _variables(env: list[dict[str, Any]]) -> str:
    return " ".join(f"{v['name']}=***" if v["secret"] else f"{v['name']}={v['value']}" for v in env)


def hosts_of(app: dict[str, Any]) -> list[tuple[str, str]]:
    """(service, host and path) of every routed host, the generated one of each web service first; a
    compose service routed under a URL path prefix has it after each host (``shop.example.com/api``)."""
    return [
        (s["name"], h + (s.get("path_prefix") or ""))
        for s in app["services"]
        if s["kind"] == "web"
        for h in s.get("hosts", [])
    ]


def url_of(app: dict[str, Any], host: str, proxy_url: str = "") -> str:
    """The URL of a host (with its path prefix, if any); through a local platform's proxy (``proxy_url``)
    plain HTTP on its port."""
    host, slash, path = host.partition("/")
    path = slash + path if slash else "/"
    if (app.get("tls") or {}).get("acme"):
        return f"https://{host}{path}"
    port = urlsplit(proxy_url).port if proxy_url else None
    return f"http://{host}:{port}{path}" if port not in (None, 80) else f"http://{host}{path}"


@apps_app.command("show")
def apps_show(app: AppRef, as_json: Json = False) -> None:
    """An application: source, services, variables (secrets masked), hosts, live version; a compose
    application's file, start order, and services with their path prefixes and images."""
    with session() as api:
        detail = api.application(app)
        project = api.get(f"/v1/projects/{detail['project_id']}")
    if as_json:
        print_json(detail)
        return
    live = detail.get("live")
    lines = [
        ("name", detail["name"]),
        ("id", detail["id"]),
        ("project", f"{project['name']}/{detail['environment']}"),
        ("source", source_text(detail["source"])),
        *(compose_cmd.source_fields(detail) if detail.get("compose") else []),
        ("state", detail["state"]),
        ("live", f"#{live['number']} {live['image'] or ''}".strip() if live else "-"),
        ("env", _variables(detail["env"]) or "-"),
        ("urls", " ".join(url_of(detail, h, api.context.proxy_url) for _, h in hosts_of(detail)) or "-"),
    ]
    print_fields(lines)
    typer.echo("")
    if detail.get("compose"):
        compose_cmd.show_services(detail, {s["name"]: s.get("hosts", []) for s in detail["services"]})
        return
    rows = [
        [s["name"], s["kind"], s["replicas"], s.get("port"), " ".join(s.get("hosts", [])) or None]
        for s in detail["services"]
    ]
    print_table(["SERVICE", "KIND", "REPLICAS", "PORT", "HOSTS"], rows)


def parse_pairs(pairs: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint=what)
        out[key] = value
    return out


def confirmed(what: str, yes: bool) -> None:
    """Go on only with ``--yes`` or, on a terminal, the user's yes; without a terminal to ask: exit 2."""
    if yes:
        return
    if not sys.stdin.isatty():
        typer.echo(f"berth: {what} needs --yes (there is no terminal to ask)", err=True)
        raise typer.Exit(2)
    if not typer.confirm(f"{what}?", default=False):
        raise typer.Exit(1)


@apps_app.command("delete")
def apps_delete(
    app: AppRef,
    with_volumes: Annotated[
        bool, typer.Option("--with-volumes", help="delete its named volumes too (kept unless given)")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
    as_json: Json = False,
) -> None:
    """Delete an application: a deployed one's containers, routes and images are taken down; its named
    volumes stay on their servers unless ``--with-volumes``."""
    with session() as api:
        detail = api.application(app)
        project = api.get(f"/v1/projects/{detail['project_id']}")
        place = f"{project['name']}/{detail['environment']}/{detail['name']}"
        extra = " and its volumes" if with_volumes else ""
        confirmed(f"Delete application {place}{extra}", yes)
        answer = api.send("DELETE", f"/v1/applications/{detail['id']}", delete_volumes=with_volumes or None)
    if as_json:
        print_json(answer)
        return
    if answer is None:
        typer.echo(f"Deleted application {place} (it was never deployed)")
        return
    typer.echo(f"Removing application {place}: its containers, routes and images are taken down")
    for key, title in (("volumes_kept", "Volumes kept"), ("volumes_deleted", "Volumes deleted")):
        volumes = answer.get(key) or []
        if volumes:
            note = " (their data stays on the servers)" if key == "volumes_kept" else ""
            typer.echo(f"\n{title}{note}:")
            print_table(
                ["SERVER", "VOLUME", "DOCKER NAME"], [[v["server_id"], v["name"], v["docker_name"]] for v in volumes]
            )


def show_status(app: str, as_json: bool) -> None:
    with session() as api:
        detail = api.application(app)
        deployments = api.get(f"/v1/applications/{detail['id']}/deployments", limit=1)
    latest = deployments[0] if deployments else None
    runtime = detail["runtime"]
    if as_json:
        print_json({"application_id": detail["id"], "live": detail["live"], "latest": latest, "runtime": runtime})
        return
    live = detail["live"]
    typer.echo(f"{detail['name']}: " + (f"live #{live['number']} ({live['image']})" if live else "not deployed"))
    if latest is not None:
        reason = f": {latest['reason']}" if latest.get("reason") else ""
        typer.echo(f"latest deployment: #{latest['number']} {latest['status']} ({latest['step']}){reason}")
    if not runtime["available"]:
        typer.echo(f"replicas: unknown ({runtime.get('error') or 'the scheduler did not answer'})")
        return
    if detail.get("compose"):
        compose_cmd.print_status(detail, runtime["replicas"])
    rows = [
        [r["service"], r["replica"], r["state"], r["health"], r["restarts"], r["container"]]
        for r in runtime["replicas"]
    ]
    if rows:
        typer.echo("")
        print_table(["SERVICE", "REPLICA", "STATE", "HEALTH", "RESTARTS", "CONTAINER"], rows)


apps_app.command("deploy-key")(git_access.deploy_key)


@apps_app.command("status")
def apps_status(app: AppRef, as_json: Json = False) -> None:
    """An application's live version, its latest deployment and its replicas."""
    show_status(app, as_json)


@apps_app.command("deployments")
def apps_deployments(
    app: AppRef, limit: Annotated[int, typer.Option(help="how many, newest first")] = 20, as_json: Json = False
) -> None:
    """The application's deployments, newest first."""
    with session() as api:
        detail = api.application(app)
        rows = api.get(f"/v1/applications/{detail['id']}/deployments", limit=limit)
    if as_json:
        print_json(rows)
        return
    table = [
        [f"#{d['number']}", d["kind"], d["status"], d["step"], d["image"], when(d["created_at"]), d["id"]] for d in rows
    ]
    print_table(["NUMBER", "KIND", "STATUS", "STEP", "IMAGE", "CREATED", "ID"], table)


def scale(
    app: AppRef,
    replicas: Annotated[list[str], typer.Argument(help="SERVICE=COUNT, e.g. web=3 (repeatable)")],
    reason: Annotated[str, typer.Option(help="why (shown in the notifications)")] = "",
    as_json: Json = False,
) -> None:
    """Change how many replicas of the live version each service runs (no build, no deployment)."""
    pairs = parse_pairs(replicas, "SERVICE=COUNT")
    try:
        services = {k: int(v) for k, v in pairs.items()}
    except ValueError:
        raise typer.BadParameter("COUNT is a number", param_hint="SERVICE=COUNT") from None
    with session() as api:
        detail = api.application(app)
        answer = api.send("POST", f"/v1/applications/{detail['id']}/scale", {"services": services, "reason": reason})
    if as_json:
        print_json(answer)
        return
    wanted = ", ".join(f"{k}={v}" for k, v in answer["services"].items())
    typer.echo(f"Scaling {detail['name']}: {wanted}")


def open_app(
    app: AppRef,
    service: Annotated[str | None, typer.Option(help="this web service's URL (default: the first)")] = None,
    print_only: Annotated[bool, typer.Option("--print", help="print the URL, do not open a browser")] = False,
) -> None:
    """Open the application's URL in a browser (or print it)."""
    with session() as api:
        detail = api.application(app)
    hosts = [h for s, h in hosts_of(detail) if service in (None, s)]
    if not hosts:
        fail(
            ApiError(
                404,
                {
                    "title": "No URL",
                    "detail": f"{detail['name']} has no routed host" + (f" for service {service}" if service else ""),
                },
            )
        )
    url = url_of(detail, hosts[0], api.context.proxy_url)
    typer.echo(url)
    if not print_only:
        webbrowser.open(url)
