"""The daily-work commands hooked onto the ``berth`` command (``main.py`` calls :func:`register` once)."""

from __future__ import annotations

from typing import Annotated

import typer

from berth_cli.commands import apps, auth, compose, create, dbs, deploy, env, jobs, logs, runs, teams, templates
from berth_cli.commands.common import Chosen


def choose_context(
    context: Annotated[
        str | None,
        typer.Option(
            "--context", envvar="BERTH_CONTEXT", help="the context the client commands use (berth context list)"
        ),
    ] = None,
) -> None:
    Chosen.context = context


def register(app: typer.Typer, db_app: typer.Typer) -> None:
    app.callback()(choose_context)
    app.command("login")(auth.login)
    app.command("logout")(auth.logout)
    app.add_typer(auth.context_app, name="context")
    app.add_typer(teams.teams_app, name="teams")
    app.add_typer(apps.projects_app, name="projects")
    apps.apps_app.command("create")(create.apps_create)
    apps.apps_app.command("update")(compose.update)
    app.add_typer(apps.apps_app, name="apps")
    app.add_typer(templates.templates_app, name="templates")
    app.command("deploy")(deploy.deploy)
    app.command("rollback")(deploy.rollback)
    app.command("scale")(apps.scale)
    app.command("open")(apps.open_app)
    app.command("logs")(logs.logs)
    app.command("run")(runs.run)
    app.add_typer(runs.runs_app, name="runs")
    app.add_typer(jobs.jobs_app, name="jobs")
    app.add_typer(env.env_app, name="env")
    db_app.command("list")(dbs.db_list)
    db_app.command("create")(dbs.db_create)
    db_app.command("show")(dbs.db_show)
    db_app.command("logs")(logs.db_logs)
    db_app.add_typer(dbs.db_backup_app, name="backup")
