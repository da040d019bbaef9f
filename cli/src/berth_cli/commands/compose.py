"""Compose applications from the command line: the ``compose`` and ``hosts`` of a create or update body
(a local compose file sent inline, or a path in the application's git repository; ``--host
SERVICE:PORT[=HOST][/PATH]``; files the compose file mounts as ``./files/<path>``), ``berth apps update``, and
how ``apps show`` and ``status`` present a compose application's services. The api checks every value (a
bad port, host or path is its problem+json, naming the field); the command line only checks its own
grammar."""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from berth_cli.client.output import print_json, print_table
from berth_cli.commands import deploy
from berth_cli.commands.common import AppRef, Json, session

HOST_SPEC = "SERVICE:PORT[=HOST][/PATH]"
Compose = Annotated[
    str | None,
    typer.Option("--compose", help="a local compose file, sent inline ('-': read from stdin)"),
]
ComposePath = Annotated[
    str | None, typer.Option("--compose-path", help="a compose file in the application's git repository (--git)")
]
Hosts = Annotated[
    list[str] | None,
    typer.Option(
        "--host",
        help=f"{HOST_SPEC}: the compose service and port that get a host (none: the generated one), only "
        "under a URL path prefix when /PATH is given (repeatable)",
    ),
]
Profiles = Annotated[
    list[str] | None,
    typer.Option(
        "--profile",
        help="a compose profile to activate, as docker compose --profile: its services are deployed (repeatable; "
        "an update with a new file keeps the stored ones unless given)",
    ),
]
WithFiles = Annotated[
    list[str] | None,
    typer.Option("--with-file", help="DEST=SRC: the local file SRC, mounted by the compose file as ./files/DEST"),
]


def parse_host(spec: str) -> dict[str, Any]:
    """``web:8080=shop.example.com/api`` -> ``{service, port, host, path}`` (host and path when given)."""
    head, slash, path = spec.partition("/")
    target, eq, host = head.partition("=")
    service, colon, port = target.rpartition(":")
    if not colon or not service or not port.isdigit() or (eq and not host):
        raise typer.BadParameter(
            f"{spec!r} is not {HOST_SPEC} (e.g. web:8080=shop.example.com/api)", param_hint="--host"
        )
    out: dict[str, Any] = {"service": service, "port": int(port)}
    if host:
        out["host"] = host
    if slash:
        out["path"] = "/" + path
    return out


def read_text(source: str, option: str) -> str:
    """A local file's text ('-': stdin); a missing or unreadable file is a usage error naming the option."""
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise typer.BadParameter(f"cannot read {source}: {reason}", param_hint=option) from None


def read_files(specs: list[str]) -> list[dict[str, Any]]:
    """``DEST=SRC`` -> the api's ``files`` entries (path, content, mode: the local file's permission bits)."""
    out = []
    for spec in specs:
        dest, sep, src = spec.partition("=")
        if not sep or not dest or not src:
            raise typer.BadParameter(f"{spec!r} is not DEST=SRC", param_hint="--with-file")
        mode = stat.S_IMODE(Path(src).stat().st_mode) if Path(src).is_file() else None
        out.append({"path": dest, "content": read_text(src, "--with-file"), "mode": mode})
    return out


def compose_of(
    compose: str | None, compose_path: str | None, files: list[str], profiles: list[str] | None = None
) -> dict[str, Any] | None:
    """The body's ``compose``: the file's text inline, or its path in the repository, with the profiles to
    activate; None when neither."""
    if compose is not None and compose_path is not None:
        raise typer.BadParameter("give --compose or --compose-path, not both", param_hint="--compose")
    if compose is None and compose_path is None:
        if files:
            raise typer.BadParameter("files go with a compose file (--compose)", param_hint="--with-file")
        if profiles:
            raise typer.BadParameter("profiles go with a compose file (--compose)", param_hint="--profile")
        return None
    body: dict[str, Any] = (
        {"inline": read_text(compose, "--compose")} if compose is not None else {"path": compose_path}
    )
    if profiles:
        body["profiles"] = list(profiles)
    if files:
        body["files"] = read_files(files)
    return body


