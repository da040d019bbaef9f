"""``berth teams list|create|switch|leave|delete``: the teams you belong to. Tokens are per team, so
switching teams is a context per team: ``create`` and ``switch`` store the new team's token as a context
(named after the team unless ``--context`` says otherwise) and make it current, as ``login`` does."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from berth_cli.client.api import Api, not_found
from berth_cli.client.config import Config, ConfigError, check_name, config_path
from berth_cli.client.output import fail, print_json, print_table
from berth_cli.commands.common import Json, session

teams_app = typer.Typer(
    help="Teams: list, create, switch (a token and context per team), leave, delete.", no_args_is_help=True
)
ContextName = Annotated[str | None, typer.Option("--context", "-c", help="the context to store (default: the team)")]


def _team(api: Api, name: str) -> dict[str, Any]:
    for team in api.get("/v1/me/teams"):
        if name in (team["name"], team["id"]):
            return dict(team)
    raise not_found("team", name)


def _store(api: Api, context: str, token: str) -> None:
    """Store a token of the same api as a context and make it current."""
    path = config_path()
    try:
        check_name(context)
        config = Config.load(path)
        config.put(context, api.context.api_url, token, api.context.proxy_url)
        config.save(path)
    except ConfigError as exc:
        fail(exc)


@teams_app.command("list")
def teams_list(as_json: Json = False) -> None:
    """The teams you belong to and your role in each; the current context's team is marked *."""
    with session() as api:
        teams = api.get("/v1/me/teams")
        current = api.get("/v1/me")["team"]["id"]
    if as_json:
        print_json(teams)
        return
    rows = [["*" if t["id"] == current else "", t["name"], t["role"], t["id"]] for t in teams]
    print_table(["CURRENT", "NAME", "ROLE", "ID"], rows)


@teams_app.command("create")
def teams_create(name: str, context: ContextName = None) -> None:
    """Create a team (you become its admin) and switch to it."""
    with session() as api:
        made = api.send("POST", "/v1/teams", {"name": name, "token_name": "berth cli"})
        _store(api, context or name, made["token"]["token"])
    typer.echo(f"Created team {made['name']} ({made['id']}); context {context or name} is current")


@teams_app.command("switch")
def teams_switch(team: str, context: ContextName = None) -> None:
    """Mint a token for a team you belong to and make it the current context."""
    with session() as api:
        found = _team(api, team)
        minted = api.send("POST", "/v1/me/tokens", {"team_id": found["id"], "name": "berth cli"})
        _store(api, context or found["name"], minted["token"])
    typer.echo(f"Switched to team {found['name']} (role {found['role']}); context {context or found['name']}")


@teams_app.command("leave")
def teams_leave(team: str) -> None:
    """Leave a team (not as its last admin); your tokens for it are revoked."""
    with session() as api:
        found = _team(api, team)
        api.send("POST", "/v1/me/teams/leave", {"team_id": found["id"]})
    typer.echo(f"Left team {found['name']}")


@teams_app.command("delete")
def teams_delete(team: str) -> None:
    """Delete an empty team you are an admin of (the api says what it still holds)."""
    with session() as api:
        found = _team(api, team)
        api.send("DELETE", f"/v1/teams/{found['id']}")
    typer.echo(f"Deleted team {found['name']}")
