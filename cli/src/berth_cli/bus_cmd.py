"""``berth bus config|ready|report``: docker-compose.yml's bus, set up and looked at as ``berth up``'s is.

    berth bus config FILE [--cluster-routes H:P,...]   nats-server's configuration, passwords from BERTH_SECRET_KEY
    berth bus ready [--url URL] [--timeout S]          wait until each server takes ``operator`` and JetStream answers
    berth bus report KIND [--url URL] [--data-dir DIR] a server report (varz, connz, jsz...) as the system account

``config`` writes what ``berth up`` writes (``berth_cli.nats_auth.config_text``): one user per identity, the
system account's user, no monitoring port. ``ready`` is the supervisor's probe (``berth_cli.probes.nats_ready``)
run by the one-shot ``nats-ready`` container, which the services wait for. ``report`` asks
``$SYS.REQ.SERVER.PING.<KIND>`` as the system account's user: with a URL (``BERTH_NATS_URL``) and
``BERTH_SECRET_KEY`` (a compose container: ``docker compose exec api berth bus report varz``) its derived
password, else the local platform's, in the data directory's ``nats-auth/system.password``. No password is printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from berth_cli import nats_auth

REPORTS = ("varz", "connz", "routez", "subsz", "jsz", "healthz", "accountz", "statz")
NATS_PORT = 4222

Url = Annotated[str, typer.Option("--url", envvar="BERTH_NATS_URL", help="the servers, comma-separated")]


def config(
    out: Annotated[Path, typer.Argument(help="the nats-server configuration file to write")],
    cluster_routes: Annotated[
        str, typer.Option(help="a NATS cluster's route addresses, host:port comma-separated (every node)")
    ] = "",
    cluster_listen: Annotated[str, typer.Option(help="where each node listens for routes")] = "0.0.0.0:6222",
) -> None:
    """Write nats-server's configuration: one user per service, operator, observer and admin, each with the
    permissions the catalogue gives it, and the system account's user (server reports), every password
    derived from BERTH_SECRET_KEY (docker-compose.yml). With --cluster-routes, also the routes between a
    cluster's nodes (docker-compose.cluster.yml). No monitoring port."""
    routes = [r.strip() for r in cluster_routes.split(",") if r.strip()]
    nats_auth.write_derived_config(out, _secret_key(), routes, cluster_listen)
    where = f"; cluster routes {', '.join(routes)}" if routes else ""
    users = ", ".join((*nats_auth.IDENTITIES, nats_auth.SYSTEM))
    typer.echo(f"wrote {out}: users {users}{where}")


def ready(
    url: Url = "nats://nats:4222",
    timeout: Annotated[float, typer.Option(help="seconds to wait")] = 60.0,
) -> None:
    """Wait until every server of the URL takes `operator` (its password derived from BERTH_SECRET_KEY) and
    JetStream answers it: `berth up`'s readiness probe (docker-compose.yml's nats-ready). Exit 1 when the
    time is up."""
    password = nats_auth.derived_password(_secret_key(), nats_auth.OPERATOR)
    servers = [_address(server) for server in _servers(url)]
    missing = asyncio.run(wait_ready(servers, nats_auth.OPERATOR, password, timeout))
    names = ", ".join(f"{host}:{port}" for host, port in missing or servers)
    if missing:
        typer.echo(f"nats not ready after {timeout:g} s: {names}", err=True)
        raise typer.Exit(1)
    typer.echo(f"nats ready: {names}")


async def wait_ready(
    servers: list[tuple[str, int]], user: str, password: str, timeout: float, interval: float = 0.5
) -> list[tuple[str, int]]:
    """Probe each server until all are ready or ``timeout`` seconds passed; the servers still not ready."""
    from berth_cli.probes import nats_ready

    deadline = time.monotonic() + timeout
    waiting = list(servers)
    while True:
        answers = await asyncio.gather(*(nats_ready(host, port, user, password) for host, port in waiting))
        waiting = [server for server, ok in zip(waiting, answers, strict=True) if not ok]
        if not waiting or time.monotonic() >= deadline:
            return waiting
        await asyncio.sleep(interval)