def update_body(
    detail: dict[str, Any],
    compose: str | None,
    compose_path: str | None,
    hosts: list[str],
    files: list[str],
    profiles: list[str] | None = None,
) -> dict[str, Any]:
    """The PATCH body: a new compose file keeps the stored files (by path, so their contents stay sealed
    where they are) unless ``--with-file`` replaces one, and the stored profiles unless ``--profile`` is
    given; ``--profile`` alone sends the stored file again with those profiles; ``--host`` replaces the whole
    list of hosts."""
    body: dict[str, Any] = {}
    stored = detail.get("compose") or {}
    given: dict[str, Any] | None
    if profiles and compose is None and compose_path is None:  # the stored file, read with other profiles
        if stored.get("inline") is None and stored.get("path") is None:
            raise typer.BadParameter("not a compose application", param_hint="--profile")
        given = {k: stored[k] for k in ("inline", "path") if stored.get(k) is not None}
        given["profiles"] = list(profiles)
        if files:
            given["files"] = read_files(files)
    else:
        given = compose_of(compose, compose_path, files, profiles)
        if given is not None and not profiles and stored.get("profiles"):
            given["profiles"] = list(stored["profiles"])
    if given is not None:
        new = {f["path"] for f in given.get("files", [])}
        kept = [{"path": f["path"]} for f in (detail.get("compose") or {}).get("files", []) if f["path"] not in new]
        if kept or given.get("files"):
            given["files"] = kept + given.get("files", [])
        body["compose"] = given
    if hosts:
        body["hosts"] = [parse_host(h) for h in hosts]
    if not body:
        raise typer.BadParameter("nothing to change: give --compose, --compose-path, --profile, --host or --with-file")
    return body


def update(
    app: AppRef,
    compose: Compose = None,
    compose_path: ComposePath = None,
    host: Hosts = None,
    profile: Profiles = None,
    with_file: WithFiles = None,
    then_deploy: Annotated[
        bool, typer.Option("--deploy", help="deploy the change now and follow it (exit 0 only on success)")
    ] = False,
    as_json: Json = False,
) -> None:
    """Change a compose application: its compose file (replaced as a whole; the files it mounts and its
    profiles are kept unless replaced), its profiles, its hosts (all given again). It applies at the next deployment (``--deploy``: now)."""
    with session(interrupted=deploy.GOES_ON) as api:
        detail = api.application(app)
        body = update_body(detail, compose, compose_path, host or [], with_file or [], profile)
        updated = api.send("PATCH", f"/v1/applications/{detail['id']}", body)
        if then_deploy:
            deployment = api.send("POST", f"/v1/applications/{detail['id']}/deployments")
            if not as_json:
                typer.echo(f"Updated {updated['name']}: {services_line(updated)}")
            deploy.finish(api, updated, deployment, False, as_json)
            return
    if as_json:
        print_json(updated)
        return
    typer.echo(f"Updated {updated['name']}: {services_line(updated)}")
    typer.echo(f"It applies at the next deployment: berth deploy {updated['name']}")


def services_line(app: dict[str, Any]) -> str:
    return ", ".join(f"{s['name']} ({s['kind']})" for s in app["services"])


def _images(compose: dict[str, Any]) -> dict[str, str]:
    """Each translated service's image (``build`` when the builder makes it)."""
    out = {}
    for s in (compose.get("translated") or {}).get("services", []):
        image = s.get("image")
        out[s["name"]] = image if isinstance(image, str) else ("build" if s.get("build") else "-")
    return out


def source_fields(detail: dict[str, Any]) -> list[tuple[str, Any]]:
    """``compose:`` and ``start:`` lines of ``apps show``: where the file is, the order services start in."""
    compose = detail["compose"]
    translated = compose.get("translated") or {}
    if compose.get("path"):
        where = f"{compose['path']} (in the repository)"
    else:
        where = f"inline ({len(compose.get('inline', '').splitlines())} lines)"
    files = compose.get("files") or []
    if files:
        where += "; files: " + " ".join(f["path"] for f in files)
    order = " -> ".join(",".join(step) for step in translated.get("start_order", []))
    return [("compose", where), ("start", order or "-")]


def show_services(detail: dict[str, Any], urls: dict[str, list[str]]) -> None:
    """The compose services: kind, replicas, port, path prefix, hosts and image; then the notes (keys
    accepted but not carried)."""
    images = _images(detail["compose"])
    rows = [
        [
            s["name"],
            s["kind"],
            s["replicas"],
            s.get("port"),
            s.get("path_prefix"),
            " ".join(urls.get(s["name"], [])) or None,
            images.get(s["name"]),
        ]
        for s in detail["services"]
    ]
    print_table(["SERVICE", "KIND", "REPLICAS", "PORT", "PATH", "HOSTS", "IMAGE"], rows)
    notes = (detail["compose"].get("translated") or {}).get("notes") or []
    if notes:
        typer.echo("\nNot carried:")
        for note in notes:
            typer.echo(f"  {note}")


def status_rows(detail: dict[str, Any], replicas: list[dict[str, Any]]) -> list[list[Any]]:
    """Per compose service: the replicas wanted, running and ready (from the runtime's replicas)."""
    rows = []
    for s in detail["services"]:
        mine = [r for r in replicas if r["service"] == s["name"]]
        running = sum(1 for r in mine if r["state"] == "running")
        ready = sum(1 for r in mine if r["health"] == "ready")
        rows.append([s["name"], s["kind"], s["replicas"], running, ready])
    return rows


def print_status(detail: dict[str, Any], replicas: list[dict[str, Any]]) -> None:
    typer.echo("")
    print_table(["SERVICE", "KIND", "WANTED", "RUNNING", "READY"], status_rows(detail, replicas))
