"""``berth apps create --git URL --compose-path PATH`` against the real api and the real builder (in-process,
same nats-server and Postgres) reading the file from a repository served by `git daemon` on loopback: the
application's services come from the repository's file, and ``apps show`` says where the file is."""

from __future__ import annotations

import json

import pytest

from tests.api.test_compose_git import COMPOSE, builder, repository, served  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow


async def test_a_compose_file_of_the_repository_makes_the_services(logged_in, builder, served, tmp_path):  # noqa: F811
    berth = logged_in
    _, sha = repository(tmp_path, served, {"deploy/compose.yml": COMPOSE, "deploy/app/web.Dockerfile": "FROM x"})
    assert (await berth("projects", "create", "acme")).code == 0
    r = await berth(
        "apps", "create", "stack", "-p", "acme", "--git", served.url("stack.git"), "--branch", "main",
        "--compose-path", "deploy/compose.yml", "--host", "web:8000=stack.example.com",
    )  # fmt: skip
    assert r.code == 0, r
    app_id = r.out.split("(", 1)[1].split(")", 1)[0]
    assert r.out == (
        f"Created application stack ({app_id}); deploy it with: berth deploy {app_id}\nServices: web (web), db (worker)\n"
    )
    detail = json.loads((await berth("apps", "show", "stack", "--json")).out)
    assert detail["compose"]["translated"]["file"] == {"path": "deploy/compose.yml", "commit": sha}
    r = await berth("apps", "show", "stack")
    lines = r.out.splitlines()
    assert "compose:  deploy/compose.yml (in the repository)" in lines and "start:    db -> web" in lines
    assert lines[-2].split() == [
        "web",
        "web",
        "1",
        "8000",
        "-",
        detail["services"][0]["hosts"][0],
        "stack.example.com",
        "build",
    ]
    assert lines[-1].split() == ["db", "worker", "1", "-", "-", "-", "postgres:16"]
