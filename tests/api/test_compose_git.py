"""A compose application whose file is a path of its git repository (``compose.path``): the api asks the
builder (``rpc.builder.repository_file``) and translates what it reads, at creation, at each update and
again at each deployment. Real parts: the api, the builder in-process on the same nats-server and Postgres,
a repository made in the test and served by `git daemon` on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import make_app
from tests.api.test_projects import problem
from tests.builder.support import GitDaemon, commit, git, make_repo, publish_bare, start_builder, stop_builder

pytestmark = pytest.mark.slow

COMPOSE = """\
services:
  web:
    build:
      context: ./app
      dockerfile: web.Dockerfile
      args:
        MODE: prod
    ports: ["8000"]
    depends_on:
      db: {condition: service_healthy}
  db:
    image: postgres:16
    healthcheck:
      test: ["CMD", "pg_isready"]
    volumes: ["db-data:/var/lib/postgresql/data"]
volumes:
  db-data: {}
"""


@pytest.fixture
async def builder(nats_server, database, tmp_path: Path):
    running = await start_builder(nats_server.url, database, tmp_path / "builder")
    yield running
    await stop_builder(running)


@pytest.fixture
def served(tmp_path: Path):
    daemon = GitDaemon(tmp_path / "served").start()
    yield daemon
    daemon.stop()


def repository(tmp_path: Path, served: GitDaemon, files: dict[str, str], name: str = "stack") -> tuple[Path, str]:
    """A repository with ``files`` on main, published bare under the daemon: (its work tree, its sha)."""
    repo = tmp_path / name
    sha = make_repo(repo, files)
    publish_bare(repo, served.base, f"{name}.git")
    return repo, sha


def republish(repo: Path, served: GitDaemon, files: dict[str, str], name: str = "stack") -> str:
    sha = commit(repo, files)
    git("push", "-q", str(served.base / f"{name}.git"), "main", cwd=repo)
    return sha


def body(served: GitDaemon, path: str = "deploy/compose.yml", name: str = "stack", **extra: Any) -> dict:
    source = {"kind": "git", "repository": served.url(f"{name}.git"), "branch": "main"}
    return {"name": name, "compose": {"path": path}, "source": source, **extra}


def only_error(r) -> dict:
    (err,) = problem(r, 422)["errors"]
    return err


async def test_a_compose_file_of_the_repository_is_read_and_translated(
    client, members, builder, served, tmp_path
) -> None:
    repo, sha = repository(tmp_path, served, {"deploy/compose.yml": COMPOSE, "deploy/app/web.Dockerfile": "FROM x"})
    hosts = [{"service": "web", "port": 8000, "host": "stack.example.com"}]
    app = await make_app(client, members.developer, body(served, hosts=hosts))

    assert [(s["kind"], s["name"]) for s in app["services"]] == [("web", "web"), ("worker", "db")]
    assert app["services"][0]["hosts"][1:] == ["stack.example.com"]
    compose = app["compose"]
    assert compose["path"] == "deploy/compose.yml" and "inline" not in compose
    translated = compose["translated"]
    assert translated["file"] == {"path": "deploy/compose.yml", "commit": sha}
    web = next(s for s in translated["services"] if s["name"] == "web")
    # the build context is relative to the compose file's directory, as compose reads it
    assert web["build"] == {
        "subdirectory": "deploy/app",
        "dockerfile": "web.Dockerfile",
        "build_args": [{"name": "MODE", "value": "prod"}],
    }
    assert translated["start_order"] == [["db"], ["web"]]
    assert app["source"]["repository"] == served.url("stack.git")

    # an update reads the file again: the file changed at the ref meanwhile
    changed = republish(repo, served, {"deploy/compose.yml": COMPOSE.replace("postgres:16", "postgres:17")})
    r = await client.patch(f"/v1/applications/{app['id']}", headers=members.developer, json={"hosts": []})
    assert r.status_code == 200, r.text
    again = r.json()["compose"]["translated"]
    assert again["file"]["commit"] == changed
    assert next(s for s in again["services"] if s["name"] == "db")["image"] == "postgres:17"

    # a deployment reads it again too: a refused key put in the file since is found, by name
    republish(repo, served, {"deploy/compose.yml": COMPOSE.replace("  db:\n", "  db:\n    privileged: true\n")})
    r = await client.post(f"/v1/applications/{app['id']}/deployments", headers=members.developer)
    err = only_error(r)
    assert err["loc"] == "/body/compose/services/db/privileged" and "BERTH_COMPOSE_ALLOW" in err["detail"]


async def test_what_the_builder_refuses_is_a_clear_error(client, members, builder, served, tmp_path) -> None:
    refused = COMPOSE.replace("  db:\n", "  db:\n    privileged: true\n")
    repository(tmp_path, served, {"deploy/compose.yml": refused, "big.yml": "x" * 300_000, "bad.yml": "a: [1\n"})
    env = (
        await make_app(
            client, members.developer, {"name": "probe", "compose": {"inline": "services:\n  p:\n    image: busybox\n"}}
        )
    )["environment_id"]
    url = f"/v1/environments/{env}/applications"

    err = only_error(await client.post(url, headers=members.developer, json=body(served)))
    assert err["loc"] == "/body/compose/services/db/privileged"

    err = only_error(await client.post(url, headers=members.developer, json=body(served, path="deploy/missing.yml")))
    assert err["loc"] == "/body/compose/path"
    assert "compose.path 'deploy/missing.yml'" in err["detail"] and "no file 'deploy/missing.yml'" in err["detail"]

    err = only_error(await client.post(url, headers=members.developer, json=body(served, path="big.yml")))
    assert err["loc"] == "/body/compose/path" and "larger than 262144 bytes" in err["detail"]

    err = only_error(await client.post(url, headers=members.developer, json=body(served, path="bad.yml")))
    assert err["loc"] == "/body/compose/path"

    wrong_branch = body(served)
    wrong_branch["source"]["branch"] = "nope"
    err = only_error(await client.post(url, headers=members.developer, json=wrong_branch))
    assert err["loc"] == "/body/source/branch" and "compose.path" in err["detail"] and "'nope'" in err["detail"]

    err = only_error(await client.post(url, headers=members.developer, json=body(served, name="gone")))
    assert err["loc"] == "/body/source/repository" and "compose.path" in err["detail"]
    listed = (await client.get(f"/v1/environments/{env}/applications", headers=members.developer)).json()
    assert [a["name"] for a in listed] == ["probe"]  # nothing refused was stored


async def test_without_a_builder_a_new_application_waits_and_a_translated_one_is_not_dropped(
    client, members, nats_server, database, served, tmp_path
) -> None:
    repository(tmp_path, served, {"deploy/compose.yml": COMPOSE})
    pending = await make_app(client, members.developer, body(served, name="stack"))
    assert pending["compose"]["translated"] is None and pending["services"] == []  # stored, read later

    running = await start_builder(nats_server.url, database, tmp_path / "builder")
    try:
        r = await client.patch(f"/v1/applications/{pending['id']}", headers=members.developer, json={"hosts": []})
        assert r.status_code == 200, r.text
        assert r.json()["compose"]["translated"]["file"]["path"] == "deploy/compose.yml"
    finally:
        await stop_builder(running)

    r = await client.patch(f"/v1/applications/{pending['id']}", headers=members.developer, json={"hosts": []})
    assert problem(r, 503)["detail"].startswith("The builder service is unavailable")
    r = await client.post(f"/v1/applications/{pending['id']}/deployments", headers=members.developer)
    assert problem(r, 503)["detail"].startswith("The builder service is unavailable")
    got = (await client.get(f"/v1/applications/{pending['id']}", headers=members.developer)).json()
    assert got["compose"]["translated"]["file"]["path"] == "deploy/compose.yml"  # kept as it was

    # an inline application given a file of its repository while no builder answers: stored, read later
    inline = {"name": "inline", "compose": {"inline": "services:\n  p:\n    image: busybox\n"}}
    app = await make_app(client, members.developer, inline)
    change = {"compose": {"path": "deploy/compose.yml"}, "source": body(served)["source"]}
    r = await client.patch(f"/v1/applications/{app['id']}", headers=members.developer, json=change)
    assert r.status_code == 200, r.text
    assert r.json()["compose"]["translated"] is None and r.json()["services"] == []
