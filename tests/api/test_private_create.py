# ruff: noqa: F811 (the module's fixtures are imported from tests.api.module_api by name)
"""A compose application from a private repository in one step: the credential given with the create
request (a deploy key's private key, or an access token), the compose file read with it by the real
builder in that request (an sshd that accepts only the key; git's http-backend behind Basic auth), and the
credential stored as if set right after (shown without its secret, the server's host key pinned at first
contact or as given). One api, builder and pair of git servers for the module."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth_common import ssh_keys
from tests.api.conftest import make_app
from tests.api.module_api import api, api_urls, base_api_settings, client, members, scheduler  # noqa: F401
from tests.builder.git_servers import HttpGitServer, SshGitServer
from tests.builder.support import make_repo, publish_bare, start_builder, stop_builder

pytestmark = pytest.mark.slow
COMPOSE = "services:\n  web:\n    image: nginx:1\n    ports: ['80']\n"


@pytest.fixture(scope="module")
def api_settings(base_api_settings):
    return base_api_settings.model_copy(update={"allow_local_git": True})  # the git servers are on loopback


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> tuple[Path, str]:
    base = tmp_path_factory.mktemp("private-create")
    sha = make_repo(base / "repo", {"compose.yml": COMPOSE})
    publish_bare(base / "repo", base / "served", "app.git")
    return base / "served", sha


@pytest.fixture(scope="module")
async def builder(module_nats_server, module_database, api, tmp_path_factory):
    running = await start_builder(module_nats_server.url, module_database, tmp_path_factory.mktemp("builder"))
    yield running
    await stop_builder(running)


@pytest.fixture(scope="module")
def ssh_git(tmp_path_factory):
    server = SshGitServer(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()


def body(repository: str, name: str, git_access: dict | None) -> dict:
    source = {"kind": "git", "repository": repository, "branch": "main"}
    found = {"name": name, "source": source, "compose": {"path": "compose.yml"}}
    return {**found, "git_access": git_access} if git_access is not None else found


async def create(client, members, given: dict) -> tuple[int, dict]:
    projects = (await client.get("/v1/projects", headers=members.developer)).json()
    if not projects:
        await make_app(
            client,
            members.developer,
            body("https://git.example.com/a/b.git", "first", None) | {"compose": {"inline": COMPOSE}},
        )
        projects = (await client.get("/v1/projects", headers=members.developer)).json()
    env = projects[0]["environments"][0]["id"]
    r = await client.post(f"/v1/environments/{env}/applications", headers=members.developer, json=given)
    return r.status_code, r.json()


async def test_a_deploy_key_given_on_create_reads_the_compose_file(client, members, builder, ssh_git, served):
    root, sha = served
    private, public = ssh_keys.generate_key_pair()
    ssh_git.authorize(public)
    url = ssh_git.ssh_url(root / "app.git")

    status, answer = await create(client, members, body(url, "nokey", None))  # without it: refused, clearly
    assert status in (409, 422, 502), answer

    given = {"deploy_key": {"private_key": private}}
    status, app = await create(client, members, body(url, "withkey", given))
    assert status == 201, app
    assert app["compose"]["translated"]["file"] == {"path": "compose.yml", "commit": sha}
    assert [s["name"] for s in app["services"]] == ["web"]
    assert private.strip().splitlines()[1] not in str(app)
    shown = (await client.get(f"/v1/applications/{app['id']}/git-access", headers=members.viewer)).json()
    assert shown["uses"] == "deploy_key" and shown["token"] is None
    key = shown["deploy_key"]
    assert key["public_key"].split()[:2] == public.split()[:2] and key["public_key"].endswith(f"berth-{app['id']}")
    assert [(p["host"], p["source"]) for p in key["host_keys"]] == [(ssh_git.address, "first-contact")]
    assert "PRIVATE KEY" not in str(shown)

    # the host keys given with it are pinned as given (no first contact)
    given = {"deploy_key": {"private_key": private, "host_keys": [ssh_git.host_key_line()]}}
    status, app = await create(client, members, body(url, "pinned", given))
    assert status == 201, app
    shown = (await client.get(f"/v1/applications/{app['id']}/git-access", headers=members.viewer)).json()
    assert [p["source"] for p in shown["deploy_key"]["host_keys"]] == ["given"]


async def test_a_token_given_on_create_reads_the_compose_file_and_refusals(client, members, builder, served):
    root, sha = served
    server = HttpGitServer(root, "x-access-token", "t0ken-value").start()
    try:
        given = {"token": {"username": "x-access-token", "token": "t0ken-value"}}
        status, app = await create(client, members, body(server.url("app.git"), "tokened", given))
        assert status == 201, app
        assert app["compose"]["translated"]["file"] == {"path": "compose.yml", "commit": sha}
        assert "t0ken-value" not in str(app)
        shown = (await client.get(f"/v1/applications/{app['id']}/git-access", headers=members.viewer)).json()
        assert shown["token"]["username"] == "x-access-token" and "t0ken-value" not in str(shown)
    finally:
        server.stop()

    # the wrong kind for the URL, a key that is none, both or neither: 422 naming the field, nothing made
    cases = [
        ("https://git.example.com/a/b.git", {"deploy_key": {"private_key": "x"}}, "/body/git_access"),
        ("ssh://git@git.example.com/a/b.git", {"token": {"token": "abc"}}, "/body/git_access"),
        ("ssh://git@git.example.com/a/b.git", {"deploy_key": {"private_key": "nope"}}, "private_key"),
        ("ssh://git@git.example.com/a/b.git", {}, "git_access"),
    ]
    for i, (url, given, where) in enumerate(cases):
        status, problem = await create(client, members, body(url, f"refused{i}", given))
        assert status == 422 and where in str(problem), (given, problem)
    apps = (await client.get("/v1/applications", headers=members.viewer)).json()
    apps = apps.get("items", apps) if isinstance(apps, dict) else apps
    assert not [a for a in apps if a["name"].startswith("refused")]
