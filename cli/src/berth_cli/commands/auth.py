"""``berth login``, ``berth logout`` and ``berth context list|use|remove``: which api and token the client
uses. Tokens are read from a prompt (hidden), stdin or BERTH_TOKEN, never echoed, and stored 0600."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from berth_cli.client.api import Api, ApiError
from berth_cli.client.config import DEFAULT_URL, Config, ConfigError, Context, check_name, config_path
from berth_cli.client.output import fail, print_json, print_table
from berth_cli.commands.common import Json


def in_clear(url: str) -> bool:
    """True for an http:// URL to anything but this machine (the token would cross a network in clear)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname in (None, "localhost"):
        return False
    try:
        return not ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:  # a host name
        return True


def local_platform(data_dir: Path) -> tuple[str, str, str]:
    """The api URL, admin token and proxy URL of the platform `berth up` runs from ``data_dir``."""
    from berth_cli.datadir import read_json
    from berth_cli.layout import Paths

    paths = Paths(data_dir.expanduser().resolve())
    state = read_json(paths.state) or {}
    url = state.get("urls", {}).get("api")
    if not url or not paths.admin_token.exists():
        raise ConfigError(f"no platform runs from {paths.root} (berth up --data-dir {data_dir})")
    return str(url), paths.admin_token.read_text().strip(), str(state.get("urls", {}).get("proxy") or "")


context_app = typer.Typer(help="Named contexts: one api URL and token each.", no_args_is_help=True)


def login(
    url: Annotated[str | None, typer.Argument(help="the api's URL (default: BERTH_API_URL or the context's)")] = None,
    token: Annotated[str | None, typer.Option(help="the token (better: --token-stdin or the prompt)")] = None,
    token_stdin: Annotated[bool, typer.Option("--token-stdin", help="read the token from stdin")] = False,
    context: Annotated[str, typer.Option("--context", "-c", help="store it as this context")] = "default",
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="a local platform's data directory (berth up): its URL and admin token"),
    ] = None,
) -> None:
    """Check a token against the api and store it as a context (made current)."""
    path = config_path()
    try:
        check_name(context)
        config = Config.load(path)
        stored = config.contexts.get(context, {})
        proxy_url = ""
        if data_dir is not None:
            url, token, proxy_url = local_platform(data_dir)
        api_url = (url or os.environ.get("BERTH_API_URL") or stored.get("api_url") or DEFAULT_URL).rstrip("/")
        if token_stdin:
            token = sys.stdin.readline().strip()
        token = token or os.environ.get("BERTH_TOKEN") or typer.prompt("Token", hide_input=True)
        if not token:
            raise ConfigError("no token given")
        if in_clear(api_url):
            typer.echo(f"berth: warning: {api_url} is plain HTTP: the token crosses the network unencrypted", err=True)
        with Api(Context(context, api_url, token)) as api:
            me = api.get("/v1/me")
        config.put(context, api_url, token, proxy_url)
        config.save(path)
    except (ApiError, ConfigError) as exc:
        fail(exc)
    who = me["user"]["email"] or me["user"]["name"]
    typer.echo(f"Logged in to {api_url} as {who} (team {me['team']['name']}, role {me['role']}); context {context}")


def logout(
    context: Annotated[str | None, typer.Argument(help="the context to forget (default: the current one)")] = None,
) -> None:
    """Forget a context and its token."""
    path = config_path()
    try:
        config = Config.load(path)
        name = context or config.current
        if not name:
            raise ConfigError("no current context")
        config.remove(name)
        config.save(path)
    except ConfigError as exc:
        fail(exc)
    typer.echo(f"Forgot context {name}")


@context_app.command("list")
def context_list(as_json: Json = False) -> None:
    """The contexts (never their tokens); the current one is marked *."""
    try:
        config = Config.load(config_path())
    except ConfigError as exc:
        fail(exc)
    rows = [
        {"name": name, "api_url": c.get("api_url", ""), "current": name == config.current}
        for name, c in sorted(config.contexts.items())
    ]
    if as_json:
        print_json(rows)
        return
    print_table(["CURRENT", "NAME", "API"], [["*" if r["current"] else "", r["name"], r["api_url"]] for r in rows])


@context_app.command("use")
def context_use(name: str) -> None:
    """Make a context the current one."""
    path = config_path()
    try:
        config = Config.load(path)
        config.use(name)
        config.save(path)
    except ConfigError as exc:
        fail(exc)
    typer.echo(f"Using context {name} ({config.contexts[name]['api_url']})")


@context_app.command("remove")
def context_remove(name: str) -> None:
    """Forget a context and its token."""
    logout(name)
