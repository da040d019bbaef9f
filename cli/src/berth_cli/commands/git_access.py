"""Private repositories from the command line: the ``git_access`` an application is created with (an access
token read from stdin or a hidden prompt, never from the command line where shell history and ``ps`` would
keep it; or a deploy key's private key read from a file), the deploy key Berth makes for it, and
``berth apps deploy-key APP`` to show, make or rotate that key later."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from berth_cli.client.api import Api, ApiError
from berth_cli.client.output import fail, print_json
from berth_cli.commands.common import AppRef, Json, session

DeployKey = Annotated[
    bool,
    typer.Option(
        "--deploy-key", help="make the application a deploy key (ssh:// or user@host:path) and print its public key"
    ),
]
DeployKeyFile = Annotated[
    Path | None,
    typer.Option(help="use this private key (no passphrase) as the deploy key; its public key is on the forge already"),
]
HostKey = Annotated[
    list[str] | None,
    typer.Option(help="with --deploy-key(-file): the git server's public host key to pin (repeatable)"),
]
TokenStdin = Annotated[
    bool, typer.Option("--git-token-stdin", help="read an access token (https:// repository) from stdin")
]
TokenPrompt = Annotated[bool, typer.Option("--git-token", help="ask for an access token (https://), not echoed")]
TokenUser = Annotated[
    str,
    typer.Option(
        help="the user name sent with the token (GitHub x-access-token, GitLab oauth2, Bitbucket x-token-auth)"
    ),
]


def _token(stdin: bool) -> str:
    if stdin:
        token = sys.stdin.read().strip()
    elif not sys.stdin.isatty():
        raise typer.BadParameter("there is no terminal to ask: use --git-token-stdin", param_hint="--git-token")
    else:
        token = typer.prompt("Access token", hide_input=True).strip()
    if not token:
        raise typer.BadParameter("the token is empty", param_hint="--git-token-stdin" if stdin else "--git-token")
    return token


def access_of(
    git: str | None,
    deploy_key: bool,
    key_file: Path | None,
    host_keys: list[str] | None,
    token_stdin: bool,
    token_prompt: bool,
    username: str,
) -> dict[str, Any] | None:
    """The create request's ``git_access`` from the options (None: none given; ``--deploy-key`` is made
    after the application, by ``make_key``); refused before anything is sent when they do not fit."""
    chosen = [n for n, on in (("--deploy-key", deploy_key), ("--deploy-key-file", key_file is not None),
                              ("--git-token-stdin", token_stdin), ("--git-token", token_prompt)) if on]  # fmt: skip
    if len(chosen) > 1:
        raise typer.BadParameter(f"give one of {', '.join(chosen)}", param_hint=chosen[0])
    if chosen and git is None:
        raise typer.BadParameter("a credential is for a git repository (--git)", param_hint=chosen[0])
    if host_keys and key_file is None and not deploy_key:
        raise typer.BadParameter("host keys go with --deploy-key or --deploy-key-file", param_hint="--host-key")
    if key_file is not None:
        try:
            private = key_file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise typer.BadParameter(f"cannot read {key_file}: {exc}", param_hint="--deploy-key-file") from None
        return {"deploy_key": {"private_key": private, "host_keys": host_keys or []}}
    if token_stdin or token_prompt:
        return {"token": {"username": username, "token": _token(token_stdin)}}
    return None


def print_key(key: dict[str, Any]) -> None:
    typer.echo("Add this public key to the repository as a read-only deploy key:")
    typer.echo(f"  {key['public_key']}")
    typer.echo(f"fingerprint: {key['fingerprint']}")


def make_key(api: Api, app: dict[str, Any], host_keys: list[str]) -> dict[str, Any]:
    """The new application's deploy key, with the git server's ``host_keys`` pinned when given; when it
    cannot be made, the application stays and the user is told how to make the key later."""
    body = {"host_keys": host_keys} if host_keys else None
    try:
        return dict(api.send("POST", f"/v1/applications/{app['id']}/deploy-key", body))
    except ApiError as exc:
        typer.echo(f"Created application {app['name']} ({app['id']}) without a deploy key.", err=True)
        typer.echo(f"Make it with: berth apps deploy-key {app['id']}", err=True)
        fail(exc)


def deploy_key(
    app: AppRef,
    rotate: Annotated[bool, typer.Option("--rotate", help="a new key in place of the old one")] = False,
    as_json: Json = False,
) -> None:
    """The application's deploy key, made when it has none: the public key to add to the forge."""
    with session() as api:
        detail = api.application(app)
        path = f"/v1/applications/{detail['id']}/deploy-key"
        key = None if rotate else api.get(f"/v1/applications/{detail['id']}/git-access")["deploy_key"]
        if key is None:
            key = api.send("POST", path + "/rotate" if rotate else path)
    if as_json:
        print_json(key)
        return
    print_key(key)
