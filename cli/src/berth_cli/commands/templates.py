"""``berth templates ...``: the template catalogue (list, search, show), importing a Coolify template or a
Dokploy blueprint into a Berth template document (printed, to read and edit), and deploying a catalogue
template or such a document into an environment: an application with generated secrets and hosts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from berth_cli.client.api import Api
from berth_cli.client.config import resolve
from berth_cli.client.output import cell, print_fields, print_json, print_table
from berth_cli.commands import compose as compose_cmd
from berth_cli.commands import create, deploy
from berth_cli.commands.apps import hosts_of, parse_pairs, url_of
from berth_cli.commands.common import Json, session

templates_app = typer.Typer(help="Templates: whole stacks (compose) to deploy in one step.", no_args_is_help=True)


def complete_template(incomplete: str) -> list[str]:
    """Shell completion of template slugs: asked of the api with a short timeout, nothing on failure."""
    try:
        with Api(resolve(), timeout=2.0) as api:
            slugs = sorted(t["slug"] for t in api.get("/v1/templates"))
    except Exception:  # completion must never print an error into the user's shell
        return []
    return [s for s in slugs if s.startswith(incomplete)]


Slug = Annotated[str, typer.Argument(help="the template (berth templates list)", autocompletion=complete_template)]
Tag = Annotated[str | None, typer.Option("--tag", "-t", help="only templates with this tag")]


def _listing(q: str | None, tag: str | None, as_json: bool) -> None:
    with session() as api:
        found = api.get("/v1/templates", q=q, tag=tag)
    if as_json:
        print_json(found)
        return
    rows = [[t["slug"], t["name"], ",".join(t["tags"]), t["description"]] for t in found]
    print_table(["SLUG", "NAME", "TAGS", "DESCRIPTION"], rows)


@templates_app.command("list")
def templates_list(tag: Tag = None, as_json: Json = False) -> None:
    """The catalogue."""
    _listing(None, tag, as_json)


@templates_app.command("search")
def templates_search(
    query: Annotated[str, typer.Argument(help="words of the name, description or tags")],
    tag: Tag = None,
    as_json: Json = False,
) -> None:
    """The catalogue's templates that match the words."""
    _listing(query, tag, as_json)


def _options(spec: dict[str, Any]) -> str:
    return " ".join(f"{k}={cell(v)}" for k, v in spec.items() if k not in ("kind", "description"))


@templates_app.command("show")
def templates_show(
    slug: Slug,
    document: Annotated[bool, typer.Option("--document", help="print the whole template as YAML (to edit)")] = False,
    as_json: Json = False,
) -> None:
    """A template: what it is, its variables (given with --var at deploy, or generated) and its compose file."""
    with session() as api:
        t = api.get(f"/v1/templates/{slug}")
    if as_json:
        print_json(t)
        return
    if document:
        typer.echo(t["document"], nl=not t["document"].endswith("\n"))
        return
    print_fields(
        [
            ("name", t["name"]),
            ("slug", t["slug"]),
            ("about", t["description"]),
            ("tags", ",".join(t["tags"]) or "-"),
            ("version", t["version"]),
            ("docs", t["docs"]),
        ]
    )
    typer.echo("")
    rows = [[name, spec.get("kind"), _options(spec) or None] for name, spec in t["variables"].items()]
    print_table(["VARIABLE", "KIND", "OPTIONS"], rows)
    typer.echo("\nCompose file:")
    typer.echo(t["compose"], nl=not t["compose"].endswith("\n"))


@templates_app.command("import")
def templates_import(
    files: Annotated[list[Path], typer.Argument(help="coolify: NAME.yaml; dokploy: template.toml docker-compose.yml")],
    fmt: Annotated[Literal["coolify", "dokploy"], typer.Option("--format", help="whose template it is")],
    name: Annotated[str | None, typer.Option(help="the template's name (default: from the files)")] = None,
    as_json: Json = False,
) -> None:
    """A Berth template document from a Coolify template or a Dokploy blueprint, printed (not stored): what
    could not be carried over is listed by name on stderr. Deploy it with ``berth templates deploy --file``."""
    body: dict[str, Any] = {
        "format": fmt,
        "files": {f.name: compose_cmd.read_text(str(f), "FILES") for f in files},
        **({"name": name} if name else {}),
    }
    with session() as api:
        answer = api.send("POST", "/v1/templates/import", body)
    if as_json:
        print_json(answer)
        return
    doc = answer["template"]["document"]
    typer.echo(doc, nl=not doc.endswith("\n"))
    for title, key in (("Not carried over", "not_carried"), ("Notes", "notes")):
        if answer[key]:
            typer.echo(f"{title}:", err=True)
            for line in answer[key]:
                typer.echo(f"  {line}", err=True)


@templates_app.command("deploy")
def templates_deploy(
    project: create.Project,
    slug: Annotated[
        str | None, typer.Argument(help="a catalogue template (or --file)", autocompletion=complete_template)
    ] = None,
    environment: create.Environment = "production",
    document: Annotated[
        str | None, typer.Option("--file", "-f", help="a template document (berth templates import/show --document)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="the application's name (default: the template's slug)")] = None,
    domain: Annotated[str | None, typer.Option(help="the host of its main domain (default: generated)")] = None,
    var: Annotated[
        list[str] | None, typer.Option("--var", help="NAME=VALUE for a template variable (repeatable)")
    ] = None,
    then_deploy: Annotated[
        bool, typer.Option("--deploy", help="deploy it now and follow it (exit 0 only on success)")
    ] = False,
    as_json: Json = False,
) -> None:
    """Create an application from a template, with generated secrets and hosts (``--deploy``: and deploy it)."""
    if (slug is None) == (document is None):
        raise typer.BadParameter("give a template's SLUG or --file", param_hint="SLUG/--file")
    body: dict[str, Any] = {"variables": parse_pairs(var or [], "--var")}
    if name:
        body["name"] = name
    if domain:
        body["domain"] = domain
    if document is not None:
        body["document"] = compose_cmd.read_text(document, "--file")
    with session(interrupted=deploy.GOES_ON) as api:
        body["environment_id"] = create.environment_id(api, project, environment)
        path = f"/v1/templates/{slug}/deploy" if slug else "/v1/templates/deploy"
        app = api.send("POST", path, body)
        if not as_json:
            typer.echo(f"Created application {app['name']} ({app['id']}): {compose_cmd.services_line(app)}")
            urls = [url_of(app, h, api.context.proxy_url) for _, h in hosts_of(app)]
            if urls:
                typer.echo("URLs: " + " ".join(urls))
        if then_deploy:
            deployment = api.send("POST", f"/v1/applications/{app['id']}/deployments")
            deploy.finish(api, app, deployment, False, as_json)
            return
    if as_json:
        print_json(app)
        return
    typer.echo(f"Deploy it with: berth deploy {app['id']}")
