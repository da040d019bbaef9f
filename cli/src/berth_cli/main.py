"""The ``berth`` command.

Local platform (data in one directory, default ``./.berth``):

    berth up [--data-dir DIR] [--all-in-one] [--foreground]   start everything, print the API URL and token
    berth status [--data-dir DIR] [--json]                    health of every component (exit 1 if any is down)
    berth down [--data-dir DIR] [--all]                       stop the control plane; apps keep serving (--all: them too)

Ports come from BERTH_NATS_PORT (4222; NATS' monitoring port is not opened), BERTH_PG_PORT (5433),
BERTH_PROXY_PORT (8080, on BERTH_PROXY_HOST, 127.0.0.1), BERTH_TRAEFIK_API_PORT (8081), BERTH_API_PORT
(8420) and BERTH_<SERVICE>_HTTP_PORT (8421-8425); BERTH_PORT_BASE=N moves them to N, N+2, N+3, ...
With BERTH_DATABASE_URL (an admin URL) no Postgres is started and that server is used. BERTH_TRAEFIK_BINARY
(an absolute path) runs that Traefik instead of the one installed with Berth.

Other commands:

    berth bus spec                 the AsyncAPI document of every message, as JSON
    berth bus report KIND          a NATS server report (varz, connz, jsz...) asked as its system account
    berth images base [NAME...]    build the local base images (cached by tag)
    berth db provision             create the per-service roles and schemas (BERTH_DATABASE_URL, BERTH_SECRET_KEY)
    berth service run NAME         run one service (containers: fills in its role from BERTH_SECRET_KEY)
    berth backup [-o FILE]         the control plane in one archive (schemas, sealed keys, Traefik files)
    berth restore FILE [--force]   rebuild a data directory from such an archive
    berth backup-decrypt --key-file K IN OUT   decrypt (and decompress) a downloaded encrypted backup object
    berth admin token              mint a new admin token (audited) into <data dir>/admin.token

Daily work against an api (docs/cli.md; `berth --context NAME ...` or BERTH_CONTEXT picks a context,
BERTH_API_URL and BERTH_TOKEN override it; every listing takes --json):

    berth login [URL] [--context NAME]    store an api URL and token (0600); berth context list|use|remove
    berth projects list|create            berth apps list|show|create|status|deployments
    berth deploy APP                      deploy and follow the rollout live (exit 0 only on success)
    berth rollback APP [--to N]           berth scale APP web=3        berth open APP
    berth logs APP [-f]                   berth env list|set|unset|import|export APP
    berth status APP                      the application's status (no APP: the local platform's)
    berth db list|create|show|logs        berth db backup list|run DB (a database's backups)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from berth_cli.commands.register import CLIENT, LOCAL, choose_context, register_db
from berth_cli.layout import Paths
from berth_cli.lazy import LazyGroup


def _click_help(doc: str) -> str:
    """Keep the docstring's indented blocks as they are (click rewraps other paragraphs)."""
    paras = doc.strip().split("\n\n")
    return "\n\n".join("\b\n" + p if p.startswith("    ") or "\n    " in p else p for p in paras)


def _bus(app: typer.Typer) -> None:
    from berth_cli import bus_cmd

    bus_app = typer.Typer(help="The message bus.", no_args_is_help=True)
    bus_app.command("config")(bus_cmd.config)
    bus_app.command("ready")(bus_cmd.ready)
    bus_app.command("report")(bus_cmd.report)
    bus_app.command("spec")(bus_spec)
    app.add_typer(bus_app, name="bus")


def _db(app: typer.Typer) -> None:
    db_app = typer.Typer(help="The team's databases, and the platform's own (provision).", no_args_is_help=True)
    register_db(db_app)
    db_app.command("provision")(db_provision)
    app.add_typer(db_app, name="db")


class Berth(LazyGroup):
    """``berth``: up, down, status, images and service built at once, every other command when used."""

    lazy = {**LOCAL, **CLIENT, "bus": _bus, "db": _db}
    order = (
        *("backup", "restore", "metrics-token", "backup-decrypt", "login", "logout", "deploy", "rollback"),
        *("scale", "open", "logs", "run", "up", "down", "status", "bus", "images", "db", "service", "secrets"),
        *("admin", "context", "teams", "projects", "apps", "templates", "runs", "jobs", "env"),
    )


