"""``berth env list|set|unset|import|export``: an application's runtime variables.

Secret values are never printed: listings show ``***``, a secret given without a value is asked for with a
hidden prompt (or read from stdin with ``NAME=-``), and the confirmations name variables only. A change
sends the whole list back with each stored secret as ``null`` (kept as it is), as the api asks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from berth_cli.client.output import print_json, print_table
from berth_cli.commands.common import AppRef, Json, session

env_app = typer.Typer(help="An application's environment variables (secrets never shown).", no_args_is_help=True)
Build = Annotated[bool, typer.Option("--build", help="build args instead of runtime variables")]


@env_app.command("list")
def env_list(app: AppRef, as_json: Json = False) -> None:
    """The application's runtime variables (secret values masked)."""
    with session() as api:
        env = api.application(app)["env"]
    if as_json:
        print_json(env)
        return
    print_table(
        ["NAME", "VALUE", "SECRET"], [[v["name"], "***" if v["secret"] else v["value"], v["secret"]] for v in env]
    )


def _kept(env: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stored variables as a PATCH keeps them: secrets as null (unchanged)."""
    return [{"name": v["name"], "value": None if v["secret"] else v["value"], "secret": v["secret"]} for v in env]


def _value(name: str, value: str | None, secret: bool) -> str:
    if value == "-":
        return sys.stdin.read().rstrip("\n")
    if value is None:
        if not secret:
            raise typer.BadParameter(f"{name} has no value (NAME=VALUE; a --secret one may be asked for)")
        return str(typer.prompt(f"{name}", hide_input=True))
    return value


@env_app.command("set")
def env_set(
    app: AppRef,
    pairs: Annotated[
        list[str], typer.Argument(help="NAME=VALUE (NAME=- reads the value from stdin; with --secret, NAME alone asks)")
    ],
    secret: Annotated[bool, typer.Option("--secret", help="store them as secrets (write-only)")] = False,
) -> None:
    """Set runtime variables (applies at the next deployment)."""
    wanted: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        wanted[name] = _value(name, value if sep else None, secret)
    with session() as api:
        detail = api.application(app)
        env = [v for v in _kept(detail["env"]) if v["name"] not in wanted]
        env += [{"name": k, "value": v, "secret": secret} for k, v in wanted.items()]
        api.send("PATCH", f"/v1/applications/{detail['id']}", {"env": env})
    kind = " (secret)" if secret else ""
    typer.echo(f"Set {', '.join(wanted)}{kind} on {detail['name']}; it applies at the next deployment")


@env_app.command("unset")
def env_unset(app: AppRef, names: Annotated[list[str], typer.Argument(help="the variables to remove")]) -> None:
    """Remove runtime variables (applies at the next deployment)."""
    with session() as api:
        detail = api.application(app)
        missing = [n for n in names if n not in {v["name"] for v in detail["env"]}]
        env = [v for v in _kept(detail["env"]) if v["name"] not in names]
        if len(env) != len(detail["env"]):
            api.send("PATCH", f"/v1/applications/{detail['id']}", {"env": env})
    removed = [n for n in names if n not in missing]
    if removed:
        typer.echo(f"Unset {', '.join(removed)} on {detail['name']}; it applies at the next deployment")
    if missing:
        typer.echo(f"Not set: {', '.join(missing)}", err=True)


@env_app.command("import")
def env_import(
    app: AppRef,
    file: Annotated[Path, typer.Argument(help="a .env file (- : stdin)", allow_dash=True)],
    secret: Annotated[bool, typer.Option("--secret", help="store every imported variable as a secret")] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="replace all variables (default: merge, the file's win)")
    ] = False,
    build: Build = False,
    as_json: Json = False,
) -> None:
    """Import a .env file into the application's variables (or build args)."""
    content = sys.stdin.read() if str(file) == "-" else file.read_text()
    body = {"content": content, "kind": "build" if build else "runtime", "secret": secret, "replace": replace}
    with session() as api:
        detail = api.application(app)
        answer = api.send("POST", f"/v1/applications/{detail['id']}/variables/import", body)
    if as_json:
        print_json(answer)
        return
    typer.echo(f"Imported {file} into {detail['name']}; it applies at the next deployment")


@env_app.command("export")
def env_export(
    app: AppRef,
    build: Build = False,
    merged: Annotated[
        bool, typer.Option("--merged", help="what a deployment gets: groups < environment < application")
    ] = False,
    reveal_secrets: Annotated[
        bool, typer.Option("--reveal-secrets", help="secret values too (admin; audited)")
    ] = False,
) -> None:
    """The application's variables as a .env file (secrets masked unless revealed)."""
    with session() as api:
        detail = api.application(app)
        text = api.text(
            f"/v1/applications/{detail['id']}/variables/export",
            kind="build" if build else "runtime",
            merged=merged,
            reveal_secrets=reveal_secrets,
        )
    typer.echo(text, nl=not text.endswith("\n"))
