"""``berth db list|create|show|logs`` and ``berth db backup list|run``: the team's databases and their
backups. (``berth backup`` is the control plane's own archive; a database's backups live under ``db``.)"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from berth_cli.client.output import print_fields, print_json, print_table, when
from berth_cli.commands.apps import parse_pairs
from berth_cli.commands.common import DbRef, Json, session

db_backup_app = typer.Typer(help="A database's backups.", no_args_is_help=True)


def db_list(as_json: Json = False) -> None:
    """The team's databases (never a password)."""
    with session() as api:
        rows = api.get("/v1/databases")
    if as_json:
        print_json(rows)
        return
    table = [[d["name"], d["engine"], d["version"], d["state"], f"{d['host']}:{d['port']}", d["id"]] for d in rows]
    print_table(["NAME", "ENGINE", "VERSION", "STATE", "ADDRESS", "ID"], table)


def db_create(
    name: str,
    engine: Annotated[str, typer.Option(help="postgresql, mysql, mariadb, redis or mongodb")],
    version: Annotated[str | None, typer.Option(help="one of the engine's versions (default: its default)")] = None,
    server: Annotated[str, typer.Option(help="the server it runs on (id, or local)")] = "local",
    config: Annotated[
        list[str] | None, typer.Option("--config", help="an engine parameter NAME=VALUE (repeatable)")
    ] = None,
    as_json: Json = False,
) -> None:
    """Create a database with generated credentials (it starts, then runs)."""
    body: dict[str, Any] = {
        "name": name,
        "engine": engine,
        "server_id": server,
        "config": parse_pairs(config or [], "--config"),
    }
    if version:
        body["version"] = version
    with session() as api:
        db = api.send("POST", "/v1/databases", body)
    if as_json:
        print_json(db)
        return
    typer.echo(f"Created database {db['name']} ({db['engine']} {db['version']}, {db['id']}): {db['state']}")


def db_show(database: DbRef, as_json: Json = False) -> None:
    """A database: state, address, user, the variable a link sets, its last backup."""
    with session() as api:
        db = api.database(database)
    if as_json:
        print_json(db)
        return
    last = db.get("last_verified_backup")
    lines = [
        ("name", db["name"]),
        ("id", db["id"]),
        ("engine", f"{db['engine']} {db['version']}"),
        ("state", db["state"] + (f" ({db['reason']})" if db.get("reason") else "")),
        ("address", f"{db['host']}:{db['port']}"),
        ("database", db["database"]),
        ("user", db["user"]),
        ("variable", db["variable"]),
        ("server", db["server_id"]),
        ("backup", when(last.get("finished_at")) if last else "-"),
    ]
    print_fields(lines)


@db_backup_app.command("list")
def db_backup_list(database: DbRef, as_json: Json = False) -> None:
    """The database's backups, newest first."""
    with session() as api:
        db = api.database(database)
        rows = api.get(f"/v1/databases/{db['id']}/backups")
    if as_json:
        print_json(rows)
        return
    table = [
        [
            b["id"],
            b["state"],
            b.get("compression"),
            b.get("encrypted"),
            len(b["objects"]),
            when(b["created_at"]),
            b.get("reason"),
        ]
        for b in rows
    ]
    print_table(["ID", "STATE", "COMPRESSION", "ENCRYPTED", "OBJECTS", "CREATED", "REASON"], table)


@db_backup_app.command("run")
def db_backup_run(
    database: DbRef,
    to: Annotated[list[str], typer.Option("--to", help="a backup destination: id or name (repeatable)")],
    compression: Annotated[str, typer.Option(help="zstd or gzip")] = "zstd",
    encrypt: Annotated[bool, typer.Option("--encrypt", help="encrypt with the team's backup key")] = False,
    as_json: Json = False,
) -> None:
    """Back the database up now (the backup is requested, then runs)."""
    with session() as api:
        db = api.database(database)
        body = {"destinations": [api.destination(d) for d in to], "compression": compression, "encrypt": encrypt}
        backup = api.send("POST", f"/v1/databases/{db['id']}/backups", body)
    if as_json:
        print_json(backup)
        return
    typer.echo(f"Backup {backup['id']} of {db['name']}: {backup['state']} (berth db backup list {db['name']})")
