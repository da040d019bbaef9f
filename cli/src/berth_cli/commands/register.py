"""The subcommands of ``berth`` built only when they are used: each entry registers one top-level command
or group on a Typer (``berth_cli.lazy`` hands it one), importing its module (httpx, rich, the command's own
helpers) only then. ``berth down`` thus loads none of the daily-work commands."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Annotated

import typer

from berth_cli.client.config import Chosen

Register = Callable[[typer.Typer], None]


def choose_context(
    context: Annotated[
        str | None,
        typer.Option(
            "--context", envvar="BERTH_CONTEXT", help="the context the client commands use (berth context list)"
        ),
    ] = None,
) -> None:
    Chosen.context = context


def command(module: str, attr: str, name: str) -> Register:
    """``berth NAME``: the function ``attr`` of ``module``."""

    def register(app: typer.Typer) -> None:
        app.command(name)(getattr(importlib.import_module(module), attr))

    return register


def group(module: str, attr: str, name: str) -> Register:
    """``berth NAME ...``: the Typer ``attr`` of ``module``."""

    def register(app: typer.Typer) -> None:
        app.add_typer(getattr(importlib.import_module(module), attr), name=name)

    return register


@functools.cache
def apps_app() -> typer.Typer:
    """``berth apps``, with ``create`` and ``update`` (their own modules) added once."""
    from berth_cli.commands import apps, compose, create

    apps.apps_app.command("create")(create.apps_create)
    apps.apps_app.command("update")(compose.update)
    return apps.apps_app


def register_db(db_app: typer.Typer) -> None:
    """The team's databases under ``berth db`` (``main.py`` adds ``provision``)."""
    from berth_cli.commands import dbs, logs

    db_app.command("list")(dbs.db_list)
    db_app.command("create")(dbs.db_create)
    db_app.command("show")(dbs.db_show)
    db_app.command("logs")(logs.db_logs)
    db_app.add_typer(dbs.db_backup_app, name="backup")


_C = "berth_cli.commands."
CLIENT: dict[str, Register] = {
    "login": command(_C + "auth", "login", "login"),
    "logout": command(_C + "auth", "logout", "logout"),
    "deploy": command(_C + "deploy", "deploy", "deploy"),
    "rollback": command(_C + "deploy", "rollback", "rollback"),
    "scale": command(_C + "apps", "scale", "scale"),
    "open": command(_C + "apps", "open_app", "open"),
    "logs": command(_C + "logs", "logs", "logs"),
    "run": command(_C + "runs", "run", "run"),
    "context": group(_C + "auth", "context_app", "context"),
    "teams": group(_C + "teams", "teams_app", "teams"),
    "projects": group(_C + "apps", "projects_app", "projects"),
    "apps": lambda app: app.add_typer(apps_app(), name="apps"),
    "templates": group(_C + "templates", "templates_app", "templates"),
    "runs": group(_C + "runs", "runs_app", "runs"),
    "jobs": group(_C + "jobs", "jobs_app", "jobs"),
    "env": group(_C + "env", "env_app", "env"),
}
"""The daily-work commands against an api."""

LOCAL: dict[str, Register] = {
    "backup": command("berth_cli.backup_cmd", "backup", "backup"),
    "restore": command("berth_cli.backup_cmd", "restore", "restore"),
    "metrics-token": command("berth_cli.metrics_cmd", "metrics_token", "metrics-token"),
    "backup-decrypt": command("berth_cli.backup_decrypt", "backup_decrypt", "backup-decrypt"),
    "secrets": group("berth_cli.secrets_cmd", "secrets_app", "secrets"),
    "admin": group("berth_cli.admin_cmd", "admin_app", "admin"),
}
"""The local platform's own commands that live in their own modules."""
