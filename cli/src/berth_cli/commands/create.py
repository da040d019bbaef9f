"""``berth apps create``: an application of one service (an image, or a git repository Berth builds), or a
compose application (a local compose file sent inline, or a path in its git repository, with ``--host``
saying which service and port get which host and path)."""

from __future__ import annotations

import shlex
from typing import Annotated, Any

import typer

from berth_cli.client.api import Api, ApiError
from berth_cli.client.output import print_json
from berth_cli.commands import compose as compose_cmd
from berth_cli.commands import git_access
from berth_cli.commands.apps import parse_pairs
from berth_cli.commands.common import Json, session

Project = Annotated[str, typer.Option("--project", "-p", help="the project (id or name)")]
Environment = Annotated[str, typer.Option("--environment", "-e", help="the project's environment")]


def environment_id(api: Api, project_ref: str, environment: str) -> str:
    project = api.project(project_ref)
    for env in project["environments"]:
        if env["name"] == environment:
            return str(env["id"])
    raise ApiError(
        404, {"title": "Not found", "detail": f"no environment {environment!r} in project {project['name']}"}
    )


def _refuse_with_compose(given: dict[str, object]) -> None:
    """Options of an application of services given with a compose file: refused by name."""
    for option, value in given.items():
        if value:
            raise typer.BadParameter(
                "a compose file names its services, images and ports (hosts: --host)", param_hint=option
            )


def apps_create(
    name: str,
    project: Project,
    environment: Environment = "production",
    image: Annotated[str | None, typer.Option(help="run this image")] = None,
    git: Annotated[str | None, typer.Option(help="build this git repository")] = None,
    branch: Annotated[str | None, typer.Option(help="the branch or tag to build (git)")] = None,
    dockerfile: Annotated[str | None, typer.Option(help="the Dockerfile's path (git; default: detected)")] = None,
    compose: compose_cmd.Compose = None,
    compose_path: compose_cmd.ComposePath = None,
    host: compose_cmd.Hosts = None,
    profile: compose_cmd.Profiles = None,
    with_file: compose_cmd.WithFiles = None,
    service: Annotated[str, typer.Option(help="the service's name")] = "web",
    port: Annotated[int | None, typer.Option(help="the port it listens on (a web service)")] = None,
    worker: Annotated[bool, typer.Option("--worker", help="a worker: no port, no route")] = False,
    replicas: Annotated[int, typer.Option(help="how many replicas")] = 1,
    command: Annotated[
        str | None, typer.Option(help="the command, split into argv like a shell would (never run by one)")
    ] = None,
    health_path: Annotated[str, typer.Option(help="readiness: a GET here answers 2xx (web)")] = "/",
    domain: Annotated[list[str] | None, typer.Option(help="a custom host name (repeatable)")] = None,
    buffer_requests: Annotated[
        int | None,
        typer.Option(
            metavar="MB",
            min=1,
            help="the proxy reads each request's whole body (at most MB MiB, else 413) before forwarding it, "
            "so no request with a body is lost while replicas change (web)",
        ),
    ] = None,
    env: Annotated[list[str] | None, typer.Option("--env", help="NAME=VALUE (repeatable)")] = None,
    deploy_key: git_access.DeployKey = False,
    deploy_key_file: git_access.DeployKeyFile = None,
    host_key: git_access.HostKey = None,
    git_token_stdin: git_access.TokenStdin = False,
    git_token: git_access.TokenPrompt = False,
    git_username: git_access.TokenUser = "x-access-token",
    as_json: Json = False,
) -> None:
    """Create an application from an image or a git repository, with one service; or from a compose file
    (``--compose FILE``, or ``--compose-path PATH`` in the ``--git`` repository) with ``--host`` for its
    routed services. A private repository with a deploy key (made by Berth, or given) or an access token."""
    composed = compose_cmd.compose_of(compose, compose_path, with_file or [], profile)
    if composed is not None:
        _refuse_with_compose(
            {
                "--image": image,
                "--dockerfile": dockerfile,
                "--port": port,
                "--worker": worker,
                "--command": command,
                "--domain": domain,
                "--buffer-requests": buffer_requests,
            }
        )
        if compose_path is not None and git is None:
            raise typer.BadParameter(
                "the file is read from the application's repository: give --git", param_hint="--compose-path"
            )
    elif (image is None) == (git is None):
        raise typer.BadParameter("give one of --image, --git or --compose", param_hint="--image/--git")
    elif host:
        raise typer.BadParameter("--host is for a compose application (--domain otherwise)", param_hint="--host")
    elif worker and buffer_requests is not None:
        raise typer.BadParameter("a worker has no route: its requests are not buffered", param_hint="--buffer-requests")
    access = git_access.access_of(git, deploy_key, deploy_key_file, host_key, git_token_stdin, git_token, git_username)
    source: dict[str, Any] = {"kind": "image", "image": image}
    if git is not None:
        source = {"kind": "git", "repository": git}
        if composed is None:  # a compose file's services say how each is built
            source["dockerfile"] = dockerfile
        if branch:
            source["branch"] = branch
    variables = [{"name": k, "value": v} for k, v in parse_pairs(env or [], "--env").items()]
    if composed is not None:
        body: dict[str, Any] = {"name": name, "compose": composed, "env": variables}
        if host:
            body["hosts"] = [compose_cmd.parse_host(h) for h in host]
        if git is not None:
            body["source"] = source
    else:
        svc: dict[str, Any] = {"kind": "worker", "name": service, "replicas": replicas}
        if command:
            svc["command"] = shlex.split(command)
        if not worker:
            svc = {**svc, "kind": "web", "port": port or 8080, "health_path": health_path, "domains": domain or []}
            if buffer_requests is not None:
                svc["buffer_requests"] = {"max_body_mb": buffer_requests}
        body = {"name": name, "source": source, "services": [svc], "env": variables}
    if access is not None:
        body["git_access"] = access
    with session() as api:
        env_id = environment_id(api, project, environment)
        created = api.send("POST", f"/v1/environments/{env_id}/applications", body)
        key = git_access.make_key(api, created, host_key or []) if deploy_key else None
    if as_json:
        print_json(created if key is None else {**created, "deploy_key": key})
        return
    typer.echo(f"Created application {created['name']} ({created['id']}); deploy it with: berth deploy {created['id']}")
    if composed is not None:
        typer.echo(f"Services: {compose_cmd.services_line(created)}")
    if key is not None:
        git_access.print_key(key)
