"""``berth secrets``: the api's secret key (AES-256-GCM key of secret variables, ``<data dir>/api-secrets.key``).

    berth secrets rotate-key [--data-dir DIR] [--key-file PATH] [--database-url URL] [--keep-backup]

A new key replaces the key file and every sealed value in the api schema is re-sealed with it, in one
transaction, by the api package's own command (``berth-api-rotate-key``, run with argv only; the cli
imports no service package). The api may keep running: it waits for the rotation to
commit before sealing anything, and re-reads the key file when it changes.

The database: ``--database-url`` (or BERTH_DATABASE_URL) names the server and database; without a user
in it the api's own role is filled in from BERTH_SECRET_KEY (or ``<data dir>/secret.key``). Without a URL,
the data dir's own Postgres (``berth up``) is used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from berth_cli import api_commands

secrets_app = typer.Typer(help="The api's secret key.", no_args_is_help=True)


def _secret_key(data_dir: Path) -> str:
    value = os.environ.get("BERTH_SECRET_KEY", "")
    if value:
        return value
    path = data_dir / "secret.key"
    if not path.is_file():
        raise typer.BadParameter(f"no BERTH_SECRET_KEY and no {path}", param_hint="--data-dir")
    return path.read_text().strip()


def api_database_url(data_dir: Path, database_url: str | None) -> str:
    """The URL to connect with for the api schema (see the module's docstring)."""
    from berth_cli import provisioning

    if database_url:
        if urlsplit(database_url).username:
            return database_url
        return provisioning.role_url(database_url, _secret_key(data_dir), "api")
    from berth_cli import components
    from berth_cli.layout import DATABASE, Paths, resolve_ports

    paths = Paths(data_dir)
    if not paths.pg_password.is_file():
        raise typer.BadParameter(f"no local Postgres in {data_dir}: give --database-url", param_hint="--data-dir")
    admin = components.pg_admin_url(resolve_ports(dict(os.environ))["postgres"], paths.pg_password.read_text().strip())
    return provisioning.role_url(provisioning.with_database(admin, DATABASE), _secret_key(data_dir), "api")


ROTATE = "berth-api-rotate-key"  # the api package's own command (berth_api.entrypoints.rotate_key)


@secrets_app.command("rotate-key")
def rotate_key(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="the platform's data directory")] = Path(".berth"),
    key_file: Annotated[
        Path | None, typer.Option("--key-file", help="default: <data dir>/api-secrets.key (BERTH_SECRETS_KEY_FILE)")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", envvar="BERTH_DATABASE_URL", help="server and database")
    ] = None,
    keep_backup: Annotated[bool, typer.Option("--keep-backup", help="keep the old key file after success")] = False,
) -> None:
    """Generate a new api secret key and re-encrypt every sealed value with it (one transaction)."""
    root = data_dir.expanduser().resolve()
    path = key_file or (
        Path(os.environ["BERTH_SECRETS_KEY_FILE"])
        if os.environ.get("BERTH_SECRETS_KEY_FILE")
        else root / "api-secrets.key"
    )
    url = api_database_url(root, database_url)
    args = ["--key-file", str(path.expanduser().resolve()), *(["--keep-backup"] if keep_backup else [])]
    code = api_commands.run(ROTATE, args, url, "berth secrets rotate-key")
    if code:
        raise typer.Exit(code)