app = typer.Typer(cls=Berth, help=_click_help(__doc__ or ""), no_args_is_help=True, rich_markup_mode=None)
images_app = typer.Typer(help="Container images.", no_args_is_help=True)
service_app = typer.Typer(help="Run one service.", no_args_is_help=True)
app.callback()(choose_context)
app.add_typer(images_app, name="images")
app.add_typer(service_app, name="service")

DataDir = Annotated[Path, typer.Option("--data-dir", help="the platform's data directory")]


def _paths(data_dir: Path) -> Paths:
    return Paths(data_dir.expanduser().resolve())


@app.command()
def up(
    data_dir: DataDir = Path(".berth"),
    all_in_one: Annotated[bool, typer.Option("--all-in-one", help="the six services in one process")] = False,
    foreground: Annotated[bool, typer.Option("--foreground", help="run the supervisor in this terminal")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for every component")] = 180.0,
) -> None:
    """Start the platform and wait until every component is ready."""
    from berth_cli import platform

    paths = _paths(data_dir)
    if foreground:
        from berth_cli import dataplane
        from berth_cli.supervisor import run_supervisor

        if platform.supervisor_pid(paths) is not None:
            raise typer.BadParameter(f"a supervisor is already running for {paths.root}", param_hint="--data-dir")
        busy = platform.busy_ports(dict(os.environ), dataplane.held_ports(paths.root))
        if busy:
            typer.echo("ports already in use: " + ", ".join(busy), err=True)
            raise typer.Exit(1)
        _start_stopped_apps(paths)
        run_supervisor(
            paths.root, all_in_one, echo=True, on_ready=lambda s: typer.echo(platform.banner(paths, s["urls"]))
        )
        return
    _start_stopped_apps(paths)  # first: the scheduler would otherwise start them itself, unannounced
    try:
        status = platform.up(paths, all_in_one, timeout)
    except (platform.PlatformError, ValueError) as exc:
        typer.echo(f"berth up: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(platform.banner(paths, status.urls))
    from berth_cli import appcontainers

    appcontainers.refresh_teams(paths.root, os.environ.get("BERTH_DATABASE_URL"))


def _start_stopped_apps(paths: Paths) -> None:
    """Start the application containers ``berth down --all`` stopped, before the control plane starts (its
    scheduler starts a live replica found exited again too, but only once it runs, and without saying so)."""
    from berth_cli import appcontainers
    from berth_cli.baseimages import DOCKER

    done, message = appcontainers.up_again(paths.root, DOCKER)
    if message:
        typer.echo(message, err=not done)
    if not done:
        raise typer.Exit(1)


@app.command()
def down(
    data_dir: DataDir = Path(".berth"),
    everything: Annotated[
        bool,
        typer.Option(
            "--all", help="stop the data plane too: Traefik and this platform's containers (volumes are kept)"
        ),
    ] = False,
) -> None:
    """Stop the control plane (the data is kept); applications keep serving unless ``--all``, which also stops
    Traefik and every container Berth made for this platform on the local engine (``berth up`` starts them)."""
    from berth_cli import appcontainers, dataplane, platform
    from berth_cli.baseimages import DOCKER

    paths = _paths(data_dir)
    running = platform.supervisor_pid(paths) is not None
    # this platform's teams, while its database runs: `down --all` stops their containers (now or later)
    teams = appcontainers.refresh_teams(paths.root, os.environ.get("BERTH_DATABASE_URL")) if running else None
    stray = platform.down(paths, everything=everything)
    if stray:
        typer.echo(f"cleaned up {len(stray)} leftover process(es): {' '.join(map(str, stray))}")
    left = platform.leftovers(paths.root)
    if left:
        typer.echo(f"still running: {' '.join(str(p.pid) for p in left)}", err=True)
        raise typer.Exit(1)
    typer.echo("berth stopped" if running else "berth was not running")
    traefik = dataplane.serving(paths.root)
    if everything and traefik is not None:
        typer.echo(f"traefik (pid {traefik}) did not stop", err=True)
        raise typer.Exit(1)
    teams = teams if teams is not None else appcontainers.known_teams(paths.root)
    if everything:
        done, message = appcontainers.down_all(paths.root, teams, DOCKER)
        typer.echo(message, err=not done)
        if not done:
            raise typer.Exit(1)
        return
    apps = appcontainers.running_count(teams, DOCKER) if teams is not None else dataplane.app_containers(DOCKER)
    mine = "of this platform" if teams is not None else "on this engine"
    containers = "the application containers" if apps is None else f"{apps} application container(s) {mine}"
    if traefik is not None:
        typer.echo(
            f"applications keep serving: traefik (pid {traefik}) and {containers} stay up; "
            "`berth down --all` stops traefik too, and them"
        )
    elif apps:
        typer.echo(f"{containers} stay up, not served (traefik is stopped; `berth up` serves them again)")


@app.command()
def status(
    application: Annotated[
        str | None, typer.Argument(help="an application (id or name): its status instead of the platform's")
    ] = None,
    data_dir: DataDir = Path(".berth"),
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Show whether every component of the local platform is healthy (exit 1 if one is not), or with an
    APPLICATION its live version, latest deployment and replicas."""
    from berth_cli import platform

    if application is not None:
        from berth_cli.commands.apps import show_status

        show_status(application, as_json)
        return

    result = platform.platform_status(_paths(data_dir))
    typer.echo(json.dumps(result.to_json(), indent=2) if as_json else platform.format_status(result))
    if not result.healthy:
        raise typer.Exit(1)


def bus_spec() -> None:
    """Print the AsyncAPI 3.0 document generated from the message catalogue."""
    from berth_common.asyncapi import asyncapi_document

    typer.echo(json.dumps(asyncapi_document(), indent=2))


@images_app.command("base")
def images_base(
    names: Annotated[list[str] | None, typer.Argument(help="images to make (default: all)")] = None,
    force: Annotated[bool, typer.Option("--force", help="rebuild even when the tag exists")] = False,
) -> None:
    """Build the local base images (no registry needed); cached by tag."""
    from berth_cli.baseimages import ensure_base_images

    try:
        result = ensure_base_images(names or None, force=force)
    except ValueError as exc:
        typer.echo(f"berth images base: {exc}", err=True)
        raise typer.Exit(2) from None
    for tag, built in result.items():
        typer.echo(f"{tag}: {'built' if built else 'present'}")


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        typer.echo(f"{name} is not set", err=True)
        raise typer.Exit(2)
    return value


def db_provision() -> None:
    """Create one role and schema per service (idempotent) with the admin URL in BERTH_DATABASE_URL."""
    import asyncio

    from berth_cli import provisioning

    urls = asyncio.run(provisioning.provision_platform(_env("BERTH_DATABASE_URL"), _env("BERTH_SECRET_KEY")))
    typer.echo(f"provisioned {len(urls)} roles: {', '.join(provisioning.roles())}")


@service_app.command("run")
def service_run(name: str) -> None:
    """Run one service in this process. If BERTH_DATABASE_URL names no user, the service's own role and
    its password (derived from BERTH_SECRET_KEY, as `berth db provision` made it) are filled in; without
    BERTH_NATS_USER, its bus identity (its name, the password derived as `berth bus config` made it)."""
    from berth_cli import provisioning
    from berth_cli.allinone import installed

    services = installed()
    if name not in services:
        raise typer.BadParameter(f"one of {', '.join(services)}", param_hint="NAME")
    url = _env("BERTH_DATABASE_URL")
    if not urlsplit(url).username:
        os.environ["BERTH_DATABASE_URL"] = provisioning.role_url(url, _env("BERTH_SECRET_KEY"), name)
    if not os.environ.get("BERTH_NATS_USER"):  # its bus identity, as `berth bus config` made it
        from berth_cli import nats_auth

        os.environ["BERTH_NATS_USER"] = name
        os.environ["BERTH_NATS_PASSWORD"] = nats_auth.derived_password(_env("BERTH_SECRET_KEY"), name)
    services[name].load().main()
