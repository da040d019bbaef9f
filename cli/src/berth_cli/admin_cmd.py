"""``berth admin``: the platform's own administration on the control-plane host.

    berth admin token [--data-dir DIR] [--email EMAIL] [--team NAME] [--token-file PATH] [--database-url URL]

``token`` mints a new admin token when the one ``berth up`` prints no longer works (revoked, expired) or
is lost: for an existing admin (the bootstrap admin's e-mail, BERTH_ADMIN_EMAIL, by default) in one of
that admin's teams, written to the admin token file (``<data dir>/admin.token``, mode 0600) and recorded in
the team's audit log. It needs the data directory (the database's credentials): whoever has those can
already do anything. The api package's own command does it (``berth-api-admin-token``, argv only; the cli
imports no service package); the database is found as by ``berth secrets rotate-key``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from berth_cli.secrets_cmd import api_database_url

admin_app = typer.Typer(help="The platform's own administration (on the control-plane host).", no_args_is_help=True)

MINT = "berth-api-admin-token"  # the api package's own command (berth_api.entrypoints.admin_token)
DEFAULT_EMAIL = "admin@localhost"  # the api's default BERTH_ADMIN_EMAIL


def _command() -> str:
    beside = Path(sys.executable).parent / MINT
    found = str(beside) if beside.is_file() else shutil.which(MINT)
    if found is None:
        typer.echo(f"berth admin token: {MINT} not found (the api package is not installed here)", err=True)
        raise typer.Exit(1)
    return found


def _mint(url: str, email: str, team: str | None, token_file: Path) -> int:
    """Run the api's command (argv only; the URL, which holds a password, in its environment)."""
    argv = [_command(), "--email", email, "--token-file", str(token_file), *(["--team", team] if team else [])]
    proc = subprocess.run(argv, env={**os.environ, "BERTH_DATABASE_URL": url}, capture_output=True, text=True)
    if proc.stdout:
        typer.echo(proc.stdout, nl=False)
    for line in proc.stderr.splitlines():
        if line.startswith(f"{MINT}: "):
            line = "berth admin token: " + line[len(MINT) + 2 :]
        typer.echo(line, err=True)
    return proc.returncode


@admin_app.command("token")
def token(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="the platform's data directory")] = Path(".berth"),
    email: Annotated[
        str, typer.Option("--email", envvar="BERTH_ADMIN_EMAIL", help="an admin's e-mail address")
    ] = DEFAULT_EMAIL,
    team: Annotated[str | None, typer.Option("--team", help="the team (default: the admin's oldest)")] = None,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="default: <data dir>/admin.token (BERTH_ADMIN_TOKEN_FILE)")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", envvar="BERTH_DATABASE_URL", help="server and database")
    ] = None,
) -> None:
    """Mint a new admin token (audited) and write it to the admin token file."""
    root = data_dir.expanduser().resolve()
    path = token_file or (
        Path(os.environ["BERTH_ADMIN_TOKEN_FILE"]) if os.environ.get("BERTH_ADMIN_TOKEN_FILE") else root / "admin.token"
    )
    url = api_database_url(root, database_url)
    code = _mint(url, email, team, path.expanduser().resolve())
    if code:
        raise typer.Exit(code)
