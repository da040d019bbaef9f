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
from pathlib import Path
from typing import Annotated

import typer

from berth_cli import api_commands
from berth_cli.secrets_cmd import api_database_url

admin_app = typer.Typer(help="The platform's own administration (on the control-plane host).", no_args_is_help=True)

MINT = "berth-api-admin-token"  # the api package's own command (berth_api.entrypoints.admin_token)
DEFAULT_EMAIL = "admin@localhost"  # the api's default BERTH_ADMIN_EMAIL


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
    args = ["--email", email, "--token-file", str(path.expanduser().resolve()), *(["--team", team] if team else [])]
    code = api_commands.run(MINT, args, url, "berth admin token")
    if code:
        raise typer.Exit(code)