def report(
    kind: Annotated[str, typer.Argument(help=f"one of {', '.join(REPORTS)}")],
    url: Url = "",
    data_dir: Annotated[Path, typer.Option("--data-dir", help="the local platform's data directory")] = Path(".berth"),
    wait: Annotated[float, typer.Option(help="seconds to gather the servers' answers")] = 1.0,
) -> None:
    """Print a server report (one JSON answer per server) asked as the system account's user."""
    if kind.lower() not in REPORTS:
        raise typer.BadParameter(f"one of {', '.join(REPORTS)}", param_hint="KIND")
    servers = _servers(url) if url else [f"nats://127.0.0.1:{_platform_port(data_dir)}"]
    secret = os.environ.get("BERTH_SECRET_KEY")
    if url and secret:  # a compose container: the password nats-config derived
        password = nats_auth.derived_password(secret, nats_auth.SYSTEM)
    else:
        file = nats_auth.password_file(data_dir.expanduser().resolve(), nats_auth.SYSTEM)
        if not file.is_file():
            hint = "in a compose container, BERTH_NATS_URL and BERTH_SECRET_KEY give it"
            typer.echo(f"no system account password: {file} is missing ({hint})", err=True)
            raise typer.Exit(2)
        password = file.read_text().strip()
    server_url = nats_auth.with_credentials(",".join(servers), nats_auth.SYSTEM, password)
    try:
        answers = asyncio.run(server_reports(server_url, kind.upper(), wait))
    except Exception as exc:  # the client's message (never the URL: it holds the password)
        typer.echo(f"berth bus report: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(answers, indent=2, sort_keys=True))


async def server_reports(url: str, kind: str, wait: float) -> list[dict[str, Any]]:
    """Every server's answer to ``$SYS.REQ.SERVER.PING.<kind>`` that comes within ``wait`` seconds of the
    first (each node of a cluster answers once), ordered by server name."""
    import nats

    servers = [part.strip() for part in url.split(",") if part.strip()]  # a cluster's nodes: any of them
    nc = await nats.connect(servers=servers, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5)
    try:
        answers: list[dict[str, Any]] = []
        first = asyncio.Event()

        async def on_answer(msg: Any) -> None:
            answers.append(json.loads(msg.data))
            first.set()

        inbox = nc.new_inbox()
        await nc.subscribe(inbox, cb=on_answer)
        await nc.publish(f"$SYS.REQ.SERVER.PING.{kind}", b"{}", reply=inbox)
        await nc.flush()
        await asyncio.wait_for(first.wait(), 5)
        await asyncio.sleep(wait)
        return sorted(answers, key=lambda a: str(a.get("server", {}).get("name", "")))
    finally:
        await nc.close()


def _secret_key() -> str:
    value = os.environ.get("BERTH_SECRET_KEY", "")
    if not value:
        typer.echo("BERTH_SECRET_KEY is not set", err=True)
        raise typer.Exit(2)
    return value


def _servers(url: str) -> list[str]:
    servers = [part.strip() for part in url.split(",") if part.strip()]
    if not servers:
        raise typer.BadParameter("names no server", param_hint="--url")
    return servers


def _address(server: str) -> tuple[str, int]:
    parts = urlsplit(server if "://" in server else f"nats://{server}")
    if not parts.hostname:
        raise typer.BadParameter(f"{server!r} names no host", param_hint="--url")
    return parts.hostname, parts.port or NATS_PORT


def _platform_port(data_dir: Path) -> int:
    """The local platform's NATS port: the running supervisor's, else the environment's."""
    from berth_cli.datadir import read_json
    from berth_cli.layout import Paths, resolve_ports

    state = read_json(Paths(data_dir.expanduser().resolve()).state) or {}
    port = (state.get("ports") or {}).get("nats")
    return int(port) if port else resolve_ports(os.environ)["nats"]
